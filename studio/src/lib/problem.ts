// Errors from the API (RFC 9457 problems with a stable `code`), turned into
// words a person understands and, for schema and lock failures, into errors
// on the form field each violation's JSON pointer names.

import type { ErrorSchema } from '@rjsf/utils';
import { parsePointer } from './pointer';

export interface Violation {
  pointer: string;
  message?: string;
  locked_pointer?: string;
  locked_by?: Record<string, string>;
}

export interface ProblemBody {
  type?: string;
  title?: string;
  status?: number;
  code?: string;
  detail?: string;
  field?: string | null;
  violations?: Violation[] | null;
  expected?: number;
  actual?: number;
}

/** A refused request, with the server's problem. */
export class ApiProblem extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly field?: string;
  readonly violations: Violation[];

  constructor(status: number, body: ProblemBody | null) {
    const detail = body?.detail ?? body?.title ?? `the server answered ${status}`;
    super(detail);
    this.name = 'ApiProblem';
    this.status = status;
    this.code = body?.code ?? `http-${status}`;
    this.detail = detail;
    this.field = body?.field ?? undefined;
    this.violations = Array.isArray(body?.violations) ? body.violations : [];
  }

  /** The edit was made on a revision that is no longer the current one. */
  get isConflict(): boolean {
    return this.status === 412 || this.status === 409;
  }
}

/** A problem from a response body that may not be JSON at all. */
export function problemFrom(status: number, text: string): ApiProblem {
  let body: ProblemBody | null = null;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object') body = parsed as ProblemBody;
  } catch {
    body = text ? { detail: text.slice(0, 300) } : null;
  }
  return new ApiProblem(status, body);
}

/** What went wrong, in words, followed by the server's own detail. */
export function describeProblem(error: unknown): string {
  if (!(error instanceof ApiProblem)) {
    if (error instanceof TypeError) return 'The server could not be reached. Check that ECS is running, then try again.';
    return error instanceof Error ? error.message : String(error);
  }
  const lead = (() => {
    switch (error.status) {
      case 400:
        return error.field ? `The request was not accepted: ${error.field} is not valid.` : 'The request was not accepted.';
      case 401:
        return 'Your token was not accepted. Sign in again with a valid token.';
      case 403:
        return 'Your role may not do this.';
      case 404:
        return 'This does not exist, or your role may not see it.';
      case 409:
      case 412:
        return 'Someone changed this since you opened it; your edit was not saved. Reload to see the current version, then apply your change again.';
      case 413:
        return 'This is too large for the server.';
      case 422:
        if (error.code === 'locked') return 'A value you changed is locked by another layer; nothing was saved.';
        if (error.code === 'schema-violation') return "The values do not satisfy the namespace's schema; nothing was saved.";
        return 'The server could not apply this; nothing was saved.';
      case 429:
        return 'Too many requests; wait a moment and try again.';
      default:
        return error.status >= 500
          ? 'The server failed to answer; try again in a moment.'
          : `The server refused this (${error.status}).`;
    }
  })();
  const detail = error.detail.charAt(0).toUpperCase() + error.detail.slice(1);
  return `${lead} ${detail}${/[.!?]$/.test(detail) ? '' : '.'}`.trim();
}

/**
 * The violations as an rjsf error schema: `/limits/0/max` becomes
 * `{limits: {0: {max: {__errors: [...]}}}}`, so each message shows on the
 * field it is about.
 */
export function violationsToErrorSchema(violations: readonly Violation[]): ErrorSchema {
  const root: Record<string, unknown> = {};
  for (const violation of violations) {
    let node = root;
    let tokens: string[];
    try {
      tokens = parsePointer(violation.pointer);
    } catch {
      tokens = [];
    }
    for (const token of tokens) {
      node[token] ??= {};
      node = node[token] as Record<string, unknown>;
    }
    const errors = (node.__errors ??= []) as string[];
    errors.push(violationMessage(violation));
  }
  return root as ErrorSchema;
}

export function violationMessage(violation: Violation): string {
  if (violation.message) return violation.message;
  if (violation.locked_pointer !== undefined) {
    const by = violation.locked_by ? Object.entries(violation.locked_by).map(([k, v]) => `${k}=${v}`).join(', ') : '';
    return `locked by the ${by || 'global'} layer (${violation.locked_pointer || '/'})`;
  }
  return 'not accepted';
}
