import { useState } from 'react';
import { Link } from '../components/Link';
import { ErrorNotice, Loading } from '../components/Notice';
import { ScopeFields } from '../components/ScopeFields';
import { href } from '../lib/routes';
import { propertyRows } from '../lib/schemaDoc';
import { describeScope, scopeProblems, scopeQuery, type Scope } from '../lib/scope';
import { useAsync } from '../lib/useAsync';
import { useSession } from '../session';

export function NamespacePage({ ns }: { ns: string }) {
  const { api, me } = useSession();
  const namespace = useAsync(() => api.namespace(ns), `namespace:${ns}`);
  const fixed: Scope = me.role.tenant ? { tenant: me.role.tenant } : {};
  const [scope, setScope] = useState<Scope>(fixed);
  const effective = { ...scope, ...fixed };
  const valid = Object.keys(scopeProblems(effective)).length === 0;
  const search = scopeQuery(effective);

  if (namespace.error) return <ErrorNotice error={namespace.error} />;
  if (!namespace.data) return <Loading what={`namespace ${ns}`} />;
  const n = namespace.data;
  const rows = propertyRows(n.schema);
  return (
    <>
      <h1>Namespace {n.name}</h1>
      <p className="description">{n.description || <em>No description.</em>}</p>
      <dl className="facts">
        <dt>Revision</dt>
        <dd>{n.revision}</dd>
        <dt>Updated</dt>
        <dd>{new Date(n.updated_at).toLocaleString()}</dd>
        <dt>Approval</dt>
        <dd data-testid="approval">
          {n.approval
            ? n.approval.scopes.length === 0
              ? 'Every change needs approval by a second person.'
              : `Changes to layers within ${n.approval.scopes.map(describeScope).join('; ')} need approval by a second person.`
            : 'Changes apply at once; no approval needed.'}
        </dd>
      </dl>

      <section aria-labelledby="open-heading">
        <h2 id="open-heading">Open a layer or a context</h2>
        <p className="hint">Leave every field empty for the global layer. A context names the request to resolve for.</p>
        <ScopeFields idPrefix="ns-scope" scope={effective} fixed={fixed} onChange={setScope} />
        {valid ? (
          <p className="actions">
            {n.kind === 'flags' && (
              <Link className="button" href={href({ screen: 'flags', ns, search })}>
                Flags of layer {describeScope(effective)}
              </Link>
            )}
            <Link className="button" href={href({ screen: 'layer', ns, search })}>
              {me.may.write_layers ? 'Edit' : 'View'} layer {describeScope(effective)}
            </Link>
            <Link className="button" href={href({ screen: 'resolved', ns, search })}>
              Resolved for {describeScope(effective)}
            </Link>
            <Link className="button" href={href({ screen: 'history', ns, search })}>
              History of layer {describeScope(effective)}
            </Link>
            <Link className="button" href={href({ screen: 'compare', ns, search: new URLSearchParams({ left: search, right: search }).toString() })}>
              Compare with another context
            </Link>
          </p>
        ) : (
          <p className="field-problem">Correct the scope to continue.</p>
        )}
      </section>

      <section aria-labelledby="schema-heading">
        <h2 id="schema-heading">Schema</h2>
        {!n.schema && <p>This namespace has no schema: any JSON object is accepted.</p>}
        {rows.length > 0 && (
          <table className="schema-table">
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Type</th>
                <th scope="col">Default</th>
                <th scope="col">Required</th>
                <th scope="col">Description</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.name}>
                  <th scope="row">
                    <code>{r.name}</code>
                  </th>
                  <td>{r.type}</td>
                  <td>{r.defaultValue !== undefined ? <code>{r.defaultValue}</code> : '—'}</td>
                  <td>{r.required ? 'yes' : 'no'}</td>
                  <td>{r.description}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {n.schema && (
          <details>
            <summary>The schema as JSON</summary>
            <pre className="json" tabIndex={0} aria-label="Schema JSON">
              {JSON.stringify(n.schema, null, 2)}
            </pre>
          </details>
        )}
      </section>
    </>
  );
}
