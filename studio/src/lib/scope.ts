// Scopes and contexts: the four dimensions a layer fixes or a request names,
// read from and written to the query string exactly as the HTTP API spells
// them (`env`, `service`, `tenant`, `edition`; none of them is the global scope).

export const DIMENSIONS = ['env', 'service', 'tenant', 'edition'] as const;
export type Dimension = (typeof DIMENSIONS)[number];
export type Scope = Partial<Record<Dimension, string>>;

const MAX_ID_LEN = 64;

/** Why an identifier is refused, or null when the server would accept it. */
export function identifierProblem(value: string): string | null {
  if (value.length === 0) return 'must not be empty';
  if (!/^[A-Za-z0-9]/.test(value)) return 'must start with a letter or digit';
  if (value.length > MAX_ID_LEN) return `must be at most ${MAX_ID_LEN} characters`;
  if (!/^[A-Za-z0-9_-]+$/.test(value)) return "may contain only letters, digits, '-' and '_'";
  return null;
}

/** The scope named by a query string; empty values name no dimension. */
export function parseScope(search: string | URLSearchParams): Scope {
  const params = typeof search === 'string' ? new URLSearchParams(search) : search;
  const scope: Scope = {};
  for (const dimension of DIMENSIONS) {
    const value = params.get(dimension)?.trim();
    if (value) scope[dimension] = value;
  }
  return scope;
}

/** Each dimension whose value the server would refuse, with the reason. */
export function scopeProblems(scope: Scope): Partial<Record<Dimension, string>> {
  const problems: Partial<Record<Dimension, string>> = {};
  for (const dimension of DIMENSIONS) {
    const value = scope[dimension];
    if (value === undefined) continue;
    const problem = identifierProblem(value);
    if (problem) problems[dimension] = problem;
  }
  return problems;
}

/** The scope as query parameters, in the canonical dimension order. */
export function scopeParams(scope: Scope): URLSearchParams {
  const params = new URLSearchParams();
  for (const dimension of DIMENSIONS) {
    const value = scope[dimension];
    if (value) params.set(dimension, value);
  }
  return params;
}

export function scopeQuery(scope: Scope): string {
  return scopeParams(scope).toString();
}

/** `global`, or `env=prod, tenant=acme`. */
export function describeScope(scope: Scope): string {
  const parts = DIMENSIONS.filter((d) => scope[d]).map((d) => `${d}=${scope[d]}`);
  return parts.length === 0 ? 'global' : parts.join(', ');
}

export function sameScope(a: Scope, b: Scope): boolean {
  return DIMENSIONS.every((d) => (a[d] ?? '') === (b[d] ?? ''));
}

/** A moment in the past to read at: a global position or an RFC 3339 time. */
export type PointInTime = { position: number } | { at: string };

/**
 * The point in time a query string names (`position=` or `at=`), null for
 * now; an error message when it is malformed or names both.
 */
export function parsePointInTime(
  search: string | URLSearchParams,
): { point: PointInTime | null; error?: string } {
  const params = typeof search === 'string' ? new URLSearchParams(search) : search;
  const position = params.get('position')?.trim();
  const at = params.get('at')?.trim();
  if (position && at) return { point: null, error: 'give either a position or a time, not both' };
  if (position) {
    if (!/^\d+$/.test(position)) return { point: null, error: 'a position is a whole number' };
    return { point: { position: Number(position) } };
  }
  if (at) {
    if (Number.isNaN(Date.parse(at))) return { point: null, error: 'the time is not a date and time' };
    return { point: { at: new Date(at).toISOString() } };
  }
  return { point: null };
}

export function pointParams(point: PointInTime | null): URLSearchParams {
  const params = new URLSearchParams();
  if (point && 'position' in point) params.set('position', String(point.position));
  if (point && 'at' in point) params.set('at', point.at);
  return params;
}
