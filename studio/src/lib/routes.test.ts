import { describe, expect, it } from 'vitest';
import { href, parseRoute, type Route } from './routes';

describe('Studio addresses', () => {
  it('maps each screen to a path and back', () => {
    const routes: Route[] = [
      { screen: 'signin' },
      { screen: 'signin-callback' },
      { screen: 'namespaces', query: 'limit' },
      { screen: 'namespace', ns: 'checkout' },
      { screen: 'layer', ns: 'checkout', search: 'env=prod&tenant=acme' },
      { screen: 'resolved', ns: 'checkout', search: 'tenant=acme&position=4' },
      { screen: 'history', ns: 'checkout', search: '' },
      { screen: 'compare', ns: 'checkout', search: 'left=env%3Dprod&right=env%3Ddev' },
      { screen: 'flags', ns: 'flags', search: 'edition=pro' },
      { screen: 'change-requests', search: 'status=open' },
      { screen: 'audit', search: '' },
      { screen: 'tenants' },
      { screen: 'tenant-history', tenant: 'acme corp' },
      { screen: 'drift' },
    ];
    for (const route of routes) {
      const url = new URL(href(route), 'http://x');
      expect(parseRoute(url.pathname, url.search)).toEqual(route);
    }
  });

  it('opens the catalogue at the root and reports unknown paths', () => {
    expect(parseRoute('/studio/', '')).toEqual({ screen: 'namespaces', query: '' });
    expect(parseRoute('/studio/nope/x', '')).toEqual({ screen: 'not-found', path: '/nope/x' });
    expect(parseRoute('/studio/namespaces/a/layer/extra', '')).toEqual({ screen: 'not-found', path: '/namespaces/a/layer/extra' });
  });
});
