import { useState } from 'react';
import { Link } from '../components/Link';
import { ErrorNotice, InfoNotice, Loading } from '../components/Notice';
import { ReadBy } from '../components/ReadBy';
import type { ChangeRequest, Json } from '../lib/api';
import { href } from '../lib/routes';
import { describeScope, scopeQuery } from '../lib/scope';
import { useAsync } from '../lib/useAsync';
import { navigate } from '../navigation';
import { useSession } from '../session';

const STATUSES = ['open', 'applied', 'rejected', 'withdrawn', 'failed'];

export default function ChangeRequests({ search }: { search: string }) {
  const { api } = useSession();
  const status = new URLSearchParams(search).get('status') ?? 'open';
  const list = useAsync(() => api.changeRequests(status || undefined), `crs:${status}`);
  const [notice, setNotice] = useState<string | null>(null);
  return (
    <>
      <h1>Change requests</h1>
      <div className="field inline">
        <label htmlFor="cr-status">Status</label>
        <select
          id="cr-status"
          value={status}
          onChange={(e) => navigate(href({ screen: 'change-requests', search: new URLSearchParams({ status: e.target.value }).toString() }))}
        >
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      {notice && <InfoNotice>{notice}</InfoNotice>}
      <ErrorNotice error={list.error} />
      {list.loading && !list.data && <Loading what="change requests" />}
      {list.data && list.data.length === 0 && <p>No {status} change requests.</p>}
      <ul className="cards">
        {(list.data ?? []).map((cr) => (
          <ChangeRequestCard
            key={cr.id}
            request={cr}
            onDecided={(text) => {
              setNotice(text);
              list.reload();
            }}
          />
        ))}
      </ul>
    </>
  );
}

function ChangeRequestCard({ request, onDecided }: { request: ChangeRequest; onDecided: (text: string) => void }) {
  const { api, me } = useSession();
  const [diff, setDiff] = useState<Record<string, Json> | null>(null);
  const [reason, setReason] = useState('');
  const [error, setError] = useState<unknown>(null);
  const own = request.author === me.principal;
  const decide = async (decision: 'approve' | 'reject' | 'withdraw') => {
    setError(null);
    try {
      await api.decide(request.id, decision, reason);
      onDecided(`Change request ${request.id}: ${decision === 'approve' ? 'approved' : decision === 'reject' ? 'rejected' : 'withdrawn'}.`);
    } catch (e) {
      setError(e);
    }
  };
  const reasonId = `reason-${request.id}`;
  return (
    <li className="card" data-change-request={request.id}>
      <h2>
        <Link href={href({ screen: 'layer', ns: request.namespace, search: scopeQuery(request.scope) })}>
          {request.namespace} · {describeScope(request.scope)}
        </Link>
      </h2>
      <p>
        {request.status} · opened by {request.author} on {new Date(request.opened_at).toLocaleString()} from revision {request.base_revision}
        {request.decided_by && ` · decided by ${request.decided_by}`}
        {request.reason && ` (${request.reason})`}
      </p>
      <p>{request.message || <em>no message</em>}</p>
      <button type="button" className="secondary" onClick={() => api.changeRequest(request.id).then((r) => setDiff(r.diff), setError)}>
        Show what it changes
      </button>
      {diff && (
        <>
        <table className="explain">
          <caption>Resolved values at the layer's scope, before and after</caption>
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Before</th>
              <th scope="col">After</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(diff).map(([pointer, change]) => {
              const c = (change ?? {}) as Record<string, Json>;
              return (
                <tr key={pointer}>
                  <th scope="row">
                    <code>{pointer || '/'}</code>
                  </th>
                  <td className="line removed">{'before' in c ? JSON.stringify(c.before) : '(absent)'}</td>
                  <td className="line added">{'after' in c ? JSON.stringify(c.after) : '(absent)'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
        <ReadBy ns={request.namespace} pointers={Object.keys(diff)} />
        </>
      )}
      {request.status === 'open' && (me.may.write_layers || own) && (
        <div className="decision">
          <div className="field">
            <label htmlFor={reasonId}>Reason</label>
            <input id={reasonId} value={reason} onChange={(e) => setReason(e.target.value)} />
          </div>
          <p className="actions">
            {!own && me.may.write_layers && (
              <>
                <button type="button" onClick={() => decide('approve')}>
                  Approve
                </button>
                <button type="button" className="secondary" onClick={() => decide('reject')}>
                  Reject
                </button>
              </>
            )}
            {own && (
              <button type="button" className="secondary" onClick={() => decide('withdraw')}>
                Withdraw
              </button>
            )}
          </p>
        </div>
      )}
      <ErrorNotice error={error} />
    </li>
  );
}
