import { useEffect, useRef, useState, type FormEvent } from 'react';
import { DiffView } from '../components/DiffView';
import { Link } from '../components/Link';
import { ErrorNotice, InfoNotice, Loading } from '../components/Notice';
import { isChangeRequest, type LayerRevision } from '../lib/api';
import { href } from '../lib/routes';
import { describeScope, parseScope, scopeQuery } from '../lib/scope';
import { useAsync } from '../lib/useAsync';
import { useSession } from '../session';

export default function History({ ns, search }: { ns: string; search: string }) {
  const { api, me } = useSession();
  const scope = parseScope(search);
  const history = useAsync(() => api.history(ns, scope), `history:${ns}:${scopeQuery(scope)}`);
  const revisions = [...(history.data ?? [])].sort((a, b) => b.revision - a.revision);
  const latest = revisions[0];
  const [selected, setSelected] = useState<number | null>(null);
  const [compareWith, setCompareWith] = useState<number | null>(null);
  const [rollback, setRollback] = useState<LayerRevision | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const shown = revisions.find((r) => r.revision === selected) ?? latest;
  const previous = compareWith !== null ? revisions.find((r) => r.revision === compareWith) : revisions.find((r) => shown && r.revision === shown.revision - 1);

  return (
    <>
      <p className="crumbs">
        <Link href={href({ screen: 'namespace', ns })}>Namespace {ns}</Link> ·{' '}
        <Link href={href({ screen: 'layer', ns, search: scopeQuery(scope) })}>Edit this layer</Link>
      </p>
      <h1>
        History of layer {describeScope(scope)} of {ns}
      </h1>
      <ErrorNotice error={history.error} />
      {notice && <InfoNotice>{notice}</InfoNotice>}
      {history.loading && !history.data && <Loading what="the history" />}
      {history.data && revisions.length === 0 && <p>This layer has no revisions.</p>}
      {revisions.length > 0 && (
        <div className="history">
          <table className="revisions">
            <caption>Revisions, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Revision</th>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">Message</th>
                <th scope="col">Position</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {revisions.map((r) => (
                <tr key={r.revision} aria-current={shown?.revision === r.revision ? 'true' : undefined} data-revision={r.revision}>
                  <th scope="row">{r.revision}</th>
                  <td>{new Date(r.at).toLocaleString()}</td>
                  <td>{r.actor}</td>
                  <td>{r.message || <em>no message</em>}</td>
                  <td>{r.position}</td>
                  <td className="row-actions">
                    <button
                      type="button"
                      className="secondary"
                                            onClick={() => {
                        setSelected(r.revision);
                        setCompareWith(null);
                      }}
                    >
                      Changes<span className="visually-hidden"> of revision {r.revision}</span>
                    </button>
                    {latest && r.revision !== latest.revision && (
                      <button
                        type="button"
                        className="secondary"
                                                onClick={() => {
                          setSelected(latest.revision);
                          setCompareWith(r.revision);
                        }}
                      >
                        Compare with current<span className="visually-hidden">: revision {r.revision}</span>
                      </button>
                    )}
                    {me.may.write_layers && latest && r.revision !== latest.revision && (
                      <button type="button" onClick={() => setRollback(r)}>
                        Roll back to revision {r.revision}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {shown && (
            <section aria-labelledby="diff-heading">
              <h2 id="diff-heading">
                {previous ? `Revision ${previous.revision} → revision ${shown.revision}` : `Revision ${shown.revision} (the first)`}
              </h2>
              <DiffView
                before={previous?.values ?? {}}
                after={shown.values}
                beforeLabel={previous ? `Revision ${previous.revision}` : 'Before'}
                afterLabel={`Revision ${shown.revision}`}
              />
            </section>
          )}
        </div>
      )}
      {rollback && latest && (
        <RollbackDialog
          target={rollback}
          current={latest}
          onCancel={() => setRollback(null)}
          onConfirm={async (message) => {
            const result = await api.rollback(ns, scope, rollback.revision, message);
            setRollback(null);
            setNotice(
              isChangeRequest(result)
                ? `The rollback awaits approval as change request ${result.change_request}.`
                : `Rolled back to the values of revision ${rollback.revision}: now revision ${result.revision}.`,
            );
            history.reload();
          }}
        />
      )}
    </>
  );
}

/** Confirms a rollback, showing the diff it will apply to the current values. */
function RollbackDialog({
  target,
  current,
  onCancel,
  onConfirm,
}: {
  target: LayerRevision;
  current: LayerRevision;
  onCancel: () => void;
  onConfirm: (message: string) => Promise<void>;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [message, setMessage] = useState(`Roll back to revision ${target.revision}`);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal();
  }, []);
  const confirm = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    try {
      await onConfirm(message);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <dialog ref={dialog} aria-labelledby="rollback-heading" onCancel={onCancel} className="dialog">
      <form onSubmit={confirm}>
        <h2 id="rollback-heading">Roll back to revision {target.revision}?</h2>
        <p>A new revision will hold the values of revision {target.revision}. This changes the current values as follows:</p>
        <DiffView before={current.values} after={target.values} beforeLabel={`Current (revision ${current.revision})`} afterLabel={`After the rollback`} />
        <div className="field">
          <label htmlFor="rollback-message">Change message</label>
          <input id="rollback-message" value={message} maxLength={1000} onChange={(e) => setMessage(e.target.value)} />
        </div>
        <ErrorNotice error={error} />
        <p className="actions">
          <button type="submit" disabled={busy}>
            {busy ? 'Rolling back…' : 'Confirm the rollback'}
          </button>
          <button type="button" className="secondary" onClick={onCancel}>
            Cancel
          </button>
        </p>
      </form>
    </dialog>
  );
}
