// Rollout plans (`/v1/namespaces/{ns}/rollouts`, docs/flags.md) as the flags
// screen shows and creates them: the step a plan applies next, the steps a
// person types (a local date and time and a percentage) turned into the
// request, and the server's refusal (`field`: `/flag`, `/steps/1/at`…) put on
// the input it names.

import type { Scope } from './scope';
import { sameScope } from './scope';

export type RolloutStatus = 'active' | 'paused' | 'cancelled' | 'completed';
export type RolloutControl = 'pause' | 'resume' | 'cancel';

export interface RolloutStep {
  /** RFC 3339. */
  at: string;
  percent: number;
}

export interface RolloutPlan {
  id: string;
  namespace: string;
  scope: Scope;
  flag: string;
  variant: string;
  otherwise: string;
  steps: RolloutStep[];
  applied: number;
  status: RolloutStatus;
  created_by: string;
  created_at: string;
  last_error?: string;
}

/** A step as typed: `at` from a `datetime-local` input (local time), `percent` as text. */
export interface StepDraft {
  at: string;
  percent: string;
}

/** Where a problem belongs on the plan form. */
export type PlanField = { kind: 'flag' } | { kind: 'steps' } | { kind: 'step'; index: number; part: 'at' | 'percent' } | { kind: 'form' };

/** The field a server problem names (`field` of the problem), on the form. */
export function planFieldOf(field: string | undefined): PlanField {
  if (field === '/flag') return { kind: 'flag' };
  if (field === '/steps') return { kind: 'steps' };
  const step = /^\/steps\/(\d+)\/(at|percent)$/.exec(field ?? '') ?? /^steps\[(\d+)\]\.(at|percent)$/.exec(field ?? '');
  if (step) return { kind: 'step', index: Number(step[1]), part: step[2] as 'at' | 'percent' };
  return { kind: 'form' };
}

/** The id of a step's input, so that a problem can point at it. */
export function stepInputId(index: number, part: 'at' | 'percent'): string {
  return `plan-step-${index}-${part}`;
}

/** The plans of one layer (of one of its flags, when `flag` is given), oldest first as the server lists them. */
export function plansOf(plans: readonly RolloutPlan[], scope: Scope, flag?: string): RolloutPlan[] {
  return plans.filter((p) => sameScope(p.scope, scope) && (flag === undefined || p.flag === flag));
}

/** The step a plan applies next, or null when it applies no more (ended, or every step applied). */
export function nextStep(plan: RolloutPlan): RolloutStep | null {
  if (plan.status === 'cancelled' || plan.status === 'completed') return null;
  return plan.steps[plan.applied] ?? null;
}

/** The controls that apply to a plan in its status (the others answer 409). */
export function controlsOf(status: RolloutStatus): RolloutControl[] {
  switch (status) {
    case 'active':
      return ['pause', 'cancel'];
    case 'paused':
      return ['resume', 'cancel'];
    default:
      return [];
  }
}

/** A time as a person reads it, in their own time zone and language. */
export function formatTime(iso: string, locale?: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'short' });
}

/** One line about where a plan stands, such as "2 of 3 steps applied; next: 50 % at …". */
export function describePlan(plan: RolloutPlan, locale?: string): string {
  const done = `${plan.applied} of ${plan.steps.length} step${plan.steps.length === 1 ? '' : 's'} applied`;
  const next = nextStep(plan);
  if (!next) return done;
  const when = formatTime(next.at, locale);
  return `${done}; next: ${next.percent} % at ${when}${plan.status === 'paused' ? ' (paused)' : ''}`;
}

/** A `datetime-local` value (local time) as RFC 3339 in UTC, or null when it is not one. */
export function localToRfc3339(value: string): string | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value)) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** A time as a `datetime-local` value (local time, to the minute). */
export function rfc3339ToLocal(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/**
 * The steps as the request takes them, or the problems of those that are not
 * steps yet, by input id. The server checks the rest (times in the future and
 * increasing) and names the field it refuses.
 */
export function parseSteps(drafts: readonly StepDraft[]): { steps: RolloutStep[] } | { problems: Record<string, string> } {
  const problems: Record<string, string> = {};
  const steps: RolloutStep[] = [];
  drafts.forEach((draft, index) => {
    const at = localToRfc3339(draft.at.trim());
    if (at === null) problems[stepInputId(index, 'at')] = 'a date and time is needed';
    const text = draft.percent.trim();
    const percent = Number(text);
    if (text === '' || !Number.isInteger(percent) || percent < 0 || percent > 100) problems[stepInputId(index, 'percent')] = 'a whole percentage from 0 to 100 is needed';
    if (at !== null) steps.push({ at, percent });
  });
  if (drafts.length === 0) problems['plan-steps'] = 'a plan needs at least one step';
  return Object.keys(problems).length > 0 ? { problems } : { steps };
}

/** Steps to start from: 5 %, 25 % and 100 %, a day apart, from an hour after `now`. */
export function suggestedSteps(now: Date): StepDraft[] {
  const hour = 60 * 60 * 1000;
  return [5, 25, 100].map((percent, i) => ({ at: rfc3339ToLocal(new Date(now.getTime() + hour + i * 24 * hour)), percent: String(percent) }));
}
