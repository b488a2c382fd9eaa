import { useEffect, useState } from 'react';
import { Link } from '../components/Link';
import { ErrorNotice, Loading } from '../components/Notice';
import { matchesQuery, topLevelKeys, valueCount } from '../lib/catalogue';
import { href } from '../lib/routes';
import { describeScope, scopeQuery } from '../lib/scope';
import { useAsync } from '../lib/useAsync';
import { navigate } from '../navigation';
import { useSession } from '../session';

export function Namespaces({ query: initial }: { query: string }) {
  const { api } = useSession();
  const [query, setQuery] = useState(initial);
  const namespaces = useAsync(() => api.namespaces(), 'namespaces');
  const shown = (namespaces.data ?? []).filter((n) => matchesQuery(n, query));
  // Values are searched on the server (only those the role may read, masked
  // as everywhere), once typing pauses rather than on every key.
  const [settledQuery, setSettledQuery] = useState(initial.trim());
  useEffect(() => {
    const timer = setTimeout(() => setSettledQuery(query.trim()), 300);
    return () => clearTimeout(timer);
  }, [query]);
  return (
    <>
      <h1>Namespaces</h1>
      <form role="search" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor="catalogue-search">Search namespaces, keys and values</label>
          <input
            id="catalogue-search"
            type="search"
            value={query}
            onChange={(e) => {
              setQuery(e.target.value);
              navigate(href({ screen: 'namespaces', query: e.target.value }), { replace: true });
            }}
          />
        </div>
      </form>
      <ErrorNotice error={namespaces.error} />
      {namespaces.loading && !namespaces.data && <Loading what="namespaces" />}
      {namespaces.data && (
        <p role="status" className="count">
          {shown.length} of {namespaces.data.length} namespaces
        </p>
      )}
      <ul className="cards">
        {shown.map((n) => (
          <li key={n.name} className="card">
            <h2>
              <Link href={href({ screen: 'namespace', ns: n.name })}>{n.name}</Link>
            </h2>
            <p>{n.description || <em>No description.</em>}</p>
            {topLevelKeys(n.schema).length > 0 && <p className="keys">Keys: {topLevelKeys(n.schema).join(', ')}</p>}
            {n.approval && <p className="badge">Changes need approval</p>}
          </li>
        ))}
      </ul>
      {settledQuery && <ValueMatches query={settledQuery} />}
    </>
  );
}

/** The current values whose key or contents hold every word of the query. */
function ValueMatches({ query }: { query: string }) {
  const { api } = useSession();
  const results = useAsync(() => api.search(query), `search:${query}`);
  return (
    <section aria-labelledby="values-heading">
      <h2 id="values-heading">Values</h2>
      <ErrorNotice error={results.error} />
      {results.loading && !results.data && <Loading what="matching values" />}
      {results.data && (
        <>
          <p role="status" className="count">
            {valueCount(results.data.matches.length, results.data.truncated)}
          </p>
          {results.data.matches.length > 0 && (
            <table className="search-results">
              <thead>
                <tr>
                  <th scope="col">Namespace</th>
                  <th scope="col">Layer</th>
                  <th scope="col">Key</th>
                  <th scope="col">Value</th>
                  <th scope="col">Revision</th>
                </tr>
              </thead>
              <tbody>
                {results.data.matches.map((m) => (
                  <tr key={`${m.namespace} ${scopeQuery(m.scope)} ${m.pointer}`} data-match={`${m.namespace} ${scopeQuery(m.scope)} ${m.pointer}`}>
                    <td>{m.namespace}</td>
                    <td>
                      <Link href={href({ screen: 'layer', ns: m.namespace, search: scopeQuery(m.scope) })}>{describeScope(m.scope)}</Link>
                    </td>
                    <td>
                      <code>{m.pointer}</code>
                    </td>
                    <td>
                      <code className="value">{JSON.stringify(m.value)}</code>
                    </td>
                    <td>{m.revision}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
