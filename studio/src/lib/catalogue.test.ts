import { describe, expect, it } from 'vitest';
import type { Namespace } from './api';
import { matchesQuery, schemaTerms, topLevelKeys, valueCount } from './catalogue';

const checkout: Namespace = {
  name: 'checkout',
  description: 'Cart and payment limits',
  schema: {
    type: 'object',
    properties: {
      limit: { type: 'integer', description: 'Most items in a cart' },
      payment: { type: 'object', properties: { provider: { enum: ['stripe', 'adyen'], title: 'Payment provider' } } },
    },
  },
  revision: 1,
  position: 1,
  updated_at: '2026-01-01T00:00:00Z',
};

describe('the namespace catalogue search', () => {
  it('collects property names, titles and descriptions at every depth', () => {
    expect(schemaTerms(checkout.schema)).toEqual(['limit', 'Most items in a cart', 'payment', 'provider', 'Payment provider']);
    expect(topLevelKeys(checkout.schema)).toEqual(['limit', 'payment']);
    expect(schemaTerms(null)).toEqual([]);
  });

  it('matches every word, case-insensitively, across name, description and keys', () => {
    expect(matchesQuery(checkout, '')).toBe(true);
    expect(matchesQuery(checkout, 'CHECK')).toBe(true);
    expect(matchesQuery(checkout, 'payment provider')).toBe(true);
    expect(matchesQuery(checkout, 'cart items')).toBe(true);
    expect(matchesQuery(checkout, 'logging')).toBe(false);
    expect(matchesQuery(checkout, 'limit logging')).toBe(false);
  });
});

describe('the count of matching values', () => {
  it('says none, one or many, and when the list is cut', () => {
    expect(valueCount(0, false)).toBe('No value you may read matches.');
    expect(valueCount(1, false)).toBe('1 value matches');
    expect(valueCount(3, false)).toBe('3 values match');
    expect(valueCount(50, true)).toBe('50 values match (the first ones; narrow the search for the rest)');
  });
});
