import { describe, expect, it } from 'vitest';
import { mergeJson, mergeLocks } from './merge';

describe('three-way merge of an edit onto a newer revision', () => {
  it('keeps both sides when they changed different values', () => {
    const base = { limit: 5, mode: 'fast', banner: 'hi' };
    const ours = { limit: 9, mode: 'fast', banner: 'hi' };
    const theirs = { limit: 5, mode: 'safe', banner: 'hi' };
    expect(mergeJson(base, ours, theirs)).toEqual({ merged: { limit: 9, mode: 'safe', banner: 'hi' }, conflicts: [] });
  });

  it('merges nested objects key by key', () => {
    const base = { db: { pool: 5, timeout: 30 } };
    const ours = { db: { pool: 10, timeout: 30 } };
    const theirs = { db: { pool: 5, timeout: 60, ssl: true } };
    expect(mergeJson(base, ours, theirs).merged).toEqual({ db: { pool: 10, timeout: 60, ssl: true } });
  });

  it('carries removals from either side', () => {
    const base: Record<string, number> = { a: 1, b: 2, c: 3 };
    expect(mergeJson(base, { a: 1, c: 3 }, { a: 1, b: 2, c: 4 }).merged).toEqual({ a: 1, c: 4 });
    expect(mergeJson(base, { a: 1, b: 2, c: 3, d: 4 }, { b: 2, c: 3 }).merged).toEqual({ b: 2, c: 3, d: 4 });
  });

  it('reports a value both changed differently, keeping the edit', () => {
    const result = mergeJson({ limit: 5, mode: 'fast' }, { limit: 9, mode: 'fast' }, { limit: 8, mode: 'safe' });
    expect(result.merged).toEqual({ limit: 9, mode: 'safe' });
    expect(result.conflicts).toEqual([{ pointer: '/limit', ours: 9, theirs: 8 }]);
  });

  it('reports a value one side removed and the other changed', () => {
    const result = mergeJson({ a: { b: 1 } }, { a: {} }, { a: { b: 2 } });
    expect(result.conflicts).toEqual([{ pointer: '/a/b', ours: undefined, theirs: 2 }]);
    expect(result.merged).toEqual({ a: {} });
  });

  it('treats arrays as single values and equal changes as no conflict', () => {
    expect(mergeJson({ l: [1] }, { l: [1, 2] }, { l: [1, 3] }).conflicts).toEqual([{ pointer: '/l', ours: [1, 2], theirs: [1, 3] }]);
    expect(mergeJson({ l: [1] }, { l: [1, 2] }, { l: [1, 2] })).toEqual({ merged: { l: [1, 2] }, conflicts: [] });
    // Key order does not make two objects differ.
    expect(mergeJson({ o: { x: 1 } }, { o: { x: 2, y: 1 } }, { o: { y: 1, x: 2 } }).conflicts).toEqual([]);
  });

  it('does not change its inputs', () => {
    const base = { o: { x: 1 } };
    const ours = { o: { x: 2 } };
    const theirs = { o: { x: 1, y: 3 } };
    mergeJson(base, ours, theirs);
    expect([base, ours, theirs]).toEqual([{ o: { x: 1 } }, { o: { x: 2 } }, { o: { x: 1, y: 3 } }]);
  });
});

describe('merging locks', () => {
  it("adds the edit's new locks and drops the ones it removed, keeping the newer revision's", () => {
    expect(mergeLocks(['/a', '/b'], ['/a', '/c'], ['/a', '/b', '/d'])).toEqual(['/a', '/c', '/d']);
    expect(mergeLocks([], [], ['/x'])).toEqual(['/x']);
  });
});
