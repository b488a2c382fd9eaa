import { ErrorNotice, Loading } from '../components/Notice';
import { useAsync } from '../lib/useAsync';
import { useSession } from '../session';

/** Tenants and their editions (a tenant-bound role sees its own tenant only). */
export default function Tenants() {
  const { api } = useSession();
  const tenants = useAsync(() => api.tenants(), 'tenants');
  return (
    <>
      <h1>Tenants and editions</h1>
      <p className="hint">A context that names a tenant and no edition resolves with the tenant's edition.</p>
      <ErrorNotice error={tenants.error} />
      {tenants.loading && !tenants.data && <Loading what="tenants" />}
      {tenants.data && (
        <table className="tenants">
          <caption>{tenants.data.length} tenants</caption>
          <thead>
            <tr>
              <th scope="col">Tenant</th>
              <th scope="col">Name</th>
              <th scope="col">Edition</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {tenants.data.map((t) => (
              <tr key={t.id} data-tenant={t.id}>
                <th scope="row">
                  <code>{t.id}</code>
                </th>
                <td>{t.name ?? '—'}</td>
                <td>{t.edition}</td>
                <td>{t.updated_at ? new Date(t.updated_at).toLocaleString() : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
