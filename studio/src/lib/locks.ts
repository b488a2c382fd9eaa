// Locked values in the schema form: a field a lock covers is shown locked
// (read-only, with the reason) so nobody types a change the server refuses.

import type { UiSchema } from '@rjsf/utils';
import { parsePointer } from './pointer';

export interface Lock {
  pointer: string;
  reason: string;
}

/** An rjsf uiSchema marking each locked pointer read-only, with its reason as help. */
export function lockUiSchema(locks: readonly Lock[], base: UiSchema = {}): UiSchema {
  const root: UiSchema = structuredClone(base);
  for (const lock of locks) {
    let node: Record<string, unknown> = root;
    for (const token of parsePointer(lock.pointer)) {
      node[token] ??= {};
      node = node[token] as Record<string, unknown>;
    }
    node['ui:readonly'] = true;
    node['ui:help'] = `Locked: ${lock.reason}`;
    node['ui:classNames'] = 'locked';
  }
  return root;
}

/**
 * Why a pointer cannot be added to a layer's own locks, or null: the server
 * takes RFC 6901 pointers (`/limit`, `/db/pool`; the empty pointer locks the
 * whole document).
 */
export function lockPointerProblem(pointer: string, held: readonly string[]): string | null {
  if (pointer !== '' && !pointer.startsWith('/')) return 'a JSON pointer starts with "/", as in /limit';
  if (/~[^01]|~$/.test(pointer)) return 'a "~" in a JSON pointer is written ~0, and a "/" inside a key ~1';
  if (held.includes(pointer)) return 'this layer already locks it';
  return null;
}
