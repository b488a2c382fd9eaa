import { describe, expect, it } from 'vitest';
import type { Source } from './api';
import { explain, sourceFor } from './explain';

const sources: Record<string, Source> = {
  '/mode': { origin: 'schema-default' },
  '/limit': { origin: 'layer', scope: { tenant: 'acme' }, revision: 3 },
  '/payment': { origin: 'layer', scope: {}, revision: 1 },
  '/payment/provider': { origin: 'layer', scope: { env: 'prod' }, revision: 2 },
};

describe('explain', () => {
  it('gives each value the source of its nearest named ancestor', () => {
    expect(sourceFor('/payment/provider', sources)).toEqual({ origin: 'layer', scope: { env: 'prod' }, revision: 2 });
    expect(sourceFor('/payment/retries', sources)).toEqual({ origin: 'layer', scope: {}, revision: 1 });
    expect(sourceFor('/limitless', sources)).toBeUndefined();
  });

  it('marks every leaf, naming schema defaults as such', () => {
    expect(explain({ limit: 5, payment: { provider: 'x', retries: 2 }, mode: 'safe', other: 1 }, sources)).toEqual([
      { pointer: '/limit', value: 5, source: { origin: 'layer', scope: { tenant: 'acme' }, revision: 3 } },
      { pointer: '/payment/provider', value: 'x', source: { origin: 'layer', scope: { env: 'prod' }, revision: 2 } },
      { pointer: '/payment/retries', value: 2, source: { origin: 'layer', scope: {}, revision: 1 } },
      { pointer: '/mode', value: 'safe', source: { origin: 'schema-default' } },
      { pointer: '/other', value: 1, source: undefined },
    ]);
  });
});
