import { useState } from 'react';
import { Link } from '../components/Link';
import { ErrorNotice, Loading } from '../components/Notice';
import type { TimelineEntry } from '../lib/api';
import { href } from '../lib/routes';
import { describeScope, scopeQuery } from '../lib/scope';
import { useAsync } from '../lib/useAsync';
import { useSession } from '../session';

/**
 * A tenant's timeline: every change to its layers across the namespaces the
 * role may see, newest first; each links to its layer's history, where the
 * diff and a rollback are.
 */
export default function TenantHistory({ tenant }: { tenant: string }) {
  const { api } = useSession();
  const first = useAsync(() => api.tenantHistory(tenant), `tenant-history:${tenant}`);
  // Older pages, appended as they are asked for.
  const [older, setOlder] = useState<{ tenant: string; entries: TimelineEntry[]; cursor: string | null } | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreError, setMoreError] = useState<unknown>(null);
  const extra = older?.tenant === tenant ? older : null;
  const entries = [...(first.data?.revisions ?? []), ...(extra?.entries ?? [])];
  const cursor = extra ? extra.cursor : (first.data?.next_cursor ?? null);
  const loadMore = async () => {
    if (!cursor) return;
    setLoadingMore(true);
    setMoreError(null);
    try {
      const page = await api.tenantHistory(tenant, cursor);
      setOlder({ tenant, entries: [...(extra?.entries ?? []), ...page.revisions], cursor: page.next_cursor ?? null });
    } catch (error) {
      setMoreError(error);
    } finally {
      setLoadingMore(false);
    }
  };
  return (
    <>
      <h1>History of tenant {tenant}</h1>
      <p className="hint">Every change to this tenant's layers, in every namespace your role may see, newest first.</p>
      <ErrorNotice error={first.error} />
      {first.loading && !first.data && <Loading what="the tenant's history" />}
      {first.data && (
        <table className="timeline">
          <caption>{entries.length === 0 ? 'No layer of this tenant has changed yet.' : `${entries.length} changes${cursor ? ' (older ones follow)' : ''}`}</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Namespace</th>
              <th scope="col">Layer</th>
              <th scope="col">Revision</th>
              <th scope="col">Who</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={`${e.position} ${e.namespace} ${scopeQuery(e.scope)}`} data-change={`${e.namespace} ${scopeQuery(e.scope)} ${e.revision}`}>
                <td>{new Date(e.at).toLocaleString()}</td>
                <td>
                  <Link href={href({ screen: 'namespace', ns: e.namespace })}>{e.namespace}</Link>
                </td>
                <td>
                  <Link href={href({ screen: 'history', ns: e.namespace, search: scopeQuery(e.scope) })}>{describeScope(e.scope)}</Link>
                </td>
                <td>{e.revision}</td>
                <td>{e.actor}</td>
                <td>{e.message || <em>no message</em>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorNotice error={moreError} />
      {cursor && (
        <p className="actions">
          <button type="button" className="secondary" disabled={loadingMore} onClick={() => void loadMore()}>
            {loadingMore ? 'Loading older changes…' : 'Older changes'}
          </button>
        </p>
      )}
    </>
  );
}
