import { describe, expect, it } from 'vitest';
import { describeSide, inputsFromPoint, parseSide, pointInputParams, sideQuery } from './compareSide';

describe('a side of a comparison', () => {
  it('reads a context and a position from its own query string', () => {
    expect(parseSide('env=prod&tenant=acme&position=12')).toEqual({ side: { scope: { env: 'prod', tenant: 'acme' }, point: { position: 12 } }, error: undefined });
    expect(parseSide('')).toEqual({ side: { scope: {}, point: null }, error: undefined });
  });

  it('reads a time as an RFC 3339 instant', () => {
    expect(parseSide('at=2026-03-01T10:00:00Z').side.point).toEqual({ at: '2026-03-01T10:00:00.000Z' });
  });

  it('says why a malformed point in time is refused, keeping the context', () => {
    const parsed = parseSide('env=dev&position=twelve');
    expect(parsed.side.scope).toEqual({ env: 'dev' });
    expect(parsed.error).toBe('a position is a whole number');
    expect(parseSide('position=1&at=2026-03-01T10:00:00Z').error).toMatch(/not both/);
  });

  it('round-trips through its query string, scope first, in canonical order', () => {
    const side = { scope: { tenant: 'acme', env: 'prod' }, point: { position: 7 } };
    expect(sideQuery(side)).toBe('env=prod&tenant=acme&position=7');
    expect(parseSide(sideQuery(side)).side).toEqual(side);
    expect(sideQuery({ scope: {}, point: { at: '2026-03-01T10:00:00.000Z' } })).toBe('at=2026-03-01T10%3A00%3A00.000Z');
  });

  it('describes a side of now and a side in the past', () => {
    expect(describeSide({ scope: { env: 'prod' }, point: null })).toBe('env=prod');
    expect(describeSide({ scope: {}, point: { position: 3 } })).toBe('global as of position 3');
  });

  it('takes the position over the time from a picker, nothing as now, a malformed input as typed', () => {
    expect(pointInputParams(' 5 ', '2026-03-01T10:00').toString()).toBe('position=5');
    expect(pointInputParams('', '').toString()).toBe('');
    expect(parseSide(pointInputParams('x', '').toString()).error).toBe('a position is a whole number');
    const local = parseSide(pointInputParams('', '2026-03-01T10:00:00').toString()).side.point;
    expect(local && 'at' in local && new Date(local.at).getTime()).toBe(new Date(2026, 2, 1, 10, 0, 0).getTime());
  });

  it('fills a picker from a point in time, the time in local time', () => {
    expect(inputsFromPoint(null)).toEqual({ position: '', at: '' });
    expect(inputsFromPoint({ position: 9 })).toEqual({ position: '9', at: '' });
    expect(inputsFromPoint({ at: new Date(2026, 2, 1, 10, 5, 7).toISOString() })).toEqual({ position: '', at: '2026-03-01T10:05:07' });
  });
});
