// Searching the namespace catalogue: a namespace matches when every word of
// the query appears in its name, its description or the names, titles and
// descriptions of its schema's properties (at any depth).

import type { Json, Namespace } from './api';

/** The property names, titles and descriptions a schema declares, at every depth. */
export function schemaTerms(schema: Json | null | undefined, out: string[] = []): string[] {
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return out;
  const properties = schema.properties;
  if (properties && typeof properties === 'object' && !Array.isArray(properties)) {
    for (const [name, sub] of Object.entries(properties)) {
      out.push(name);
      if (sub && typeof sub === 'object' && !Array.isArray(sub)) {
        if (typeof sub.title === 'string') out.push(sub.title);
        if (typeof sub.description === 'string') out.push(sub.description);
        schemaTerms(sub, out);
      }
    }
  }
  for (const key of ['items', '$defs', 'definitions'] as const) {
    const nested = schema[key];
    if (key === 'items') schemaTerms(nested, out);
    else if (nested && typeof nested === 'object' && !Array.isArray(nested)) for (const sub of Object.values(nested)) schemaTerms(sub, out);
  }
  return out;
}

export function matchesQuery(namespace: Namespace, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const haystack = [namespace.name, namespace.description, ...schemaTerms(namespace.schema)].join('\n').toLowerCase();
  return words.every((word) => haystack.includes(word));
}

/** Top-level property names of a schema, for a namespace's summary. */
export function topLevelKeys(schema: Json | null | undefined): string[] {
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return [];
  const properties = schema.properties;
  return properties && typeof properties === 'object' && !Array.isArray(properties) ? Object.keys(properties) : [];
}

/** How many values a search found, in words. */
export function valueCount(count: number, truncated: boolean): string {
  if (count === 0) return 'No value you may read matches.';
  const found = count === 1 ? '1 value matches' : `${count} values match`;
  return truncated ? `${found} (the first ones; narrow the search for the rest)` : found;
}
