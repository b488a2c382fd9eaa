import { describe, expect, it } from 'vitest';
import type { RJSFSchema } from '@rjsf/utils';
import { InterpretingValidator, instancePointer } from './validator';

const schema: RJSFSchema = {
  type: 'object',
  properties: {
    limit: { type: 'integer', maximum: 100 },
    mode: { enum: ['fast', 'safe'] },
    nested: { type: 'object', properties: { on: { type: 'boolean' } }, required: ['on'] },
  },
};

describe('the form validator (no code generation)', () => {
  it('accepts valid data and reports each failing field once', () => {
    const v = new InterpretingValidator();
    expect(v.validateFormData({ limit: 5, mode: 'fast' }, schema).errors).toEqual([]);
    const { errors, errorSchema } = v.validateFormData({ limit: 500, nested: {} }, schema);
    expect(errors.map((e) => e.property).sort()).toEqual(['.limit', '.nested']);
    expect(Object.keys(errorSchema).sort()).toEqual(['limit', 'nested']);
  });

  it('answers isValid for the subschemas rjsf asks about', () => {
    const v = new InterpretingValidator();
    expect(v.isValid({ type: 'string' }, 'x', schema)).toBe(true);
    expect(v.isValid({ type: 'string' }, 3, schema)).toBe(false);
  });

  it('reads instance locations in either form', () => {
    expect(instancePointer('#/a/b%20c')).toBe('/a/b c');
    expect(instancePointer('#')).toBe('');
  });
});
