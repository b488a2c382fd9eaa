// A flags namespace's layer (`{"flags": {"<key>": <flag>}}`, flagd's format)
// as the flags screen edits it: the flags a layer sets (an override layer
// may set only some fields of a flag), immutable changes of one field, and
// the server's violations sorted by the flag and field they name.

import type { Json, JsonObject } from './api';
import { parsePointer } from './pointer';
import type { Violation } from './problem';

export const FLAG_FIELDS = ['state', 'variants', 'defaultVariant', 'targeting'] as const;
export type FlagField = (typeof FLAG_FIELDS)[number];
export type FlagState = 'ENABLED' | 'DISABLED';

/** One flag as a layer sets it; an absent field is inherited from weaker layers. */
export interface FlagEntry {
  key: string;
  state?: FlagState;
  variants?: JsonObject;
  defaultVariant?: string;
  targeting?: JsonObject;
}

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The flags a layer's values set, by key. */
export function flagsOf(values: JsonObject): FlagEntry[] {
  const flags = values.flags;
  if (!isObject(flags)) return [];
  return Object.entries(flags)
    .filter((entry): entry is [string, JsonObject] => isObject(entry[1]))
    .map(([key, flag]): FlagEntry => ({
      key,
      state: flag.state === 'ENABLED' ? 'ENABLED' : flag.state === 'DISABLED' ? 'DISABLED' : undefined,
      variants: isObject(flag.variants) ? flag.variants : undefined,
      defaultVariant: typeof flag.defaultVariant === 'string' ? flag.defaultVariant : undefined,
      targeting: isObject(flag.targeting) ? flag.targeting : undefined,
    }))
    .sort((a, b) => a.key.localeCompare(b.key));
}

/** The values with one field of one flag set (or removed, with `undefined`: inherited). */
export function withFlagField(values: JsonObject, key: string, field: FlagField, value: Json | undefined): JsonObject {
  const flags = isObject(values.flags) ? values.flags : {};
  const flag = { ...(isObject(flags[key]) ? flags[key] : {}) };
  if (value === undefined) delete flag[field];
  else flag[field] = value;
  return { ...values, flags: { ...flags, [key]: flag } };
}

/** A new flag, off for everyone until it is turned on: two boolean variants. */
export function withNewFlag(values: JsonObject, key: string): JsonObject {
  const flags = isObject(values.flags) ? values.flags : {};
  return { ...values, flags: { ...flags, [key]: { state: 'DISABLED', variants: { on: true, off: false }, defaultVariant: 'off' } } };
}

export function withoutFlag(values: JsonObject, key: string): JsonObject {
  const flags = { ...(isObject(values.flags) ? values.flags : {}) };
  delete flags[key];
  return { ...values, flags };
}

/** Why a flag key would be refused, or null (the keys OFREP clients ask for). */
export function flagKeyProblem(key: string, existing: readonly string[]): string | null {
  if (key === '') return 'must not be empty';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(key)) return "may contain only letters, digits, '.', '-' and '_', starting with a letter or digit";
  if (existing.includes(key)) return 'a flag with this key exists';
  return null;
}

/** The violations naming a field of a flag (`/flags/<key>/<field>…`), and those naming the flag itself. */
export function violationsOf(violations: readonly Violation[], key: string, field?: FlagField): Violation[] {
  return violations.filter((v) => {
    let tokens: string[];
    try {
      tokens = parsePointer(v.pointer);
    } catch {
      return false;
    }
    if (tokens[0] !== 'flags' || tokens[1] !== key) return false;
    return field === undefined ? tokens.length === 2 : tokens[2] === field;
  });
}

/**
 * Targeting that gives `percent` % of targeting keys the first variant and
 * the rest the second, sticky per key (flagd's `fractional`).
 */
export function rolloutTargeting(first: string, second: string, percent: number): JsonObject {
  const p = Math.min(100, Math.max(0, Math.round(percent)));
  return { fractional: [[first, p], [second, 100 - p]] };
}

/** The rollout a targeting rule is, when it is exactly a two-way `fractional`: the first variant's share. */
export function rolloutOf(targeting: JsonObject | undefined): { first: string; second: string; percent: number } | null {
  const f = targeting?.fractional;
  if (!targeting || Object.keys(targeting).length !== 1 || !Array.isArray(f) || f.length !== 2) return null;
  const [a, b] = f;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== 2 || b.length !== 2) return null;
  const [first, wa] = a;
  const [second, wb] = b;
  if (typeof first !== 'string' || typeof second !== 'string' || typeof wa !== 'number' || typeof wb !== 'number' || wa + wb <= 0) return null;
  return { first, second, percent: Math.round((wa * 100) / (wa + wb)) };
}

/**
 * The two variants a percentage rollout splits between, for a flag with
 * exactly two: those of its current rollout, else the one being rolled out
 * (not the default) first and the default second.
 */
export function rolloutVariants(flag: FlagEntry): [string, string] | null {
  const names = Object.keys(flag.variants ?? {}).sort();
  if (names.length !== 2) return null;
  const current = rolloutOf(flag.targeting);
  if (current && names.includes(current.first) && names.includes(current.second) && current.first !== current.second) return [current.first, current.second];
  const [a = '', b = ''] = names;
  return flag.defaultVariant === a ? [b, a] : [a, b];
}
