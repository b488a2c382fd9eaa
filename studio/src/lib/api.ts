// The public HTTP API v1, as Studio uses it: every call carries the signed-in
// principal's bearer token, and every refusal becomes an ApiProblem.

import { problemFrom } from './problem';
import type { RolloutControl, RolloutPlan, RolloutStep } from './rollouts';
import { parseEvents } from './sse';
import type { PointInTime, Scope } from './scope';
import { pointParams, scopeParams } from './scope';
import type { DriftList, Usage } from './drift';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface Role {
  role: 'admin' | 'tenant-admin' | 'editor' | 'viewer' | 'service' | 'auditor';
  tenant?: string;
  namespaces?: string[];
  env?: string;
  service?: string;
}

export interface WhoAmI {
  principal: string;
  via: 'bootstrap' | 'api-key' | 'jwt';
  role: Role;
  may: {
    administer: boolean;
    write_layers: boolean;
    read_audit: boolean;
    manage_tokens: boolean;
    read_sensitive: boolean;
  };
}

export interface Namespace {
  name: string;
  description: string;
  schema: JsonObject | null;
  /** `config` (the default) or `flags` (`{"flags": {…}}` in flagd's format). */
  kind?: 'config' | 'flags';
  approval?: { scopes: Scope[] } | null;
  revision: number;
  position: number;
  updated_at: string;
}

export interface LayerRevision {
  scope: Scope;
  values: JsonObject;
  revision: number;
  locked: string[];
  position: number;
  at: string;
  actor: string;
  message: string;
}

/** Where a resolved value comes from: a layer at a revision, or a schema default. */
export type Source = { origin: 'layer'; scope: Scope; revision: number } | { origin: 'schema-default' };

export interface Resolved {
  values: JsonObject;
  position: number;
  sources?: Record<string, Source>;
}

/** A value a layer may not set, and the layer that locks it. */
export interface BindingLock {
  pointer: string;
  locked_by: Scope;
}

export interface WriteResult {
  revision: number;
  position: number;
}

/** A write to a layer under an approval policy opens a change request instead. */
export interface ChangeRequestOpened {
  change_request: string;
  status: 'open';
  position: number;
  detail: string;
}

export interface ChangeRequest {
  id: string;
  namespace: string;
  scope: Scope;
  change: Json;
  message: string;
  base_revision: number;
  author: string;
  status: string;
  decided_by?: string | null;
  reason?: string | null;
  opened_at: string;
  decided_at?: string | null;
  position: number;
}

export interface Tenant {
  id: string;
  edition: string;
  name?: string | null;
  revision?: number;
  updated_at?: string;
}

/** A revision of one of a tenant's layers, in the tenant's timeline. */
export interface TimelineEntry extends LayerRevision {
  namespace: string;
  change: Json;
}

/** A value of a layer's current revision that a search found. */
export interface SearchMatch {
  namespace: string;
  scope: Scope;
  pointer: string;
  value: Json;
  revision: number;
}

export interface SearchResults {
  matches: SearchMatch[];
  truncated: boolean;
}

export interface AuditEntry {
  [key: string]: Json;
}

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

interface RequestOptions {
  query?: URLSearchParams;
  body?: unknown;
  ifMatch?: number;
}

export class ApiClient {
  private readonly token: string;
  private readonly base: string;
  private readonly fetch: Fetch;
  /**
   * The highest position a write of this session was answered with. Every
   * read sends it as `ECS-Min-Position`, so a read that a load balancer sends
   * to another instance than the write's still sees the write (it waits, or
   * answers 503 `behind`).
   */
  private lastWrite = 0;

  constructor(token: string, options: { base?: string; fetch?: Fetch } = {}) {
    this.token = token;
    this.base = options.base ?? '';
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** The URL of an API path with its query. */
  url(path: string, query?: URLSearchParams): string {
    const q = query?.toString();
    return `${this.base}${path}${q ? `?${q}` : ''}`;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<{ data: T; etag: string | null }> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.token}`,
      Accept: 'application/json',
    };
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    if (options.ifMatch !== undefined) headers['If-Match'] = `"${options.ifMatch}"`;
    if (method === 'GET') Object.assign(headers, this.readHeaders());
    const response = await this.fetch(this.url(path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const text = await response.text();
    if (!response.ok) throw problemFrom(response.status, text);
    const data = (text ? JSON.parse(text) : null) as T;
    if (method !== 'GET') this.noteWrite(data);
    return { data, etag: response.headers.get('ETag') };
  }

  /** Remembers the position a write was answered with. */
  private noteWrite(data: unknown): void {
    const position = (data as { position?: unknown } | null)?.position;
    if (typeof position === 'number' && Number.isSafeInteger(position) && position > this.lastWrite) {
      this.lastWrite = position;
    }
  }

  /** What every read sends: the position of this session's last write, once there is one. */
  private readHeaders(): Record<string, string> {
    return this.lastWrite > 0 ? { 'ECS-Min-Position': String(this.lastWrite) } : {};
  }

  async get<T>(path: string, query?: URLSearchParams): Promise<T> {
    return (await this.request<T>('GET', path, { query })).data;
  }

  whoami(): Promise<WhoAmI> {
    return this.get('/v1/whoami');
  }

  async namespaces(): Promise<Namespace[]> {
    return (await this.get<{ namespaces: Namespace[] }>('/v1/namespaces')).namespaces;
  }

  namespace(ns: string): Promise<Namespace> {
    return this.get(`/v1/namespaces/${encodeURIComponent(ns)}`);
  }

  layer(ns: string, scope: Scope, point: PointInTime | null = null): Promise<LayerRevision> {
    return this.get(`/v1/namespaces/${encodeURIComponent(ns)}/layer`, merge(scopeParams(scope), pointParams(point)));
  }

  /** Replaces the layer, conditional on `ifMatch` (the revision the edit started from). */
  async putLayer(
    ns: string,
    scope: Scope,
    body: { values: JsonObject; message: string; lock?: string[] },
    ifMatch?: number,
  ): Promise<WriteResult | ChangeRequestOpened> {
    return (
      await this.request<WriteResult | ChangeRequestOpened>('PUT', `/v1/namespaces/${encodeURIComponent(ns)}/layer`, {
        query: scopeParams(scope),
        body,
        ifMatch,
      })
    ).data;
  }

  /** The locks held by weaker layers that bind the layer at `scope`. */
  async locks(ns: string, scope: Scope): Promise<BindingLock[]> {
    return (await this.get<{ locks: BindingLock[] }>(`/v1/namespaces/${encodeURIComponent(ns)}/locks`, scopeParams(scope))).locks;
  }

  async history(ns: string, scope: Scope): Promise<LayerRevision[]> {
    return (
      await this.get<{ revisions: LayerRevision[] }>(
        `/v1/namespaces/${encodeURIComponent(ns)}/layer/history`,
        scopeParams(scope),
      )
    ).revisions;
  }

  async rollback(ns: string, scope: Scope, revision: number, message: string): Promise<WriteResult | ChangeRequestOpened> {
    return (
      await this.request<WriteResult | ChangeRequestOpened>('POST', `/v1/namespaces/${encodeURIComponent(ns)}/layer/rollback`, {
        query: scopeParams(scope),
        body: { revision, message },
      })
    ).data;
  }

  resolved(ns: string, context: Scope, options: { explain?: boolean; point?: PointInTime | null } = {}): Promise<Resolved> {
    const query = merge(scopeParams(context), pointParams(options.point ?? null));
    if (options.explain) query.set('explain', 'true');
    return this.get(`/v1/namespaces/${encodeURIComponent(ns)}/resolved`, query);
  }

  /**
   * Follows the resolved document for a context (`GET .../watch`, server-sent
   * events) and calls `onChange` with each new position until `signal` aborts.
   */
  async watch(ns: string, context: Scope, onChange: (position: number) => void, signal: AbortSignal): Promise<void> {
    const response = await this.fetch(this.url(`/v1/namespaces/${encodeURIComponent(ns)}/watch`, scopeParams(context)), {
      headers: { Authorization: `Bearer ${this.token}`, Accept: 'text/event-stream', ...this.readHeaders() },
      signal,
    });
    if (!response.ok || !response.body) throw problemFrom(response.status, await response.text());
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const parsed = parseEvents(buffer + value);
      buffer = parsed.rest;
      for (const event of parsed.events) {
        if (event.event !== 'config') continue;
        const position = Number((JSON.parse(event.data) as { position?: number }).position);
        if (Number.isFinite(position)) onChange(position);
      }
    }
  }

  /** A page of a tenant's timeline: its layers' revisions across namespaces, newest first. */
  tenantHistory(tenant: string, cursor?: string): Promise<{ tenant: string; revisions: TimelineEntry[]; next_cursor?: string | null }> {
    const query = new URLSearchParams();
    if (cursor) query.set('cursor', cursor);
    return this.get(`/v1/tenants/${encodeURIComponent(tenant)}/history`, query);
  }

  /** Current values, across every namespace and layer the caller may read, by key and by value. */
  search(q: string, limit = 50): Promise<SearchResults> {
    return this.get('/v1/search', new URLSearchParams({ q, limit: String(limit) }));
  }

  /** Every SDK instance the role may see, judged against what it follows. */
  drift(): Promise<DriftList> {
    return this.get('/v1/drift');
  }

  /** The keys of a namespace SDK clients read in a window, and those nobody read. */
  usage(namespace: string, window = '7d'): Promise<Usage> {
    return this.get('/v1/usage', new URLSearchParams({ namespace, window }));
  }

  async tenants(): Promise<Tenant[]> {
    return (await this.get<{ tenants: Tenant[] }>('/v1/tenants')).tenants;
  }

  /**
   * Creates or changes a tenant. `ifMatch` is the revision the edit started
   * from; 0 creates only a tenant that does not exist yet, so neither form can
   * overwrite a change it has not seen.
   */
  async putTenant(id: string, body: { edition: string; name: string | null }, ifMatch: number): Promise<WriteResult> {
    return (await this.request<WriteResult>('PUT', `/v1/tenants/${encodeURIComponent(id)}`, { body, ifMatch })).data;
  }

  async changeRequests(status?: string): Promise<ChangeRequest[]> {
    const query = new URLSearchParams();
    if (status) query.set('status', status);
    return (await this.get<{ change_requests: ChangeRequest[] }>('/v1/change-requests', query)).change_requests;
  }

  changeRequest(id: string): Promise<{ request: ChangeRequest; diff: Record<string, Json> }> {
    return this.get(`/v1/change-requests/${encodeURIComponent(id)}`);
  }

  async decide(id: string, decision: 'approve' | 'reject' | 'withdraw', reason: string): Promise<void> {
    await this.request('POST', `/v1/change-requests/${encodeURIComponent(id)}/${decision}`, { body: { reason } });
  }

  /** The rollout plans of a flags namespace the caller may read, oldest first. */
  async rollouts(ns: string): Promise<RolloutPlan[]> {
    return (await this.get<{ rollouts: RolloutPlan[] }>(`/v1/namespaces/${encodeURIComponent(ns)}/rollouts`)).rollouts;
  }

  /** Creates a rollout plan of `flag` in the layer at `scope`. */
  async createRollout(ns: string, body: { scope: Scope; flag: string; steps: RolloutStep[] }): Promise<RolloutPlan> {
    return (await this.request<RolloutPlan>('POST', `/v1/namespaces/${encodeURIComponent(ns)}/rollouts`, { body })).data;
  }

  /** Pauses, resumes or cancels a rollout plan; answers the plan as it is then. */
  async controlRollout(ns: string, id: string, control: RolloutControl): Promise<RolloutPlan> {
    return (await this.request<RolloutPlan>('POST', `/v1/namespaces/${encodeURIComponent(ns)}/rollouts/${encodeURIComponent(id)}/${control}`)).data;
  }

  /** Every audit entry matching `filters`, as JSON Lines (`GET /v1/audit/export`). */
  async auditExport(filters: Record<string, string>): Promise<Blob> {
    const response = await this.fetch(this.url('/v1/audit/export', auditQuery(filters)), {
      headers: { Authorization: `Bearer ${this.token}`, Accept: 'application/x-ndjson', ...this.readHeaders() },
    });
    if (!response.ok) throw problemFrom(response.status, await response.text());
    return new Blob([await response.text()], { type: 'application/x-ndjson' });
  }

  audit(filters: Record<string, string>, cursor?: string): Promise<{ entries: AuditEntry[]; next_cursor?: string | null }> {
    const query = auditQuery(filters);
    if (cursor) query.set('cursor', cursor);
    return this.get('/v1/audit', query);
  }
}

/** The audit filters that are set, as query parameters. */
export function auditQuery(filters: Record<string, string>): URLSearchParams {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) if (value.trim()) query.set(key, value.trim());
  return query;
}

function merge(a: URLSearchParams, b: URLSearchParams): URLSearchParams {
  const out = new URLSearchParams(a);
  b.forEach((value, key) => out.set(key, value));
  return out;
}

/** Whether a write applied, or opened a change request awaiting approval. */
export function isChangeRequest(result: WriteResult | ChangeRequestOpened): result is ChangeRequestOpened {
  return 'change_request' in result;
}
