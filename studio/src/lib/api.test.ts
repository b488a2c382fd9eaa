import { describe, expect, it } from 'vitest';
import { ApiClient, isChangeRequest, type Fetch } from './api';
import { ApiProblem } from './problem';

/** A fetch that records each request and answers from a list. */
function recording(answers: Array<{ status: number; body?: unknown; headers?: Record<string, string> }>) {
  const calls: Array<{ url: string; init?: RequestInit }> = [];
  const fetch: Fetch = async (url, init) => {
    calls.push({ url, init });
    const answer = answers.shift() ?? { status: 500 };
    return new Response(answer.body === undefined ? null : JSON.stringify(answer.body), {
      status: answer.status,
      headers: answer.headers,
    });
  };
  return { calls, fetch };
}

describe('the API client', () => {
  it('sends the bearer token and the scope as query parameters', async () => {
    const { calls, fetch } = recording([{ status: 200, body: { scope: {}, values: { a: 1 }, revision: 3 }, headers: { ETag: '"3"' } }]);
    const api = new ApiClient('secret', { fetch });
    const layer = await api.layer('check out', { tenant: 'acme', env: 'prod' }, { position: 7 });
    expect(layer.revision).toBe(3);
    expect(calls[0]?.url).toBe('/v1/namespaces/check%20out/layer?env=prod&tenant=acme&position=7');
    expect((calls[0]?.init?.headers as Record<string, string>).Authorization).toBe('Bearer secret');
  });

  it('sends the position of its last write with every read after it', async () => {
    const { calls, fetch } = recording([
      { status: 200, body: { namespaces: [] } },
      { status: 200, body: { revision: 4, position: 9 } },
      { status: 200, body: { revision: 1, position: 5 } },
      { status: 200, body: { namespaces: [] } },
    ]);
    const api = new ApiClient('t', { fetch });
    await api.namespaces();
    const before = calls[0]?.init?.headers as Record<string, string>;
    expect(before['ECS-Min-Position']).toBeUndefined();
    await api.putLayer('checkout', {}, { values: { a: 1 }, message: 'raise' }, 3);
    const write = calls[1]?.init?.headers as Record<string, string>;
    expect(write['ECS-Min-Position']).toBeUndefined();
    // An older position answered later does not move it back.
    await api.putLayer('checkout', { env: 'dev' }, { values: { a: 2 }, message: 'dev' });
    await api.namespaces();
    const after = calls[3]?.init?.headers as Record<string, string>;
    expect(after['ECS-Min-Position']).toBe('9');
  });

  it('makes a layer write conditional with If-Match', async () => {
    const { calls, fetch } = recording([{ status: 200, body: { revision: 4, position: 9 } }]);
    const api = new ApiClient('t', { fetch });
    const result = await api.putLayer('checkout', {}, { values: { a: 1 }, message: 'raise' }, 3);
    expect(isChangeRequest(result)).toBe(false);
    const headers = calls[0]?.init?.headers as Record<string, string>;
    expect(headers['If-Match']).toBe('"3"');
    expect(calls[0]?.init?.method).toBe('PUT');
    expect(JSON.parse(String(calls[0]?.init?.body))).toEqual({ values: { a: 1 }, message: 'raise' });
  });

  it('recognises a write that opened a change request', async () => {
    const { fetch } = recording([{ status: 202, body: { change_request: 'abc', status: 'open', position: 2, detail: 'needs approval' } }]);
    const result = await new ApiClient('t', { fetch }).putLayer('checkout', { env: 'prod' }, { values: {}, message: '' });
    expect(isChangeRequest(result)).toBe(true);
  });

  it('turns a refusal into an ApiProblem carrying the problem', async () => {
    const { fetch } = recording([
      { status: 412, body: { status: 412, code: 'stale-revision', detail: 'the layer is at revision 5' } },
    ]);
    const error = await new ApiClient('t', { fetch }).putLayer('checkout', {}, { values: {}, message: '' }, 4).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiProblem);
    expect((error as ApiProblem).isConflict).toBe(true);
    expect((error as ApiProblem).detail).toBe('the layer is at revision 5');
  });

  it('asks for explain and a past position on the resolved view', async () => {
    const { calls, fetch } = recording([{ status: 200, body: { values: {}, position: 3, sources: {} } }]);
    await new ApiClient('t', { fetch }).resolved('checkout', { tenant: 'acme' }, { explain: true, point: { at: '2026-01-01T00:00:00.000Z' } });
    expect(calls[0]?.url).toBe('/v1/namespaces/checkout/resolved?tenant=acme&at=2026-01-01T00%3A00%3A00.000Z&explain=true');
  });

  it('creates a tenant only if it does not exist yet (If-Match 0)', async () => {
    const { calls, fetch } = recording([{ status: 201, body: { revision: 1, position: 4 } }]);
    await new ApiClient('t', { fetch }).putTenant('acme', { edition: 'pro', name: 'Acme' }, 0);
    expect(calls[0]?.url).toBe('/v1/tenants/acme');
    expect(calls[0]?.init?.method).toBe('PUT');
    expect((calls[0]?.init?.headers as Record<string, string>)['If-Match']).toBe('"0"');
    expect(JSON.parse(String(calls[0]?.init?.body))).toEqual({ edition: 'pro', name: 'Acme' });
  });

  it('exports the audit log with the filters that are set', async () => {
    const calls: string[] = [];
    const fetch: Fetch = async (url) => {
      calls.push(url);
      return new Response('{"a":1}\n{"a":2}\n', { status: 200, headers: { 'Content-Type': 'application/x-ndjson' } });
    };
    const blob = await new ApiClient('t', { fetch }).auditExport({ tenant: ' acme ', actor: '', outcome: 'refused' });
    expect(calls[0]).toBe('/v1/audit/export?tenant=acme&outcome=refused');
    expect(await blob.text()).toBe('{"a":1}\n{"a":2}\n');
  });

  it('reports a refused export as an ApiProblem', async () => {
    const { fetch } = recording([{ status: 403, body: { status: 403, code: 'forbidden', detail: 'only admins and auditors' } }]);
    const error = await new ApiClient('t', { fetch }).auditExport({}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiProblem);
    expect((error as ApiProblem).detail).toBe('only admins and auditors');
  });

  it('searches values with the query and a limit', async () => {
    const { calls, fetch } = recording([{ status: 200, body: { matches: [], truncated: false } }]);
    const results = await new ApiClient('t', { fetch }).search('winter sale', 20);
    expect(calls[0]?.url).toBe('/v1/search?q=winter+sale&limit=20');
    expect(results.truncated).toBe(false);
  });
});
