// Explain: which layer (scope and revision) each resolved value comes from.
// The server names sources by JSON pointer, at whatever depth the value was
// set; a leaf takes the source of its nearest named ancestor.

import type { Source } from './api';
import { flatten } from './diff';
import { isWithin } from './pointer';

export interface ExplainedValue {
  pointer: string;
  value: unknown;
  source?: Source;
}

export function sourceFor(pointer: string, sources: Record<string, Source>): Source | undefined {
  let best: string | undefined;
  for (const candidate of Object.keys(sources)) {
    if (isWithin(pointer, candidate) && (best === undefined || candidate.length > best.length)) best = candidate;
  }
  return best === undefined ? undefined : sources[best];
}

/** Every resolved leaf with where it comes from. */
export function explain(values: unknown, sources: Record<string, Source> = {}): ExplainedValue[] {
  return [...flatten(values ?? {})].map(([pointer, value]) => ({ pointer, value, source: sourceFor(pointer, sources) }));
}
