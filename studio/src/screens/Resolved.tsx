import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Link } from '../components/Link';
import { ErrorNotice, Loading } from '../components/Notice';
import { PointInTimeFields } from '../components/PointInTimeFields';
import { ScopeFields } from '../components/ScopeFields';
import { inputsFromPoint, pointInputParams } from '../lib/compareSide';
import { explain } from '../lib/explain';
import { href } from '../lib/routes';
import { describeScope, parsePointInTime, parseScope, scopeParams, scopeProblems, scopeQuery, type Scope } from '../lib/scope';
import { useAsync } from '../lib/useAsync';
import { navigate } from '../navigation';
import { useSession } from '../session';

export function Resolved({ ns, search }: { ns: string; search: string }) {
  const { api, me } = useSession();
  const context = parseScope(search);
  const { point, error: pointError } = parsePointInTime(search);
  const fixed: Scope = me.role.tenant ? { tenant: me.role.tenant } : {};
  const [draft, setDraft] = useState<Scope>({ ...context, ...fixed });
  const [inputs, setInputs] = useState(() => inputsFromPoint(point));
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
    for (const [key, value] of pointInputParams(inputs.position, inputs.at)) query.set(key, value);
    navigate(href({ screen: 'resolved', ns, search: query.toString() }));
  };
  const now = () => {
    setInputs({ position: '', at: '' });
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
          <PointInTimeFields idPrefix="pit" position={inputs.position} at={inputs.at} onChange={setInputs} />
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
