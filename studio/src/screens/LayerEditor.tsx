import Form from '@rjsf/core';
import type { RJSFSchema } from '@rjsf/utils';
import { lazy, Suspense, useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { Link } from '../components/Link';
import { ErrorNotice, InfoNotice, Loading } from '../components/Notice';
import { OwnLocks } from '../components/OwnLocks';
import { isChangeRequest, type BindingLock, type JsonObject, type LayerRevision, type Namespace } from '../lib/api';
import { canonicalJson, diffValues, flatten } from '../lib/diff';
import { lockUiSchema } from '../lib/locks';
import { mergeJson, mergeLocks, type MergeConflict } from '../lib/merge';
import { ApiProblem, violationMessage, violationsToErrorSchema } from '../lib/problem';
import { href } from '../lib/routes';
import { propertyRows } from '../lib/schemaDoc';
import { describeScope, parseScope, scopeQuery } from '../lib/scope';
import { validator } from '../lib/validator';
import { useSession } from '../session';

const JsonEditor = lazy(() => import('../components/JsonEditor'));

interface Loaded {
  key: string;
  namespace: Namespace;
  layer: LayerRevision | null;
  locks: BindingLock[];
}

type Outcome =
  | { kind: 'saved'; revision: number; position: number }
  | { kind: 'change-request'; id: string; detail: string }
  | { kind: 'error'; error: unknown };

export default function LayerEditor({ ns, search }: { ns: string; search: string }) {
  const { api, me } = useSession();
  const scope = useMemo(() => parseScope(search), [search]);
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [values, setValues] = useState<JsonObject>({});
  const [text, setText] = useState('{}');
  const [textError, setTextError] = useState<string | null>(null);
  const [message, setMessage] = useState('');
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [saving, setSaving] = useState(false);
  const [generation, setGeneration] = useState(0);
  const [ownLocks, setOwnLocks] = useState<string[]>([]);
  const [merged, setMerged] = useState<{ revision: number; conflicts: MergeConflict[] } | null>(null);

  const loadKey = `${ns}?${search}#${generation}`;
  useEffect(() => {
    let live = true;
    Promise.all([
      api.namespace(ns),
      api.layer(ns, scope).catch((e: unknown) => {
        // A layer nobody has written yet starts empty at revision 0.
        if (e instanceof ApiProblem && e.code === 'layer-not-found') return null;
        throw e;
      }),
      api.locks(ns, scope),
    ]).then(
      ([namespace, layer, locks]) => {
        if (!live) return;
        setLoaded({ key: loadKey, namespace, layer, locks });
        setLoadError(null);
        setValues(layer?.values ?? {});
        setText(canonicalJson(layer?.values ?? {}));
        setTextError(null);
        setOwnLocks([...(layer?.locked ?? [])].sort());
        setMerged(null);
      },
      (e: unknown) => live && setLoadError(e),
    );
    return () => {
      live = false;
    };
  }, [api, ns, scope, loadKey]);

  const baseRevision = loaded?.layer?.revision ?? 0;

  // While the page is open, the layer may change elsewhere: follow the
  // scope's resolved document (the SSE watch) and, when a newer revision of
  // this layer appears, say that the base moved, keeping the edit as it is.
  const [moved, setMoved] = useState<LayerRevision | null>(null);
  const base = useRef(0);
  useEffect(() => {
    base.current = baseRevision;
  }, [baseRevision]);
  const ready = loaded?.key === loadKey;
  useEffect(() => {
    if (!ready) return;
    const abort = new AbortController();
    api
      .watch(
        ns,
        scope,
        () => {
          api.layer(ns, scope).then(
            (latest) => latest.revision > base.current && setMoved(latest),
            () => undefined,
          );
        },
        abort.signal,
      )
      .catch(() => undefined);
    return () => abort.abort();
  }, [api, ns, scope, ready]);
  const writable = me.may.write_layers;
  const violations = useMemo(() => (outcome?.kind === 'error' && outcome.error instanceof ApiProblem ? outcome.error.violations : []), [outcome]);
  const extraErrors = useMemo(() => violationsToErrorSchema(violations), [violations]);
  const bindingLocks = loaded?.locks;
  const uiSchema = useMemo(
    () =>
      lockUiSchema(
        // Locks held by weaker layers bind this one: their values show locked.
        // This layer's own locks bind the layers above it, so they stay
        // editable here.
        (bindingLocks ?? []).map((l) => ({ pointer: l.pointer, reason: `by the ${describeScope(l.locked_by)} layer` })),
        { 'ui:submitButtonOptions': { norender: true } },
      ),
    [bindingLocks],
  );
  const changes = loaded ? diffValues(loaded.layer?.values ?? {}, values) : [];
  const savedLocks = useMemo(() => [...(loaded?.layer?.locked ?? [])].sort(), [loaded]);
  const locksChanged = ownLocks.join('\n') !== savedLocks.join('\n');
  const lockSuggestions = useMemo(
    () =>
      [...new Set([...propertyRows(loaded?.namespace.schema).map((r) => `/${r.name.replace(/~/g, '~0').replace(/\//g, '~1')}`), ...flatten(values).keys()])]
        .filter((p) => p !== '')
        .sort(),
    [loaded, values],
  );

  // Carries the edit in progress (values and locks) onto a newer revision
  // saved meanwhile: a three-way merge from the revision the edit started
  // from; values both changed keep the edit's and are listed.
  const mergeOnto = (latest: LayerRevision) => {
    if (!loaded) return;
    const result = mergeJson(loaded.layer?.values ?? {}, values, latest.values);
    setOwnLocks(mergeLocks(loaded.layer?.locked ?? [], ownLocks, latest.locked));
    setLoaded({ ...loaded, layer: latest });
    setValues(result.merged);
    setText(canonicalJson(result.merged));
    setTextError(null);
    setMoved(null);
    setOutcome(null);
    setMerged({ revision: latest.revision, conflicts: result.conflicts });
  };
  const mergeOntoCurrent = () => {
    api.layer(ns, scope).then(mergeOnto, (error: unknown) => setOutcome({ kind: 'error', error }));
  };

  const fromForm = (next: JsonObject) => {
    setValues(next);
    setText(canonicalJson(next));
    setTextError(null);
  };
  const fromText = (next: string) => {
    setText(next);
    try {
      const parsed: unknown = JSON.parse(next);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
        setTextError('The layer must be a JSON object.');
        return;
      }
      setValues(parsed as JsonObject);
      setTextError(null);
    } catch (e) {
      setTextError(`Not valid JSON yet: ${(e as Error).message}`);
    }
  };

  const save = async (event: FormEvent) => {
    event.preventDefault();
    setSaving(true);
    setOutcome(null);
    try {
      const result = await api.putLayer(ns, scope, locksChanged ? { values, message, lock: ownLocks } : { values, message }, baseRevision);
      if (isChangeRequest(result)) {
        setOutcome({ kind: 'change-request', id: result.change_request, detail: result.detail });
      } else {
        setOutcome({ kind: 'saved', revision: result.revision, position: result.position });
        setMoved((m) => (m && m.revision <= result.revision ? null : m));
        setMerged(null);
        setMessage('');
        setLoaded((l) =>
          l
            ? {
                ...l,
                layer: {
                  ...(l.layer ?? { scope, locked: [], at: '', actor: me.principal, message }),
                  values,
                  locked: ownLocks,
                  revision: result.revision,
                  position: result.position,
                },
              }
            : l,
        );
      }
    } catch (error) {
      setOutcome({ kind: 'error', error });
    } finally {
      setSaving(false);
    }
  };

  // The server answers "not found" alike for a layer never written and one
  // outside the caller's tenant (so as not to reveal it): say which it is
  // when the role itself rules the scope out.
  if (me.role.tenant && scope.tenant !== me.role.tenant) {
    return (
      <div className="notice error" role="alert">
        <p>
          This does not exist, or your role may not see it: your role is bound to tenant {me.role.tenant}, and this layer ({describeScope(scope)}) lies
          outside it.
        </p>
      </div>
    );
  }
  if (loadError) return <ErrorNotice error={loadError} />;
  if (!loaded || loaded.key !== loadKey) return <Loading what="the layer" />;
  const schema = loaded.namespace.schema as RJSFSchema | null;
  const conflict = outcome?.kind === 'error' && outcome.error instanceof ApiProblem && outcome.error.isConflict;

  return (
    <>
      <p className="crumbs">
        <Link href={href({ screen: 'namespace', ns })}>Namespace {ns}</Link> ·{' '}
        <Link href={href({ screen: 'history', ns, search: scopeQuery(scope) })}>History of this layer</Link> ·{' '}
        <Link href={href({ screen: 'resolved', ns, search: scopeQuery(scope) })}>Resolved for this scope</Link>
      </p>
      <h1>
        Layer {describeScope(scope)} of {ns}
      </h1>
      <p data-testid="layer-revision">
        {baseRevision === 0 ? 'This layer has no revisions yet.' : `Revision ${baseRevision}, position ${loaded.layer?.position}, by ${loaded.layer?.actor}.`}
        {!writable && ' Your role may read this layer but not change it.'}
      </p>
      {loaded.locks.length > 0 && (
        <p className="locks" data-testid="binding-locks">
          Locked for this layer: {loaded.locks.map((l) => `${l.pointer || '/'} (by the ${describeScope(l.locked_by)} layer)`).join(', ')}. A change to these
          values is refused.
        </p>
      )}
      {loaded.namespace.approval && <InfoNotice>Changes to this namespace may need approval by a second person before they apply.</InfoNotice>}

      {moved && moved.revision > baseRevision && (
        <div className="notice info" role="status" data-testid="base-moved">
          <p>
            Revision {moved.revision} was saved by {moved.actor} while you were editing{moved.message ? ` (“${moved.message}”)` : ''}. Your edit is kept;
            saving it as it stands would be reported as a conflict. Merge it onto revision {moved.revision} to keep both changes, or reload to start over.
          </p>
          <button type="button" onClick={() => mergeOnto(moved)}>
            Merge my edit onto revision {moved.revision}
          </button>{' '}
          <button
            type="button"
            className="secondary"
            onClick={() => {
              setMoved(null);
              setOutcome(null);
              setGeneration((g) => g + 1);
            }}
          >
            Reload revision {moved.revision} (discards your edit)
          </button>
        </div>
      )}
      {merged && (
        <div className={`notice ${merged.conflicts.length > 0 ? 'warning' : 'info'}`} role="status" data-testid="merged">
          <p>
            Your edit now starts from revision {merged.revision}, with its changes merged in.
            {merged.conflicts.length === 0
              ? ' Nothing you changed was changed there too. Review and save.'
              : ` ${merged.conflicts.length === 1 ? 'One value was' : `${merged.conflicts.length} values were`} changed both by you and in revision ${merged.revision}; your value is kept, so saving overrides theirs:`}
          </p>
          {merged.conflicts.length > 0 && (
            <ul>
              {merged.conflicts.map((c) => (
                <li key={c.pointer}>
                  <code>{c.pointer || '/'}</code>: yours {c.ours === undefined ? '(removed)' : JSON.stringify(c.ours)}, revision {merged.revision}&apos;s{' '}
                  {c.theirs === undefined ? '(removed)' : JSON.stringify(c.theirs)}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      {outcome?.kind === 'saved' && (
        <InfoNotice>
          Saved as revision {outcome.revision} (position {outcome.position}).
        </InfoNotice>
      )}
      {outcome?.kind === 'change-request' && (
        <InfoNotice>
          Your change awaits approval: {outcome.detail}.{' '}
          <Link href={href({ screen: 'change-requests', search: 'status=open' })}>See the change requests.</Link>
        </InfoNotice>
      )}
      {outcome?.kind === 'error' && (
        <ErrorNotice error={outcome.error}>
          {violations.length > 0 && (
            <ul>
              {violations.map((v, i) => (
                <li key={i}>
                  <code>{v.pointer || '/'}</code>: {violationMessage(v)}
                </li>
              ))}
            </ul>
          )}
          {conflict && (
            <p className="actions">
              <button type="button" onClick={mergeOntoCurrent}>
                Merge my edit onto the current version
              </button>{' '}
              <button type="button" className="secondary" onClick={() => setGeneration((g) => g + 1)}>
                Reload the current version (discards your edit)
              </button>
            </p>
          )}
        </ErrorNotice>
      )}

      <div className="editor-panes">
        <section aria-labelledby="form-heading" className="pane">
          <h2 id="form-heading">Form</h2>
          {schema ? (
            <Form
              schema={schema}
              uiSchema={uiSchema}
              formData={values}
              validator={validator}
              extraErrors={extraErrors}
              showErrorList={false}
              noHtml5Validate
              disabled={!writable}
              idPrefix="layer"
              onChange={(e) => fromForm((e.formData ?? {}) as JsonObject)}
            />
          ) : (
            <p>This namespace has no schema, so there is no form: edit the JSON.</p>
          )}
        </section>
        <section aria-labelledby="json-heading" className="pane">
          <h2 id="json-heading">JSON</h2>
          <Suspense fallback={<Loading what="the JSON editor" />}>
            <JsonEditor value={text} onChange={fromText} label="Layer values as JSON" readOnly={!writable} describedBy={textError ? 'json-problem' : undefined} />
          </Suspense>
          {textError && (
            <p id="json-problem" className="field-problem" role="status">
              {textError}
            </p>
          )}
        </section>
      </div>

      <OwnLocks locks={ownLocks} saved={savedLocks} suggestions={lockSuggestions} writable={writable} onChange={setOwnLocks} />

      {writable && (
        <form className="panel save" onSubmit={save} aria-label="Save the layer">
          <p data-testid="pending-changes">
            {changes.length === 0 && !locksChanged
              ? 'No changes yet.'
              : [
                  changes.length > 0 && `${changes.length} change${changes.length === 1 ? '' : 's'}: ${changes.map((c) => `${c.pointer} ${c.kind}`).join('; ')}`,
                  locksChanged && `locks: ${ownLocks.length === 0 ? 'none' : ownLocks.map((p) => p || '/').join(', ')}`,
                ]
                  .filter(Boolean)
                  .join('; ')}
          </p>
          <div className="field">
            <label htmlFor="change-message">Change message</label>
            <input id="change-message" value={message} maxLength={1000} onChange={(e) => setMessage(e.target.value)} placeholder="Why this change?" />
          </div>
          <button type="submit" disabled={saving || textError !== null || (changes.length === 0 && !locksChanged)}>
            {saving ? 'Saving…' : 'Save'}
          </button>
        </form>
      )}
    </>
  );
}
