import { describe, expect, it } from 'vitest';
import { flagKeyProblem, flagsOf, rolloutOf, rolloutTargeting, rolloutVariants, violationsOf, withFlagField, withNewFlag, withoutFlag } from './flags';

const values = {
  flags: {
    checkout: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'off' },
    banner: { defaultVariant: 'blue' },
  },
};

describe('flags of a layer', () => {
  it('lists the flags a layer sets, by key, an override with only some fields', () => {
    expect(flagsOf(values)).toEqual([
      { key: 'banner', defaultVariant: 'blue', state: undefined, variants: undefined, targeting: undefined },
      { key: 'checkout', state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'off', targeting: undefined },
    ]);
    expect(flagsOf({})).toEqual([]);
    expect(flagsOf({ flags: [] })).toEqual([]);
  });

  it('changes one field without touching the rest or its input', () => {
    const next = withFlagField(values, 'checkout', 'state', 'DISABLED');
    expect(next.flags).toEqual({ ...values.flags, checkout: { ...values.flags.checkout, state: 'DISABLED' } });
    expect(values.flags.checkout.state).toBe('ENABLED');
    expect(withFlagField(values, 'banner', 'defaultVariant', undefined).flags).toEqual({ ...values.flags, banner: {} });
  });

  it('adds a flag off for everyone, and removes one', () => {
    expect(withNewFlag({}, 'dark-mode')).toEqual({ flags: { 'dark-mode': { state: 'DISABLED', variants: { on: true, off: false }, defaultVariant: 'off' } } });
    expect(Object.keys(withoutFlag(values, 'banner').flags as object)).toEqual(['checkout']);
  });

  it('refuses an empty, malformed or taken key', () => {
    expect(flagKeyProblem('new.checkout_v2', [])).toBeNull();
    expect(flagKeyProblem('', [])).toMatch(/empty/);
    expect(flagKeyProblem('a b', [])).toMatch(/only letters/);
    expect(flagKeyProblem('checkout', ['checkout'])).toMatch(/exists/);
  });

  it("sorts the server's violations by flag and field", () => {
    const violations = [
      { pointer: '/flags/checkout/defaultVariant', message: 'unknown variant' },
      { pointer: '/flags/checkout/targeting/if/0', message: 'bad' },
      { pointer: '/flags/checkout', message: 'missing variants' },
      { pointer: '/flags/banner/defaultVariant', message: 'x' },
    ];
    expect(violationsOf(violations, 'checkout', 'defaultVariant').map((v) => v.message)).toEqual(['unknown variant']);
    expect(violationsOf(violations, 'checkout', 'targeting').map((v) => v.message)).toEqual(['bad']);
    expect(violationsOf(violations, 'checkout').map((v) => v.message)).toEqual(['missing variants']);
  });

  it('writes and reads a percentage rollout as a two-way fractional', () => {
    expect(rolloutTargeting('on', 'off', 25)).toEqual({ fractional: [['on', 25], ['off', 75]] });
    expect(rolloutTargeting('on', 'off', 140)).toEqual({ fractional: [['on', 100], ['off', 0]] });
    expect(rolloutOf(rolloutTargeting('on', 'off', 25))).toEqual({ first: 'on', second: 'off', percent: 25 });
    expect(rolloutOf({ fractional: [['on', 1], ['off', 3]] })?.percent).toBe(25);
    expect(rolloutOf({ if: [true, 'on', 'off'] })).toBeNull();
    expect(rolloutOf(undefined)).toBeNull();
  });

  it('rolls out the variant that is not the default, or keeps the current split', () => {
    const variants = { off: false, on: true };
    expect(rolloutVariants({ key: 'k', variants, defaultVariant: 'off' })).toEqual(['on', 'off']);
    expect(rolloutVariants({ key: 'k', variants, defaultVariant: 'on' })).toEqual(['off', 'on']);
    expect(rolloutVariants({ key: 'k', variants, defaultVariant: 'on', targeting: rolloutTargeting('on', 'off', 10) })).toEqual(['on', 'off']);
    expect(rolloutVariants({ key: 'k', variants: { a: 1, b: 2, c: 3 } })).toBeNull();
  });
});
