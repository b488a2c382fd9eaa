// Studio's own addresses under /studio/: each screen is a path, its scope,
// context and point in time are query parameters, so any view can be
// bookmarked and shared.

export const BASE = '/studio';

export type Route =
  | { screen: 'signin' }
  | { screen: 'signin-callback' }
  | { screen: 'namespaces'; query: string }
  | { screen: 'namespace'; ns: string }
  | { screen: 'layer'; ns: string; search: string }
  | { screen: 'resolved'; ns: string; search: string }
  | { screen: 'history'; ns: string; search: string }
  | { screen: 'compare'; ns: string; search: string }
  | { screen: 'flags'; ns: string; search: string }
  | { screen: 'change-requests'; search: string }
  | { screen: 'audit'; search: string }
  | { screen: 'tenants' }
  | { screen: 'tenant-history'; tenant: string }
  | { screen: 'drift' }
  | { screen: 'not-found'; path: string };

/** The screen a location shows. */
export function parseRoute(pathname: string, search = ''): Route {
  const path = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname;
  const segments = path.split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(search);
  const s = params.toString();
  const [first, ns, sub, ...rest] = segments;
  if (segments.length === 0) return { screen: 'namespaces', query: '' };
  if (first === 'signin' && segments.length === 1) return { screen: 'signin' };
  if (first === 'signin' && ns === 'callback' && segments.length === 2) return { screen: 'signin-callback' };
  if (first === 'namespaces') {
    if (ns === undefined) return { screen: 'namespaces', query: params.get('q') ?? '' };
    if (rest.length === 0) {
      if (sub === undefined) return { screen: 'namespace', ns };
      if (sub === 'layer') return { screen: 'layer', ns, search: s };
      if (sub === 'resolved') return { screen: 'resolved', ns, search: s };
      if (sub === 'history') return { screen: 'history', ns, search: s };
      if (sub === 'compare') return { screen: 'compare', ns, search: s };
      if (sub === 'flags') return { screen: 'flags', ns, search: s };
    }
  }
  if (first === 'change-requests' && segments.length === 1) return { screen: 'change-requests', search: s };
  if (first === 'audit' && segments.length === 1) return { screen: 'audit', search: s };
  if (first === 'tenants' && segments.length === 1) return { screen: 'tenants' };
  if (first === 'drift' && segments.length === 1) return { screen: 'drift' };
  if (first === 'tenants' && ns !== undefined && sub === 'history' && rest.length === 0) return { screen: 'tenant-history', tenant: ns };
  return { screen: 'not-found', path };
}

/** The address of a screen. */
export function href(route: Route): string {
  const q = (search: string) => (search ? `?${search}` : '');
  const ns = (name: string) => `${BASE}/namespaces/${encodeURIComponent(name)}`;
  switch (route.screen) {
    case 'signin':
      return `${BASE}/signin`;
    case 'signin-callback':
      return `${BASE}/signin/callback`;
    case 'namespaces':
      return `${BASE}/namespaces${route.query ? `?${new URLSearchParams({ q: route.query })}` : ''}`;
    case 'namespace':
      return ns(route.ns);
    case 'layer':
      return `${ns(route.ns)}/layer${q(route.search)}`;
    case 'resolved':
      return `${ns(route.ns)}/resolved${q(route.search)}`;
    case 'history':
      return `${ns(route.ns)}/history${q(route.search)}`;
    case 'compare':
      return `${ns(route.ns)}/compare${q(route.search)}`;
    case 'flags':
      return `${ns(route.ns)}/flags${q(route.search)}`;
    case 'change-requests':
      return `${BASE}/change-requests${q(route.search)}`;
    case 'audit':
      return `${BASE}/audit${q(route.search)}`;
    case 'tenants':
      return `${BASE}/tenants`;
    case 'tenant-history':
      return `${BASE}/tenants/${encodeURIComponent(route.tenant)}/history`;
    case 'drift':
      return `${BASE}/drift`;
    case 'not-found':
      return `${BASE}${route.path}`;
  }
}
