// Three-way merge of JSON documents: an edit made on one revision of a layer
// (ours) carried onto a newer revision saved meanwhile (theirs), both taken
// from the same base. Objects merge key by key at every depth; any other value
// (arrays included) is one value. Where both sides changed the same value
// differently, the edit's value is kept and the conflict is reported, so the
// person sees what they are about to override before saving.

import { canonicalJson } from './diff';
import { formatPointer } from './pointer';

/** A value both sides changed, differently: the edit's value and the newer revision's. */
export interface MergeConflict {
  pointer: string;
  /** The edit's value (kept in the merge); undefined when the edit removed it. */
  ours: unknown;
  /** The newer revision's value; undefined when it removed it. */
  theirs: unknown;
}

export interface MergeResult<T> {
  merged: T;
  conflicts: MergeConflict[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function same(a: unknown, b: unknown): boolean {
  if (a === undefined || b === undefined) return a === b;
  return canonicalJson(a) === canonicalJson(b);
}

function mergeValue(base: unknown, ours: unknown, theirs: unknown, tokens: string[], conflicts: MergeConflict[]): unknown {
  if (same(ours, theirs)) return ours;
  if (same(base, ours)) return theirs;
  if (same(base, theirs)) return ours;
  if (isObject(ours) && isObject(theirs)) {
    const from = isObject(base) ? base : {};
    const merged: Record<string, unknown> = {};
    const keys = new Set([...Object.keys(from), ...Object.keys(ours), ...Object.keys(theirs)]);
    for (const key of keys) {
      const value = mergeValue(from[key], ours[key], theirs[key], [...tokens, key], conflicts);
      if (value !== undefined) merged[key] = value;
    }
    return merged;
  }
  conflicts.push({ pointer: formatPointer(tokens), ours, theirs });
  return ours;
}

/** `ours` (an edit of `base`) carried onto `theirs` (another change of `base`). */
export function mergeJson<T extends Record<string, unknown>>(base: T, ours: T, theirs: T): MergeResult<T> {
  const conflicts: MergeConflict[] = [];
  const merged = mergeValue(base, ours, theirs, [], conflicts);
  return { merged: (isObject(merged) ? merged : {}) as T, conflicts };
}

/**
 * A layer's locked pointers, merged as a set: the newer revision's locks, plus
 * those the edit added, minus those the edit removed.
 */
export function mergeLocks(base: readonly string[], ours: readonly string[], theirs: readonly string[]): string[] {
  const added = ours.filter((p) => !base.includes(p));
  const removed = base.filter((p) => !ours.includes(p));
  return [...new Set([...theirs, ...added])].filter((p) => !removed.includes(p)).sort();
}
