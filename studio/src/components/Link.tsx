import type { AnchorHTMLAttributes } from 'react';
import { followLink } from '../navigation';

export function Link(props: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  return <a {...props} onClick={followLink} />;
}
