import { describe, expect, it } from 'vitest';
import { describeRole } from './role';
import { propertyRows } from './schemaDoc';
import { formatPointer, parsePointer, valueAt } from './pointer';

describe('the schema as a table', () => {
  it('names each top-level key with its type, default, requiredness and description', () => {
    expect(
      propertyRows({
        type: 'object',
        required: ['currency'],
        properties: {
          currency: { enum: ['EUR', 'CHF'], default: 'EUR', description: 'Billing currency' },
          limit: { type: ['integer', 'null'], title: 'Cart limit' },
          anything: {},
        },
      }),
    ).toEqual([
      { name: 'currency', type: 'one of "EUR", "CHF"', required: true, defaultValue: '"EUR"', description: 'Billing currency' },
      { name: 'limit', type: 'integer or null', required: false, defaultValue: undefined, description: 'Cart limit' },
      { name: 'anything', type: 'any', required: false, defaultValue: undefined, description: '' },
    ]);
    expect(propertyRows(null)).toEqual([]);
  });
});

describe('roles and pointers', () => {
  it('describes a role by the scope it is bound to', () => {
    expect(describeRole({ role: 'admin' })).toBe('every tenant and namespace');
    expect(describeRole({ role: 'tenant-admin', tenant: 'acme' })).toBe('tenant acme');
    expect(describeRole({ role: 'editor', namespaces: ['a', 'b'], tenant: 'acme' })).toBe('tenant acme · namespaces a, b');
    expect(describeRole({ role: 'service', env: 'prod', service: 'api' })).toBe('env prod · service api');
  });

  it('reads and writes RFC 6901 pointers', () => {
    expect(parsePointer('/a~1b/c~0d/0')).toEqual(['a/b', 'c~d', '0']);
    expect(formatPointer(['a/b', 'c~d'])).toBe('/a~1b/c~0d');
    expect(parsePointer('')).toEqual([]);
    expect(() => parsePointer('a')).toThrow(/not a JSON pointer/);
    expect(valueAt({ a: { 'b/c': [1, 2] } }, '/a/b~1c/1')).toBe(2);
    expect(valueAt({ a: 1 }, '/a/b')).toBeUndefined();
  });
});
