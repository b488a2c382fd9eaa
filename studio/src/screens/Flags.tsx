import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { Link } from '../components/Link';
import { RolloutPlans } from '../components/RolloutPlans';
import { ErrorNotice, InfoNotice, Loading } from '../components/Notice';
import { isChangeRequest, type Json, type JsonObject, type LayerRevision } from '../lib/api';
import { canonicalJson, diffValues } from '../lib/diff';
import { flagKeyProblem, flagsOf, rolloutOf, rolloutTargeting, rolloutVariants, violationsOf, withFlagField, withNewFlag, withoutFlag, type FlagEntry, type FlagField } from '../lib/flags';
import { ApiProblem, violationMessage, type Violation } from '../lib/problem';
import { href } from '../lib/routes';
import { describeScope, parseScope, scopeQuery } from '../lib/scope';
import { useSession } from '../session';

type Outcome = { kind: 'saved'; revision: number } | { kind: 'change-request'; detail: string } | { kind: 'error'; error: unknown };

/** JSON typed into a field: the text, and why it does not parse yet. */
type Drafts = Record<string, { text: string; problem: string | null }>;

const draftKey = (key: string, field: FlagField) => `${key}\u0000${field}`;

function Problems({ id, violations, draft }: { id: string; violations: Violation[]; draft?: string | null }) {
  if (violations.length === 0 && !draft) return null;
  return (
    <span className="field-problem" id={id}>
      {draft && <>Not valid JSON yet: {draft}. </>}
      {violations.map((v) => `${v.pointer}: ${violationMessage(v)}`).join('; ')}
    </span>
  );
}

/**
 * A flags namespace's layer as flags: each flag's state, variants, default
 * variant, targeting (JsonLogic) and percentage rollout, saved as one
 * conditional write of the layer, so history, diff, rollback and approvals
 * are the layer's; below, the layer's rollout plans.
 */
export default function Flags({ ns, search }: { ns: string; search: string }) {
  const { api, me } = useSession();
  const scope = useMemo(() => parseScope(search), [search]);
  const [layer, setLayer] = useState<LayerRevision | null | 'loading'>('loading');
  const [loadError, setLoadError] = useState<unknown>(null);
  const [values, setValues] = useState<JsonObject>({});
  const [drafts, setDrafts] = useState<Drafts>({});
  const [newKey, setNewKey] = useState('');
  const [newKeyProblem, setNewKeyProblem] = useState<string | null>(null);
  const [message, setMessage] = useState('');
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    let live = true;
    api
      .layer(ns, scope)
      .catch((e: unknown) => {
        if (e instanceof ApiProblem && e.code === 'layer-not-found') return null;
        throw e;
      })
      .then(
        (loaded) => {
          if (!live) return;
          setLayer(loaded);
          setValues(loaded?.values ?? {});
          setDrafts({});
        },
        (e: unknown) => live && setLoadError(e),
      );
    return () => {
      live = false;
    };
  }, [api, ns, scope, generation]);

  if (loadError) return <ErrorNotice error={loadError} />;
  if (layer === 'loading') return <Loading what="the flags" />;
  const writable = me.may.write_layers;
  const flags = flagsOf(values);
  const changes = diffValues(layer?.values ?? {}, values);
  const violations = outcome?.kind === 'error' && outcome.error instanceof ApiProblem ? outcome.error.violations : [];
  const unparsed = Object.values(drafts).some((d) => d.problem !== null);

  const set = (key: string, field: FlagField, value: Json | undefined) => setValues((v) => withFlagField(v, key, field, value));
  const jsonField = (flag: FlagEntry, field: 'variants' | 'targeting') => {
    const id = `flag-${flag.key}-${field}`;
    const draft = drafts[draftKey(flag.key, field)];
    const shown = draft?.text ?? (flag[field] === undefined ? '' : canonicalJson(flag[field]));
    const own = violationsOf(violations, flag.key, field);
    return (
      <div className="field">
        <label htmlFor={id}>
          {field === 'variants' ? 'Variants' : 'Targeting (JsonLogic)'} of {flag.key}
        </label>
        <textarea
          id={id}
          rows={field === 'variants' ? 3 : 4}
          value={shown}
          readOnly={!writable}
          placeholder="inherited"
          aria-invalid={own.length > 0 || draft?.problem ? true : undefined}
          aria-describedby={own.length > 0 || draft?.problem ? `${id}-problem` : undefined}
          onChange={(e) => {
            const text = e.target.value;
            let problem: string | null = null;
            if (text.trim() === '') set(flag.key, field, undefined);
            else {
              try {
                const parsed: unknown = JSON.parse(text);
                if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) problem = 'it must be a JSON object';
                else set(flag.key, field, parsed as JsonObject);
              } catch (error) {
                problem = (error as Error).message;
              }
            }
            setDrafts((d) => ({ ...d, [draftKey(flag.key, field)]: { text, problem } }));
          }}
        />
        <Problems id={`${id}-problem`} violations={own} draft={draft?.problem} />
      </div>
    );
  };
  const rollout = (flag: FlagEntry) => {
    const split = rolloutVariants(flag);
    if (!split) return null;
    const [first, second] = split;
    const current = rolloutOf(flag.targeting);
    const id = `flag-${flag.key}-rollout`;
    return (
      <div className="field">
        <label htmlFor={id}>
          Rollout of {flag.key}: % of users getting “{first}”
        </label>
        <input
          id={id}
          type="number"
          min={0}
          max={100}
          step={1}
          readOnly={!writable}
          value={current ? current.percent : ''}
          placeholder="no rollout"
          onChange={(e) => {
            const text = e.target.value;
            set(flag.key, 'targeting', text === '' ? undefined : rolloutTargeting(first, second, Number(text)));
            setDrafts((d) => {
              const next = { ...d };
              delete next[draftKey(flag.key, 'targeting')];
              return next;
            });
          }}
        />
        <span className="hint">Sticky per targeting key (flagd’s fractional); the rest get “{second}”. Replaces the targeting rule.</span>
      </div>
    );
  };

  const addFlag = () => {
    const key = newKey.trim();
    const problem = flagKeyProblem(
      key,
      flags.map((f) => f.key),
    );
    setNewKeyProblem(problem);
    if (problem) return;
    setValues((v) => withNewFlag(v, key));
    setNewKey('');
  };

  const save = async (event: FormEvent) => {
    event.preventDefault();
    setOutcome(null);
    try {
      const result = await api.putLayer(ns, scope, { values, message }, layer?.revision ?? 0);
      if (isChangeRequest(result)) setOutcome({ kind: 'change-request', detail: result.detail });
      else {
        setOutcome({ kind: 'saved', revision: result.revision });
        setMessage('');
        setLayer((l) => ({ ...(l && l !== 'loading' ? l : { scope, locked: [], at: '', actor: me.principal, message }), values, revision: result.revision, position: result.position }));
      }
    } catch (error) {
      setOutcome({ kind: 'error', error });
    }
  };

  return (
    <>
      <p className="crumbs">
        <Link href={href({ screen: 'namespace', ns })}>Namespace {ns}</Link> ·{' '}
        <Link href={href({ screen: 'history', ns, search: scopeQuery(scope) })}>History of this layer (diff, rollback)</Link> ·{' '}
        <Link href={href({ screen: 'resolved', ns, search: scopeQuery(scope) })}>Resolved for this scope</Link> ·{' '}
        <Link href={href({ screen: 'layer', ns, search: scopeQuery(scope) })}>Edit as JSON</Link>
      </p>
      <h1>
        Flags of {ns}, layer {describeScope(scope)}
      </h1>
      <p data-testid="flags-revision">
        {layer ? `Revision ${layer.revision}, by ${layer.actor}.` : 'This layer has no revisions yet.'} An empty field is inherited from weaker layers.
        {!writable && ' Your role may read these flags but not change them.'}
      </p>
      {outcome?.kind === 'saved' && <InfoNotice>Saved as revision {outcome.revision}.</InfoNotice>}
      {outcome?.kind === 'change-request' && (
        <InfoNotice>
          Your change awaits approval: {outcome.detail}. <Link href={href({ screen: 'change-requests', search: 'status=open' })}>See the change requests.</Link>
        </InfoNotice>
      )}
      {outcome?.kind === 'error' && (
        <ErrorNotice error={outcome.error}>
          {outcome.error instanceof ApiProblem && outcome.error.isConflict && (
            <button type="button" onClick={() => setGeneration((g) => g + 1)}>
              Reload the current version (discards your edit)
            </button>
          )}
        </ErrorNotice>
      )}
      {flags.length === 0 && <p>This layer sets no flags.</p>}
      {flags.map((flag) => {
        const stateId = `flag-${flag.key}-state`;
        const defaultId = `flag-${flag.key}-default`;
        const stateViolations = violationsOf(violations, flag.key, 'state');
        const defaultViolations = violationsOf(violations, flag.key, 'defaultVariant');
        return (
          <fieldset key={flag.key} className="panel flag" data-flag={flag.key}>
            <legend>Flag {flag.key}</legend>
            <Problems id={`flag-${flag.key}-problem`} violations={violationsOf(violations, flag.key)} />
            <div className="scope-fields">
              <div className="field">
                <label htmlFor={stateId}>State of {flag.key}</label>
                <select
                  id={stateId}
                  value={flag.state ?? ''}
                  disabled={!writable}
                  aria-describedby={stateViolations.length > 0 ? `${stateId}-problem` : undefined}
                  onChange={(e) => set(flag.key, 'state', e.target.value === '' ? undefined : e.target.value)}
                >
                  <option value="">inherited</option>
                  <option value="ENABLED">on (ENABLED)</option>
                  <option value="DISABLED">off (DISABLED)</option>
                </select>
                <Problems id={`${stateId}-problem`} violations={stateViolations} />
              </div>
              <div className="field">
                <label htmlFor={defaultId}>Default variant of {flag.key}</label>
                <input
                  id={defaultId}
                  list={`${defaultId}-variants`}
                  value={flag.defaultVariant ?? ''}
                  readOnly={!writable}
                  placeholder="inherited"
                  autoComplete="off"
                  aria-invalid={defaultViolations.length > 0 ? true : undefined}
                  aria-describedby={defaultViolations.length > 0 ? `${defaultId}-problem` : undefined}
                  onChange={(e) => set(flag.key, 'defaultVariant', e.target.value === '' ? undefined : e.target.value)}
                />
                <datalist id={`${defaultId}-variants`}>
                  {Object.keys(flag.variants ?? {}).map((name) => (
                    <option key={name} value={name} />
                  ))}
                </datalist>
                <Problems id={`${defaultId}-problem`} violations={defaultViolations} />
              </div>
              {rollout(flag)}
            </div>
            {jsonField(flag, 'variants')}
            {jsonField(flag, 'targeting')}
            {writable && (
              <button type="button" className="secondary" onClick={() => setValues((v) => withoutFlag(v, flag.key))}>
                Remove flag {flag.key} from this layer
              </button>
            )}
          </fieldset>
        );
      })}
      {writable && (
        <div className="panel">
          <div className="field">
            <label htmlFor="new-flag-key">New flag key</label>
            <input
              id="new-flag-key"
              value={newKey}
              autoComplete="off"
              aria-invalid={newKeyProblem ? true : undefined}
              aria-describedby={newKeyProblem ? 'new-flag-key-problem' : undefined}
              onChange={(e) => {
                setNewKey(e.target.value);
                setNewKeyProblem(null);
              }}
            />
            {newKeyProblem && (
              <span className="field-problem" id="new-flag-key-problem">
                The key {newKeyProblem}.
              </span>
            )}
          </div>
          <button type="button" className="secondary" onClick={addFlag}>
            Add the flag (off until turned on)
          </button>
        </div>
      )}
      {writable && (
        <form className="panel save" onSubmit={save} aria-label="Save the flags">
          <p data-testid="pending-changes">
            {changes.length === 0 ? 'No changes yet.' : `${changes.length} change${changes.length === 1 ? '' : 's'}: ${changes.map((c) => `${c.pointer} ${c.kind}`).join('; ')}`}
          </p>
          <div className="field">
            <label htmlFor="flags-message">Change message</label>
            <input id="flags-message" value={message} maxLength={1000} onChange={(e) => setMessage(e.target.value)} placeholder="Why this change?" />
          </div>
          <button type="submit" disabled={unparsed || changes.length === 0}>
            Save
          </button>
        </form>
      )}
      <RolloutPlans ns={ns} scope={scope} saved={layer?.values ?? {}} writable={writable} />
    </>
  );
}
