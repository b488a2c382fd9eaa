import { describe, expect, it } from 'vitest';
import { describeScope, identifierProblem, parsePointInTime, parseScope, sameScope, scopeProblems, scopeQuery } from './scope';

describe('scopes and contexts', () => {
  it('reads the four dimensions from a query and ignores the rest', () => {
    expect(parseScope('tenant=acme&env=prod&explain=true&service=')).toEqual({ env: 'prod', tenant: 'acme' });
    expect(parseScope('')).toEqual({});
  });

  it('writes them in the canonical order, whatever order they came in', () => {
    expect(scopeQuery({ edition: 'pro', tenant: 'acme', env: 'prod' })).toBe('env=prod&tenant=acme&edition=pro');
    expect(scopeQuery({})).toBe('');
  });

  it('describes the global scope and a narrower one', () => {
    expect(describeScope({})).toBe('global');
    expect(describeScope({ tenant: 'acme', env: 'prod' })).toBe('env=prod, tenant=acme');
  });

  it('refuses identifiers the server would refuse, with the reason', () => {
    expect(identifierProblem('acme-1_b')).toBeNull();
    expect(identifierProblem('')).toMatch(/empty/);
    expect(identifierProblem('-x')).toMatch(/start/);
    expect(identifierProblem('a.b')).toMatch(/only letters/);
    expect(identifierProblem('a'.repeat(65))).toMatch(/64/);
    expect(scopeProblems({ env: 'prod', tenant: 'ac me' })).toEqual({ tenant: expect.stringMatching(/only/) });
  });

  it('compares scopes by their dimensions', () => {
    expect(sameScope({ env: 'prod' }, { env: 'prod', tenant: undefined })).toBe(true);
    expect(sameScope({ env: 'prod' }, { env: 'dev' })).toBe(false);
  });

  it('reads a point in time as a position or a time, never both', () => {
    expect(parsePointInTime('position=12')).toEqual({ point: { position: 12 } });
    expect(parsePointInTime('at=2026-01-02T03:04:05Z')).toEqual({ point: { at: '2026-01-02T03:04:05.000Z' } });
    expect(parsePointInTime('')).toEqual({ point: null });
    expect(parsePointInTime('position=-1').error).toMatch(/whole number/);
    expect(parsePointInTime('at=yesterday').error).toMatch(/date/);
    expect(parsePointInTime('position=1&at=2026-01-01T00:00:00Z').error).toMatch(/not both/);
  });
});
