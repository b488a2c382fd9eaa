// Comparing two JSON documents: the changed values by JSON pointer, and a
// side-by-side line diff of their canonical text (sorted keys), so two
// revisions, scopes or contexts compare the same way everywhere in Studio.

import { diffLines } from 'diff';
import { formatPointer } from './pointer';

export type ChangeKind = 'added' | 'removed' | 'changed';

export interface ValueChange {
  pointer: string;
  kind: ChangeKind;
  before?: unknown;
  after?: unknown;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Every leaf (a non-object value) of a document by its JSON pointer; arrays are leaves. */
export function flatten(value: unknown, tokens: string[] = [], out = new Map<string, unknown>()): Map<string, unknown> {
  if (isObject(value) && (Object.keys(value).length > 0 || tokens.length === 0)) {
    for (const key of Object.keys(value)) flatten(value[key], [...tokens, key], out);
  } else {
    out.set(formatPointer(tokens), value);
  }
  return out;
}

/** JSON text with object keys sorted at every depth. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value), null, 2) ?? 'null';
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (isObject(value)) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys(value[k])]),
    );
  }
  return value;
}

export function jsonEqual(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** The values that differ between two documents, ordered by pointer. */
export function diffValues(before: unknown, after: unknown): ValueChange[] {
  const left = flatten(before ?? {});
  const right = flatten(after ?? {});
  const changes: ValueChange[] = [];
  for (const [pointer, value] of left) {
    if (!right.has(pointer)) changes.push({ pointer, kind: 'removed', before: value });
    else if (!jsonEqual(value, right.get(pointer)))
      changes.push({ pointer, kind: 'changed', before: value, after: right.get(pointer) });
  }
  for (const [pointer, value] of right) {
    if (!left.has(pointer)) changes.push({ pointer, kind: 'added', after: value });
  }
  return changes.sort((a, b) => (a.pointer < b.pointer ? -1 : a.pointer > b.pointer ? 1 : 0));
}

export interface SideLine {
  number: number;
  text: string;
  kind: 'same' | 'removed' | 'added';
}

/** One row of a side-by-side diff; a side is absent where the other added or removed lines. */
export interface DiffRow {
  left?: SideLine;
  right?: SideLine;
}

/** A side-by-side line diff of the two documents' canonical text. */
export function sideBySide(before: unknown, after: unknown): DiffRow[] {
  const parts = diffLines(canonicalJson(before ?? {}), canonicalJson(after ?? {}));
  const rows: DiffRow[] = [];
  let leftNumber = 0;
  let rightNumber = 0;
  let pendingRemoved: SideLine[] = [];
  const flush = () => {
    for (const line of pendingRemoved) rows.push({ left: line });
    pendingRemoved = [];
  };
  for (const part of parts) {
    const lines = part.value.replace(/\n$/, '').split('\n');
    if (part.removed) {
      for (const text of lines) pendingRemoved.push({ number: ++leftNumber, text, kind: 'removed' });
    } else if (part.added) {
      // Pair added lines with the removed lines just before them, so a
      // changed value reads as one row.
      for (const text of lines) {
        const right: SideLine = { number: ++rightNumber, text, kind: 'added' };
        const left = pendingRemoved.shift();
        rows.push(left ? { left, right } : { right });
      }
      flush();
    } else {
      flush();
      for (const text of lines)
        rows.push({
          left: { number: ++leftNumber, text, kind: 'same' },
          right: { number: ++rightNumber, text, kind: 'same' },
        });
    }
  }
  flush();
  return rows;
}
