// A minimal history-API router: the location as state, and navigation that
// does not reload the page.

import { useEffect, useState, type MouseEvent } from 'react';

export function useLocation(): { pathname: string; search: string } {
  const read = () => ({ pathname: window.location.pathname, search: window.location.search });
  const [location, setLocation] = useState(read);
  useEffect(() => {
    const update = () => setLocation(read());
    window.addEventListener('popstate', update);
    window.addEventListener('studio:navigate', update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener('studio:navigate', update);
    };
  }, []);
  return location;
}

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (options.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.dispatchEvent(new Event('studio:navigate'));
  window.scrollTo(0, 0);
}

/** A click handler for links that navigates in place (unless a modifier asks for a new tab). */
export function followLink(event: MouseEvent<HTMLAnchorElement>): void {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(event.currentTarget.getAttribute('href') ?? '/studio/');
}
