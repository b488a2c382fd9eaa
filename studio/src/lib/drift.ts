// Drift and usage as the server reports them (GET /v1/drift, GET /v1/usage):
// the order Studio lists instances in, how it words a lag, and which services
// read the keys a change touches.

export interface FollowedDrift {
  namespace: string;
  tenants?: string[];
  applied_position: number;
  latest_position: number;
  behind: boolean;
  behind_since: string | null;
}

export interface DriftInstance {
  env: string;
  service: string;
  instance: string;
  sdk_version: string;
  via: string;
  status: 'current' | 'behind';
  stale: boolean;
  behind_since: string | null;
  behind_secs: number | null;
  started_at: string | null;
  first_seen: string;
  last_seen: string;
  silent_secs: number;
  interval_secs: number;
  subscribers: number;
  stopping: boolean;
  followed: FollowedDrift[];
}

export interface DriftList {
  now: string;
  stale_after_intervals: number;
  current: number;
  behind: number;
  stale: number;
  instances: DriftInstance[];
}

export interface KeyUsage {
  key: string;
  reads: number;
  read_by: { env: string; service: string; reads: number }[];
}

export interface Usage {
  namespace: string;
  window: string;
  since: string;
  read: KeyUsage[];
  never_read: string[];
}

/** Behind (reporting) first, then stale, then current; within each, by service and instance. */
export function sortInstances(instances: DriftInstance[]): DriftInstance[] {
  const rank = (i: DriftInstance) => (i.stale ? 1 : i.status === 'behind' ? 0 : 2);
  return [...instances].sort(
    (a, b) => rank(a) - rank(b) || a.env.localeCompare(b.env) || a.service.localeCompare(b.service) || a.instance.localeCompare(b.instance),
  );
}

/** What a person reads for an instance's state: "behind", "current", or "stale (…)". */
export function statusLabel(instance: DriftInstance): string {
  if (!instance.stale) return instance.status;
  return `stale, last ${instance.status}${instance.stopping ? ', stopped' : ''}`;
}

/** A duration in words: "45 s", "3 min 5 s", "2 h 10 min", "3 d 4 h". */
export function describeSeconds(total: number): string {
  const s = Math.max(0, Math.floor(total));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** The top-level key a JSON pointer is in ("/limits/max" → "limits"); null for the whole document. */
export function topKey(pointer: string): string | null {
  if (!pointer.startsWith('/')) return null;
  const token = pointer.slice(1).split('/')[0] ?? '';
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

/**
 * The services that read any of the keys the changed pointers are in, as
 * "svc-a, svc-b" (by name, each once); empty when none did.
 */
export function readBy(usage: Usage | null | undefined, pointers: string[]): string[] {
  if (!usage) return [];
  const keys = new Set(pointers.map(topKey).filter((k): k is string => k !== null));
  const wholeDocument = pointers.some((p) => topKey(p) === null);
  const services = new Set<string>();
  for (const entry of usage.read) {
    if (wholeDocument || keys.has(entry.key)) for (const by of entry.read_by) services.add(by.service);
  }
  return [...services].sort();
}
