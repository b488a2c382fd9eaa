// A JSON Schema's top-level properties as rows for a table: what each key
// is, its type, its default and whether it is required.

import type { Json } from './api';

export interface PropertyRow {
  name: string;
  type: string;
  required: boolean;
  defaultValue?: string;
  description: string;
}

function typeOf(schema: Record<string, Json>): string {
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  if (Array.isArray(schema.type)) return schema.type.join(' or ');
  if (typeof schema.type === 'string') return schema.type;
  if (schema.$ref) return String(schema.$ref);
  return 'any';
}

export function propertyRows(schema: Json | null | undefined): PropertyRow[] {
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return [];
  const properties = schema.properties;
  if (!properties || typeof properties !== 'object' || Array.isArray(properties)) return [];
  const required = Array.isArray(schema.required) ? schema.required : [];
  return Object.entries(properties).map(([name, sub]) => {
    const s = sub && typeof sub === 'object' && !Array.isArray(sub) ? sub : {};
    return {
      name,
      type: typeOf(s),
      required: required.includes(name),
      defaultValue: 'default' in s ? JSON.stringify(s.default) : undefined,
      description: typeof s.description === 'string' ? s.description : typeof s.title === 'string' ? s.title : '',
    };
  });
}
