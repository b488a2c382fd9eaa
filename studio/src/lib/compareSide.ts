// One side of a comparison: a context (or a layer's scope) and the point in
// time it is read at. In an address each side is one query parameter holding
// its own query string (`left=env%3Dprod%26position%3D12`), so a comparison of
// two moments of one context is as shareable as any other view.

import { describeScope, parsePointInTime, parseScope, pointParams, scopeParams, type PointInTime, type Scope } from './scope';

export interface CompareSide {
  scope: Scope;
  point: PointInTime | null;
}

/** The side a parameter names; `error` when its point in time is malformed. */
export function parseSide(query: string): { side: CompareSide; error?: string } {
  const params = new URLSearchParams(query);
  const { point, error } = parsePointInTime(params);
  return { side: { scope: parseScope(params), point }, error };
}

/** The side as its own query string: the scope, then `position=` or `at=`. */
export function sideQuery(side: CompareSide): string {
  const params = scopeParams(side.scope);
  for (const [key, value] of pointParams(side.point)) params.set(key, value);
  return params.toString();
}

/** When a point in time is: `now`, `position 12`, or the time in the reader's locale. */
export function describePoint(point: PointInTime | null, locale?: string): string {
  if (point === null) return 'now';
  if ('position' in point) return `position ${point.position}`;
  return new Date(point.at).toLocaleString(locale);
}

/** `env=prod`, or `env=prod as of position 12` for a side in the past. */
export function describeSide(side: CompareSide, locale?: string): string {
  const scope = describeScope(side.scope);
  return side.point === null ? scope : `${scope} as of ${describePoint(side.point, locale)}`;
}

/**
 * The query parameters a picker's two inputs name: a position wins over a
 * time (a `datetime-local` value, read in local time, sent as RFC 3339);
 * both empty is now. A malformed input is passed on as typed, so the page it
 * leads to says what is wrong with it rather than silently showing now.
 */
export function pointInputParams(position: string, at: string): URLSearchParams {
  const params = new URLSearchParams();
  const time = at.trim();
  if (position.trim()) params.set('position', position.trim());
  else if (time) params.set('at', Number.isNaN(Date.parse(time)) ? time : new Date(time).toISOString());
  return params;
}

/** A `datetime-local` value (local time, seconds) for an RFC 3339 time. */
export function toLocalInput(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The two inputs of a picker showing `point`. */
export function inputsFromPoint(point: PointInTime | null): { position: string; at: string } {
  if (point === null) return { position: '', at: '' };
  if ('position' in point) return { position: String(point.position), at: '' };
  return { position: '', at: toLocalInput(point.at) };
}
