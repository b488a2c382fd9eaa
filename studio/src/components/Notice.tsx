import type { ReactNode } from 'react';
import { describeProblem } from '../lib/problem';

/** An error from the API, in words, with the problem's detail. */
export function ErrorNotice({ error, children }: { error: unknown; children?: ReactNode }) {
  if (!error) return null;
  return (
    <div className="notice error" role="alert">
      <p>{describeProblem(error)}</p>
      {children}
    </div>
  );
}

export function InfoNotice({ children }: { children: ReactNode }) {
  return (
    <div className="notice info" role="status">
      {children}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status">
      Loading {what}…
    </p>
  );
}
