import { describe, expect, it } from 'vitest';
import { explain, sourceFor } from './explain';

const sources = {
  '/limit': { scope: { tenant: 'acme' }, revision: 3 },
  '/payment': { scope: {}, revision: 1 },
  '/payment/provider': { scope: { env: 'prod' }, revision: 2 },
};

describe('explain', () => {
  it('gives each value the source of its nearest named ancestor', () => {
    expect(sourceFor('/payment/provider', sources)).toEqual({ scope: { env: 'prod' }, revision: 2 });
    expect(sourceFor('/payment/retries', sources)).toEqual({ scope: {}, revision: 1 });
    expect(sourceFor('/limitless', sources)).toBeUndefined();
  });

  it('marks every leaf, leaving schema defaults without a layer', () => {
    expect(explain({ limit: 5, payment: { provider: 'x', retries: 2 }, mode: 'safe' }, sources)).toEqual([
      { pointer: '/limit', value: 5, source: { scope: { tenant: 'acme' }, revision: 3 } },
      { pointer: '/payment/provider', value: 'x', source: { scope: { env: 'prod' }, revision: 2 } },
      { pointer: '/payment/retries', value: 2, source: { scope: {}, revision: 1 } },
      { pointer: '/mode', value: 'safe', source: undefined },
    ]);
  });
});
