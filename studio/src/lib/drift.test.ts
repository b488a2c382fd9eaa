import { describe, expect, it } from 'vitest';
import { describeSeconds, readBy, sortInstances, statusLabel, topKey, type DriftInstance, type Usage } from './drift';

function instance(id: string, status: 'current' | 'behind', stale = false, service = 'web'): DriftInstance {
  return {
    env: 'prod',
    service,
    instance: id,
    sdk_version: '0.1.0',
    via: 'nats',
    status,
    stale,
    behind_since: null,
    behind_secs: null,
    started_at: null,
    first_seen: '2026-01-01T00:00:00Z',
    last_seen: '2026-01-01T00:00:00Z',
    silent_secs: 1,
    interval_secs: 15,
    subscribers: 0,
    stopping: false,
    followed: [],
  };
}

describe('drift', () => {
  it('lists reporting instances that are behind first, then stale ones, then current ones', () => {
    const sorted = sortInstances([instance('c', 'current'), instance('s', 'behind', true), instance('b', 'behind'), instance('a', 'current')]);
    expect(sorted.map((i) => i.instance)).toEqual(['b', 's', 'a', 'c']);
  });

  it('says what a stale instance last reported', () => {
    expect(statusLabel(instance('a', 'behind'))).toBe('behind');
    expect(statusLabel({ ...instance('a', 'behind', true), stopping: true })).toBe('stale, last behind, stopped');
    expect(statusLabel(instance('a', 'current', true))).toBe('stale, last current');
  });

  it('words durations', () => {
    expect(describeSeconds(45)).toBe('45 s');
    expect(describeSeconds(185)).toBe('3 min 5 s');
    expect(describeSeconds(7800)).toBe('2 h 10 min');
    expect(describeSeconds(3 * 86400 + 4 * 3600)).toBe('3 d 4 h');
    expect(describeSeconds(-3)).toBe('0 s');
  });
});

describe('usage', () => {
  const usage: Usage = {
    namespace: 'checkout',
    window: '7d',
    since: '2026-01-01T00:00:00Z',
    read: [
      { key: 'limits', reads: 9, read_by: [{ env: 'prod', service: 'svc-b', reads: 9 }] },
      { key: 'mode', reads: 3, read_by: [{ env: 'prod', service: 'svc-a', reads: 2 }, { env: 'dev', service: 'svc-b', reads: 1 }] },
      { key: 'a/b', reads: 1, read_by: [{ env: 'prod', service: 'svc-c', reads: 1 }] },
    ],
    never_read: ['banner'],
  };

  it('finds the key a pointer is in', () => {
    expect(topKey('/limits/max')).toBe('limits');
    expect(topKey('/a~1b')).toBe('a/b');
    expect(topKey('')).toBeNull();
  });

  it('names the services that read the changed keys, each once', () => {
    expect(readBy(usage, ['/mode', '/limits/max'])).toEqual(['svc-a', 'svc-b']);
    expect(readBy(usage, ['/a~1b'])).toEqual(['svc-c']);
    expect(readBy(usage, ['/banner'])).toEqual([]);
    expect(readBy(usage, [''])).toEqual(['svc-a', 'svc-b', 'svc-c']);
    expect(readBy(null, ['/mode'])).toEqual([]);
  });
});
