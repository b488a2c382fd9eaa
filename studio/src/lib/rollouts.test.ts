import { describe, expect, it } from 'vitest';
import { controlsOf, describePlan, localToRfc3339, nextStep, parseSteps, planFieldOf, plansOf, rfc3339ToLocal, stepInputId, suggestedSteps, type RolloutPlan } from './rollouts';

const plan = (over: Partial<RolloutPlan> = {}): RolloutPlan => ({
  id: 'p1',
  namespace: 'flags',
  scope: {},
  flag: 'checkout',
  variant: 'on',
  otherwise: 'off',
  steps: [
    { at: '2030-01-01T10:00:00Z', percent: 5 },
    { at: '2030-01-02T10:00:00Z', percent: 50 },
  ],
  applied: 1,
  status: 'active',
  created_by: 'admin',
  created_at: '2029-12-31T10:00:00Z',
  ...over,
});

describe('rollout plans', () => {
  it('names the step applied next, none once a plan ended', () => {
    expect(nextStep(plan())).toEqual({ at: '2030-01-02T10:00:00Z', percent: 50 });
    expect(nextStep(plan({ status: 'paused' }))).toEqual({ at: '2030-01-02T10:00:00Z', percent: 50 });
    expect(nextStep(plan({ applied: 2, status: 'completed' }))).toBeNull();
    expect(nextStep(plan({ status: 'cancelled' }))).toBeNull();
  });

  it('describes where a plan stands', () => {
    expect(describePlan(plan(), 'en-GB')).toMatch(/^1 of 2 steps applied; next: 50 % at /);
    expect(describePlan(plan({ status: 'paused' }), 'en-GB')).toMatch(/\(paused\)$/);
    expect(describePlan(plan({ status: 'cancelled' }))).toBe('1 of 2 steps applied');
    expect(describePlan(plan({ steps: [{ at: '2030-01-01T10:00:00Z', percent: 100 }], applied: 0 }), 'en-GB')).toMatch(/^0 of 1 step applied/);
  });

  it('offers only the controls a status allows', () => {
    expect(controlsOf('active')).toEqual(['pause', 'cancel']);
    expect(controlsOf('paused')).toEqual(['resume', 'cancel']);
    expect(controlsOf('cancelled')).toEqual([]);
    expect(controlsOf('completed')).toEqual([]);
  });

  it("keeps a layer's plans, or one flag's", () => {
    const plans = [plan(), plan({ id: 'p2', flag: 'banner' }), plan({ id: 'p3', scope: { env: 'prod' } })];
    expect(plansOf(plans, {}).map((p) => p.id)).toEqual(['p1', 'p2']);
    expect(plansOf(plans, {}, 'checkout').map((p) => p.id)).toEqual(['p1']);
    expect(plansOf(plans, { env: 'prod' }, 'checkout').map((p) => p.id)).toEqual(['p3']);
  });

  it('turns local times into RFC 3339 and back', () => {
    const local = rfc3339ToLocal(new Date(2030, 0, 2, 9, 5));
    expect(local).toBe('2030-01-02T09:05');
    expect(localToRfc3339(local)).toBe(new Date(2030, 0, 2, 9, 5).toISOString());
    expect(localToRfc3339('')).toBeNull();
    expect(localToRfc3339('tomorrow')).toBeNull();
    expect(localToRfc3339('2030-13-45T99:99')).toBeNull();
  });

  it('parses typed steps, or says which input is not a step yet', () => {
    const parsed = parseSteps([
      { at: '2030-01-02T09:05', percent: '5' },
      { at: '2030-01-03T09:05', percent: ' 100 ' },
    ]);
    expect(parsed).toEqual({
      steps: [
        { at: new Date(2030, 0, 2, 9, 5).toISOString(), percent: 5 },
        { at: new Date(2030, 0, 3, 9, 5).toISOString(), percent: 100 },
      ],
    });
    expect(parseSteps([{ at: '', percent: '101' }])).toEqual({
      problems: { [stepInputId(0, 'at')]: expect.stringMatching(/date/), [stepInputId(0, 'percent')]: expect.stringMatching(/0 to 100/) },
    });
    expect(parseSteps([{ at: '2030-01-02T09:05', percent: '2.5' }])).toEqual({ problems: { [stepInputId(0, 'percent')]: expect.any(String) } });
    expect(parseSteps([])).toEqual({ problems: { 'plan-steps': expect.any(String) } });
  });

  it("puts the server's refusal on the field it names", () => {
    expect(planFieldOf('/flag')).toEqual({ kind: 'flag' });
    expect(planFieldOf('/steps')).toEqual({ kind: 'steps' });
    expect(planFieldOf('/steps/2/at')).toEqual({ kind: 'step', index: 2, part: 'at' });
    expect(planFieldOf('/steps/0/percent')).toEqual({ kind: 'step', index: 0, part: 'percent' });
    expect(planFieldOf('steps[1].at')).toEqual({ kind: 'step', index: 1, part: 'at' });
    expect(planFieldOf('/scope')).toEqual({ kind: 'form' });
    expect(planFieldOf(undefined)).toEqual({ kind: 'form' });
  });

  it('suggests 5, 25 and 100 % a day apart, starting in an hour', () => {
    const now = new Date(2030, 0, 1, 12, 0);
    expect(suggestedSteps(now)).toEqual([
      { at: '2030-01-01T13:00', percent: '5' },
      { at: '2030-01-02T13:00', percent: '25' },
      { at: '2030-01-03T13:00', percent: '100' },
    ]);
  });
});
