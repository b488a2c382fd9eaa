import { useState, type FormEvent } from 'react';
import { ErrorNotice, InfoNotice, Loading } from '../components/Notice';
import { auditExportName, saveBlob } from '../lib/exportFile';
import { href } from '../lib/routes';
import { useAsync } from '../lib/useAsync';
import { navigate } from '../navigation';
import { useSession } from '../session';

const FILTERS = [
  ['tenant', 'Tenant'],
  ['namespace', 'Namespace'],
  ['actor', 'Actor'],
  ['action', 'Action'],
] as const;

export default function Audit({ search }: { search: string }) {
  const { api, me } = useSession();
  const params = new URLSearchParams(search);
  const filters = Object.fromEntries([...FILTERS.map(([k]) => k), 'outcome'].map((k) => [k, params.get(k) ?? '']));
  const [draft, setDraft] = useState(filters);
  const page = useAsync(() => api.audit(filters), `audit:${search}`);
  const [exporting, setExporting] = useState(false);
  const [exported, setExported] = useState<string | null>(null);
  const [exportError, setExportError] = useState<unknown>(null);
  if (!me.may.read_audit) return <p>Your role may not read the audit log.</p>;
  const apply = (event: FormEvent) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(draft)) if (v.trim()) query.set(k, v.trim());
    navigate(href({ screen: 'audit', search: query.toString() }));
  };
  // The export applies the filters the table shows (the address), not a draft
  // not yet applied, so the file holds exactly what the screen lists, in full.
  const exportLog = async () => {
    setExporting(true);
    setExportError(null);
    setExported(null);
    try {
      const name = auditExportName(filters, new Date());
      saveBlob(await api.auditExport(filters), name);
      setExported(name);
    } catch (error) {
      setExportError(error);
    } finally {
      setExporting(false);
    }
  };
  return (
    <>
      <h1>Audit log</h1>
      <form className="panel filters" onSubmit={apply} aria-label="Filter the audit log">
        {FILTERS.map(([key, label]) => (
          <div className="field" key={key}>
            <label htmlFor={`audit-${key}`}>{label}</label>
            <input id={`audit-${key}`} value={draft[key] ?? ''} onChange={(e) => setDraft({ ...draft, [key]: e.target.value })} />
          </div>
        ))}
        <div className="field">
          <label htmlFor="audit-outcome">Outcome</label>
          <select id="audit-outcome" value={draft.outcome ?? ''} onChange={(e) => setDraft({ ...draft, outcome: e.target.value })}>
            <option value="">any</option>
            <option value="accepted">accepted</option>
            <option value="refused">refused</option>
          </select>
        </div>
        <p className="actions">
          <button type="submit">Filter</button>
        </p>
      </form>
      <p className="actions">
        <button type="button" className="secondary" onClick={() => void exportLog()} disabled={exporting}>
          {exporting ? 'Exporting…' : 'Export these entries (JSON Lines)'}
        </button>
      </p>
      {exported && (
        <InfoNotice>
          <p>
            Exported every matching entry to <code>{exported}</code>.
          </p>
        </InfoNotice>
      )}
      <ErrorNotice error={exportError} />
      <ErrorNotice error={page.error} />
      {page.loading && !page.data && <Loading what="the audit log" />}
      {page.data && (
        <table className="audit">
          <caption>{page.data.entries.length} entries, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Outcome</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {page.data.entries.map((entry, i) => (
              <tr key={i}>
                <td>{String(entry.at ?? '')}</td>
                <td>{String(entry.actor ?? '')}</td>
                <td>{String(entry.action ?? '')}</td>
                <td>{String(entry.outcome ?? '')}</td>
                <td>
                  <code className="value">{JSON.stringify(entry.namespace ?? entry.tenant ?? entry.detail ?? '')}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
