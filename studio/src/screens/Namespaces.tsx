import { useState } from 'react';
import { Link } from '../components/Link';
import { ErrorNotice, Loading } from '../components/Notice';
import { matchesQuery, topLevelKeys } from '../lib/catalogue';
import { href } from '../lib/routes';
import { useAsync } from '../lib/useAsync';
import { navigate } from '../navigation';
import { useSession } from '../session';

export function Namespaces({ query: initial }: { query: string }) {
  const { api } = useSession();
  const [query, setQuery] = useState(initial);
  const namespaces = useAsync(() => api.namespaces(), 'namespaces');
  const shown = (namespaces.data ?? []).filter((n) => matchesQuery(n, query));
  return (
    <>
      <h1>Namespaces</h1>
      <form role="search" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor="catalogue-search">Search namespaces, descriptions and keys</label>
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
    </>
  );
}
