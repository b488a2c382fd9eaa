import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Link } from '../components/Link';
import { ErrorNotice, Loading } from '../components/Notice';
import { ScopeFields } from '../components/ScopeFields';
import { explain } from '../lib/explain';
import { href } from '../lib/routes';
import { describeScope, parsePointInTime, parseScope, scopeParams, scopeProblems, scopeQuery, type Scope } from '../lib/scope';
import { useAsync } from '../lib/useAsync';
import { navigate } from '../navigation';
import { useSession } from '../session';

/** A datetime-local value (local time, minutes) for an RFC 3339 time. */
function toLocalInput(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function Resolved({ ns, search }: { ns: string; search: string }) {
  const { api, me } = useSession();
  const context = parseScope(search);
  const { point, error: pointError } = parsePointInTime(search);
  const fixed: Scope = me.role.tenant ? { tenant: me.role.tenant } : {};
  const [draft, setDraft] = useState<Scope>({ ...context, ...fixed });
  const [position, setPosition] = useState(point && 'position' in point ? String(point.position) : '');
  const [at, setAt] = useState(point && 'at' in point ? toLocalInput(point.at) : '');
  const resolved = useAsync(() => api.resolved(ns, context, { explain: true, point }), `resolved:${ns}:${search}`);
  const [live, setLive] = useState<'off' | 'on' | 'failed'>('off');
  const reload = resolved.reload;
  const shownPosition = resolved.data?.position;
  const latestShown = useRef(0);
  useEffect(() => {
    latestShown.current = shownPosition ?? 0;
  }, [shownPosition]);
  const contextKey = scopeQuery(context);
  const showsNow = point === null;

  // The view of "now" follows changes as they happen (the SSE watch); a view
  // of the past stays as it was.
  useEffect(() => {
    if (!showsNow) return;
    const abort = new AbortController();
    api
      .watch(
        ns,
        parseScope(contextKey),
        (position) => {
          setLive('on');
          if (position > latestShown.current) reload();
        },
        abort.signal,
      )
      .catch(() => !abort.signal.aborted && setLive('failed'));
    return () => abort.abort();
  }, [api, ns, contextKey, showsNow, reload]);

  const show = (event: FormEvent) => {
    event.preventDefault();
    const query = scopeParams({ ...draft, ...fixed });
    if (position.trim()) query.set('position', position.trim());
    else if (at) query.set('at', new Date(at).toISOString());
    navigate(href({ screen: 'resolved', ns, search: query.toString() }));
  };
  const now = () => {
    setPosition('');
    setAt('');
    navigate(href({ screen: 'resolved', ns, search: scopeQuery(context) }));
  };
  const rows = resolved.data ? explain(resolved.data.values, resolved.data.sources) : [];
  const invalid = Object.keys(scopeProblems(draft)).length > 0;

  return (
    <>
      <p className="crumbs">
        <Link href={href({ screen: 'namespace', ns })}>Namespace {ns}</Link>
      </p>
      <h1>
        Resolved {ns} for {describeScope(context)}
      </h1>
      <form className="panel" onSubmit={show} aria-label="Context and point in time">
        <fieldset>
          <legend>Context</legend>
          <ScopeFields idPrefix="ctx" scope={draft} fixed={fixed} onChange={setDraft} />
        </fieldset>
        <fieldset>
          <legend>Point in time (empty: now)</legend>
          <div className="scope-fields">
          <div className="field">
            <label htmlFor="pit-position">As of position</label>
            <input id="pit-position" inputMode="numeric" pattern="[0-9]*" value={position} onChange={(e) => setPosition(e.target.value)} />
          </div>
          <div className="field">
            <label htmlFor="pit-at">As of time</label>
            <input id="pit-at" type="datetime-local" step="1" value={at} disabled={position.trim() !== ''} onChange={(e) => setAt(e.target.value)} />
          </div>
          </div>
        </fieldset>
        <p className="actions">
          <button type="submit" disabled={invalid}>
            Show
          </button>
          {point && (
            <button type="button" className="secondary" onClick={now}>
              Back to now
            </button>
          )}
        </p>
      </form>
      {pointError && (
        <p className="notice error" role="alert">
          The point in time is not valid: {pointError}.
        </p>
      )}
      <ErrorNotice error={resolved.error} />
      {resolved.loading && !resolved.data && <Loading what="the resolved configuration" />}
      {resolved.data && (
        <section aria-labelledby="values-heading">
          <h2 id="values-heading">
            {point ? ('position' in point ? `As of position ${point.position}` : `As of ${new Date(point.at).toLocaleString()}`) : 'Now'}
            <span className="position" data-testid="resolved-position">
              {' '}
              (position {resolved.data.position})
            </span>
            {!point && (
              <span className="live" data-testid="live">
                {live === 'on' ? ' · live' : live === 'failed' ? ' · not live (reload to update)' : ''}
              </span>
            )}
          </h2>
          {rows.length === 0 ? (
            <p>No values resolve for this context.</p>
          ) : (
            <table className="explain" data-testid="explain">
              <thead>
                <tr>
                  <th scope="col">Key</th>
                  <th scope="col">Value</th>
                  <th scope="col">From layer</th>
                  <th scope="col">Revision</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((row) => (
                  <tr key={row.pointer} data-pointer={row.pointer}>
                    <th scope="row">
                      <code>{row.pointer || '/'}</code>
                    </th>
                    <td>
                      <code className="value">{JSON.stringify(row.value)}</code>
                    </td>
                    <td>
                      {row.source?.origin === 'layer' ? (
                        <Link href={href({ screen: 'history', ns, search: scopeQuery(row.source.scope) })}>{describeScope(row.source.scope)}</Link>
                      ) : row.source?.origin === 'schema-default' ? (
                        'schema default'
                      ) : (
                        'unknown'
                      )}
                    </td>
                    <td>{row.source?.origin === 'layer' ? row.source.revision : '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <details>
            <summary>The resolved document as JSON</summary>
            <pre className="json" tabIndex={0} aria-label="Resolved JSON">
              {JSON.stringify(resolved.data.values, null, 2)}
            </pre>
          </details>
        </section>
      )}
    </>
  );
}
