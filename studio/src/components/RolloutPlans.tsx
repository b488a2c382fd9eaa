import { useEffect, useState, type FormEvent } from 'react';
import type { JsonObject } from '../lib/api';
import { flagsOf, rolloutVariants } from '../lib/flags';
import { ApiProblem } from '../lib/problem';
import {
  controlsOf,
  describePlan,
  formatTime,
  parseSteps,
  planFieldOf,
  plansOf,
  stepInputId,
  suggestedSteps,
  type RolloutControl,
  type RolloutPlan,
  type StepDraft,
} from '../lib/rollouts';
import type { Scope } from '../lib/scope';
import { useSession } from '../session';
import { ErrorNotice, InfoNotice, Loading } from './Notice';

const CONTROL_LABEL: Record<RolloutControl, string> = { pause: 'Pause', resume: 'Resume', cancel: 'Cancel' };
const CONTROL_DONE: Record<RolloutControl, string> = { pause: 'paused', resume: 'resumed', cancel: 'cancelled' };

/** A problem under an input, which the input names with `aria-describedby`. */
function FieldProblem({ id, problem }: { id: string; problem: string | undefined }) {
  if (!problem) return null;
  return (
    <span className="field-problem" id={`${id}-problem`}>
      {problem}
    </span>
  );
}

/** The attributes that tie an input to its problem. */
function invalid(id: string, problem: string | undefined) {
  return problem ? { 'aria-invalid': true as const, 'aria-describedby': `${id}-problem` } : {};
}

/**
 * The rollout plans of a flags layer: each with its status and next step,
 * pause, resume and cancel; and a form creating one (a flag with two
 * variants, steps of a time and a percentage). The server decides: its
 * refusals are shown on the field they name.
 */
export function RolloutPlans({ ns, scope, saved, writable }: { ns: string; scope: Scope; saved: JsonObject; writable: boolean }) {
  const { api } = useSession();
  const [plans, setPlans] = useState<RolloutPlan[] | 'loading'>('loading');
  const [loadError, setLoadError] = useState<unknown>(null);
  const [generation, setGeneration] = useState(0);
  const [controlError, setControlError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const candidates = flagsOf(saved).filter((f) => rolloutVariants(f) !== null);
  const [flag, setFlag] = useState('');
  const [steps, setSteps] = useState<StepDraft[]>(() => suggestedSteps(new Date()));
  const [problems, setProblems] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const chosen = candidates.find((f) => f.key === flag) ?? candidates[0];

  useEffect(() => {
    let live = true;
    api.rollouts(ns).then(
      (loaded) => {
        if (!live) return;
        setPlans(loaded);
        setLoadError(null);
      },
      (e: unknown) => live && setLoadError(e),
    );
    return () => {
      live = false;
    };
  }, [api, ns, generation]);

  const shown = plans === 'loading' ? [] : plansOf(plans, scope);

  const control = async (plan: RolloutPlan, what: RolloutControl) => {
    setControlError(null);
    setNotice(null);
    setBusy(true);
    try {
      await api.controlRollout(ns, plan.id, what);
      setNotice(`The plan of ${plan.flag} is ${CONTROL_DONE[what]}.`);
    } catch (error) {
      setControlError(error);
    } finally {
      setBusy(false);
      setGeneration((g) => g + 1);
    }
  };

  const create = async (event: FormEvent) => {
    event.preventDefault();
    setFormError(null);
    setNotice(null);
    if (!chosen) return;
    const parsed = parseSteps(steps);
    if ('problems' in parsed) {
      setProblems(parsed.problems);
      return;
    }
    setProblems({});
    setBusy(true);
    try {
      const plan = await api.createRollout(ns, { scope, flag: chosen.key, steps: parsed.steps });
      setNotice(`Created a plan rolling out “${plan.variant}” of ${plan.flag} in ${plan.steps.length} step${plan.steps.length === 1 ? '' : 's'}.`);
      setSteps(suggestedSteps(new Date()));
      setGeneration((g) => g + 1);
    } catch (error) {
      const field = error instanceof ApiProblem ? planFieldOf(error.field) : { kind: 'form' as const };
      const detail = error instanceof ApiProblem ? error.detail : String(error);
      if (field.kind === 'flag') setProblems({ 'plan-flag': detail });
      else if (field.kind === 'steps') setProblems({ 'plan-steps': detail });
      else if (field.kind === 'step') setProblems({ [stepInputId(field.index, field.part)]: detail });
      else setFormError(error);
    } finally {
      setBusy(false);
    }
  };

  const setStep = (index: number, part: keyof StepDraft, value: string) => {
    setSteps((all) => all.map((s, i) => (i === index ? { ...s, [part]: value } : s)));
    setProblems((p) => {
      const next = { ...p };
      delete next[stepInputId(index, part)];
      return next;
    });
  };

  return (
    <section className="panel" aria-labelledby="rollout-plans-heading">
      <h2 id="rollout-plans-heading">Rollout plans of this layer</h2>
      <p className="hint">A plan moves a flag’s percentage rollout through steps at given times; each step is a new revision of this layer, in its history and the audit log.</p>
      {notice && <InfoNotice>{notice}</InfoNotice>}
      <ErrorNotice error={controlError} />
      {loadError ? <ErrorNotice error={loadError} /> : null}
      {plans === 'loading' && !loadError && <Loading what="the rollout plans" />}
      {plans !== 'loading' && shown.length === 0 && <p>No rollout plan for this layer.</p>}
      {shown.length > 0 && (
        <table data-testid="rollout-plans">
          <caption className="hint">Oldest first; times in your time zone.</caption>
          <thead>
            <tr>
              <th scope="col">Flag</th>
              <th scope="col">Status</th>
              <th scope="col">Progress and next step</th>
              <th scope="col">Steps</th>
              <th scope="col">Created by</th>
              {writable && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {shown.map((plan) => (
              <tr key={plan.id} data-plan={plan.id}>
                <td>
                  {plan.flag}: “{plan.variant}”, the rest “{plan.otherwise}”
                </td>
                <td data-testid="plan-status">{plan.status}</td>
                <td>
                  {describePlan(plan)}
                  {plan.last_error && <span className="field-problem"> The due step is not applied: {plan.last_error}</span>}
                </td>
                <td>{plan.steps.map((s) => `${s.percent} % at ${formatTime(s.at)}`).join('; ')}</td>
                <td>
                  {plan.created_by}, {formatTime(plan.created_at)}
                </td>
                {writable && (
                  <td>
                    {controlsOf(plan.status).map((what) => (
                      <button key={what} type="button" className="secondary" disabled={busy} aria-label={`${CONTROL_LABEL[what]} the plan of ${plan.flag} created ${formatTime(plan.created_at)}`} onClick={() => void control(plan, what)}>
                        {CONTROL_LABEL[what]}
                      </button>
                    ))}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {writable && (
        <form onSubmit={create} aria-labelledby="new-plan-heading" noValidate>
          <h3 id="new-plan-heading">New rollout plan</h3>
          <ErrorNotice error={formError} />
          {candidates.length === 0 ? (
            <p>No saved flag of this layer has exactly two variants, which a plan splits between.</p>
          ) : (
            <>
              <div className="field">
                <label htmlFor="plan-flag">Flag to roll out</label>
                <select
                  id="plan-flag"
                  value={chosen?.key ?? ''}
                  {...invalid('plan-flag', problems['plan-flag'])}
                  onChange={(e) => {
                    setFlag(e.target.value);
                    setProblems((p) => {
                      const next = { ...p };
                      delete next['plan-flag'];
                      return next;
                    });
                  }}
                >
                  {candidates.map((f) => {
                    const [first, second] = rolloutVariants(f) ?? ['', ''];
                    return (
                      <option key={f.key} value={f.key}>
                        {f.key}: “{first}” to a share, the rest “{second}”
                      </option>
                    );
                  })}
                </select>
                <FieldProblem id="plan-flag" problem={problems['plan-flag']} />
              </div>
              <fieldset id="plan-steps" {...invalid('plan-steps', problems['plan-steps'])}>
                <legend>Steps (each from its time on, that percentage of users get the rolled-out variant)</legend>
                <FieldProblem id="plan-steps" problem={problems['plan-steps']} />
                {steps.map((step, index) => {
                  const atId = stepInputId(index, 'at');
                  const percentId = stepInputId(index, 'percent');
                  return (
                    <div className="scope-fields" key={index} data-step={index}>
                      <div className="field">
                        <label htmlFor={atId}>Time of step {index + 1}</label>
                        <input id={atId} type="datetime-local" value={step.at} onChange={(e) => setStep(index, 'at', e.target.value)} {...invalid(atId, problems[atId])} />
                        <FieldProblem id={atId} problem={problems[atId]} />
                      </div>
                      <div className="field">
                        <label htmlFor={percentId}>Percentage of step {index + 1}</label>
                        <input id={percentId} type="number" min={0} max={100} step={1} value={step.percent} onChange={(e) => setStep(index, 'percent', e.target.value)} {...invalid(percentId, problems[percentId])} />
                        <FieldProblem id={percentId} problem={problems[percentId]} />
                      </div>
                      <button
                        type="button"
                        className="secondary step-remove"
                        onClick={() => {
                          setSteps((all) => all.filter((_, i) => i !== index));
                          setProblems({});
                        }}
                      >
                        Remove step {index + 1}
                      </button>
                    </div>
                  );
                })}
                <button type="button" className="secondary" onClick={() => setSteps((all) => [...all, { at: all.at(-1)?.at ?? '', percent: '100' }])}>
                  Add a step
                </button>
              </fieldset>
              <button type="submit" disabled={busy}>
                Create the plan
              </button>
            </>
          )}
        </form>
      )}
    </section>
  );
}
