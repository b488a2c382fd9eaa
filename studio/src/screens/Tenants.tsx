import { useState, type FormEvent } from 'react';
import { Link } from '../components/Link';
import { ErrorNotice, InfoNotice, Loading } from '../components/Notice';
import { href } from '../lib/routes';
import type { Tenant } from '../lib/api';
import { useAsync } from '../lib/useAsync';
import { useSession } from '../session';

/**
 * Tenants and their editions (a tenant-bound role sees its own tenant only);
 * a role that administers creates tenants and changes their names and editions.
 */
export default function Tenants() {
  const { api, me } = useSession();
  const tenants = useAsync(() => api.tenants(), 'tenants');
  const [editing, setEditing] = useState<Tenant | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const editions = [...new Set((tenants.data ?? []).map((t) => t.edition))].sort();
  const done = (message: string) => {
    setEditing(null);
    setSaved(message);
    tenants.reload();
  };
  return (
    <>
      <h1>Tenants and editions</h1>
      <p className="hint">A context that names a tenant and no edition resolves with the tenant's edition.</p>
      <ErrorNotice error={tenants.error} />
      {saved && (
        <InfoNotice>
          <p>{saved}</p>
        </InfoNotice>
      )}
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
              <th scope="col">History</th>
              {me.may.administer && <th scope="col">Change</th>}
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
                <td>
                  <Link href={href({ screen: 'tenant-history', tenant: t.id })}>History of {t.id}</Link>
                </td>
                {me.may.administer && (
                  <td>
                    <button type="button" className="secondary" aria-label={`Edit tenant ${t.id}`} onClick={() => setEditing(t)}>
                      Edit
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {me.may.administer && editing && (
        <TenantForm
          key={editing.id}
          tenant={editing}
          editions={editions}
          onSaved={() => done(`Tenant ${editing.id} saved.`)}
          onCancel={() => setEditing(null)}
        />
      )}
      {me.may.administer && !editing && <TenantForm key="new" tenant={null} editions={editions} onSaved={(id) => done(`Tenant ${id} created.`)} />}
    </>
  );
}

/**
 * Creates a tenant (`tenant` null) or changes one. The write is conditional
 * on the revision the form started from (0 for a new tenant), so a tenant
 * created or changed meanwhile by someone else is reported, not overwritten.
 */
function TenantForm({
  tenant,
  editions,
  onSaved,
  onCancel,
}: {
  tenant: Tenant | null;
  editions: string[];
  onSaved: (id: string) => void;
  onCancel?: () => void;
}) {
  const { api } = useSession();
  const [id, setId] = useState(tenant?.id ?? '');
  const [name, setName] = useState(tenant?.name ?? '');
  const [edition, setEdition] = useState(tenant?.edition ?? '');
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const prefix = tenant ? 'tenant-edit' : 'tenant-new';
  const title = tenant ? `Change tenant ${tenant.id}` : 'Create a tenant';
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setSaving(true);
    setError(null);
    try {
      const trimmed = id.trim();
      await api.putTenant(trimmed, { edition: edition.trim(), name: name.trim() || null }, tenant?.revision ?? 0);
      onSaved(trimmed);
    } catch (e) {
      setError(e);
    } finally {
      setSaving(false);
    }
  };
  return (
    <form className="panel" aria-labelledby={`${prefix}-title`} onSubmit={(e) => void submit(e)}>
      <h2 id={`${prefix}-title`}>{title}</h2>
      {!tenant && (
        <div className="field">
          <label htmlFor={`${prefix}-id`}>Tenant id</label>
          <input id={`${prefix}-id`} value={id} required onChange={(e) => setId(e.target.value)} />
        </div>
      )}
      <div className="field">
        <label htmlFor={`${prefix}-name`}>Name (optional)</label>
        <input id={`${prefix}-name`} value={name} onChange={(e) => setName(e.target.value)} />
      </div>
      <div className="field">
        <label htmlFor={`${prefix}-edition`}>Edition</label>
        <input id={`${prefix}-edition`} value={edition} required list={`${prefix}-editions`} onChange={(e) => setEdition(e.target.value)} />
        <datalist id={`${prefix}-editions`}>
          {editions.map((e) => (
            <option key={e} value={e} />
          ))}
        </datalist>
      </div>
      <ErrorNotice error={error} />
      <p className="actions">
        <button type="submit" disabled={saving}>
          {tenant ? 'Save tenant' : 'Create tenant'}
        </button>
        {onCancel && (
          <button type="button" className="secondary" onClick={onCancel}>
            Cancel
          </button>
        )}
      </p>
    </form>
  );
}
