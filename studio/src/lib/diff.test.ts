import { describe, expect, it } from 'vitest';
import { canonicalJson, diffValues, flatten, sideBySide } from './diff';

describe('diff helpers', () => {
  it('flattens a document to its leaves by pointer', () => {
    expect([...flatten({ a: { b: 1, c: [1, 2] }, 'x/y': null, e: {} })]).toEqual([
      ['/a/b', 1],
      ['/a/c', [1, 2]],
      ['/x~1y', null],
      ['/e', {}],
    ]);
    expect([...flatten({})]).toEqual([]);
  });

  it('lists added, removed and changed values in pointer order', () => {
    expect(diffValues({ a: 1, b: { c: true }, d: [1] }, { a: 2, b: {}, d: [1], e: 'x' })).toEqual([
      { pointer: '/a', kind: 'changed', before: 1, after: 2 },
      { pointer: '/b', kind: 'added', after: {} },
      { pointer: '/b/c', kind: 'removed', before: true },
      { pointer: '/e', kind: 'added', after: 'x' },
    ]);
    expect(diffValues({ a: { x: 1, y: 2 } }, { a: { y: 2, x: 1 } })).toEqual([]);
  });

  it('writes canonical JSON with sorted keys', () => {
    expect(canonicalJson({ b: 1, a: { d: 1, c: 2 } })).toBe('{\n  "a": {\n    "c": 2,\n    "d": 1\n  },\n  "b": 1\n}');
  });

  it('pairs a changed line side by side and numbers each side', () => {
    const rows = sideBySide({ a: 1, b: 2 }, { a: 1, b: 3, c: 4 });
    const changed = rows.find((r) => r.left?.kind === 'removed');
    expect(changed?.left?.text).toContain('"b": 2');
    expect(changed?.right?.text).toContain('"b": 3');
    const added = rows.filter((r) => !r.left && r.right?.kind === 'added');
    expect(added.map((r) => r.right?.text.trim())).toEqual(['"c": 4']);
    expect(rows.at(-1)).toEqual({ left: { number: 4, text: '}', kind: 'same' }, right: { number: 5, text: '}', kind: 'same' } });
  });
});
