// The JSON-Schema validator behind Studio's forms. @rjsf/validator-ajv8
// compiles schemas to code with `new Function`, which Studio's
// Content-Security-Policy forbids (no 'unsafe-eval'); @cfworker/json-schema
// interprets the schema instead (2020-12 and earlier drafts), so this adapter
// gives rjsf the same interface without code generation. The server stays
// the judge: these checks only help while typing.

import { Validator, type OutputUnit, type Schema } from '@cfworker/json-schema';
import type { ErrorSchema, RJSFSchema, RJSFValidationError, ValidationData, ValidatorType } from '@rjsf/utils';
import { parsePointer } from './pointer';
import { violationsToErrorSchema } from './problem';

type Json = unknown;

function draftOf(schema: RJSFSchema): '2020-12' | '2019-09' | '7' | '4' {
  const declared = typeof schema.$schema === 'string' ? schema.$schema : '';
  if (declared.includes('draft-07')) return '7';
  if (declared.includes('draft-04')) return '4';
  if (declared.includes('2019-09')) return '2019-09';
  return '2020-12';
}

/** The instance pointer of an error (`#/a/b` or `/a/b`), as a JSON pointer. */
export function instancePointer(location: string): string {
  const raw = location.startsWith('#') ? location.slice(1) : location;
  return raw
    .split('/')
    .map((token) => {
      try {
        return decodeURIComponent(token);
      } catch {
        return token;
      }
    })
    .join('/');
}

/**
 * The errors that say something: cfworker also reports every enclosing
 * keyword ("a property does not match"), which only repeats a deeper error.
 */
export function leafErrors(errors: readonly OutputUnit[]): OutputUnit[] {
  return errors.filter(
    (error) =>
      !errors.some(
        (other) =>
          other !== error &&
          other.keywordLocation.startsWith(error.keywordLocation + '/') &&
          other.instanceLocation.startsWith(error.instanceLocation),
      ),
  );
}

/** rjsf's `.a.b` property path of a JSON pointer. */
function propertyPath(pointer: string): string {
  return parsePointer(pointer)
    .map((t) => `.${t}`)
    .join('');
}

export class InterpretingValidator implements ValidatorType<Json, RJSFSchema> {
  private cache = new WeakMap<object, Validator>();

  private validatorFor(schema: RJSFSchema, rootSchema?: RJSFSchema): Validator {
    const cached = this.cache.get(schema);
    if (cached) return cached;
    // Subschemas rjsf asks about may refer to the root's definitions.
    const full =
      rootSchema && rootSchema !== schema
        ? { ...schema, $defs: rootSchema.$defs ?? schema.$defs, definitions: rootSchema.definitions ?? schema.definitions }
        : schema;
    const validator = new Validator(full as Schema, draftOf(rootSchema ?? schema), false);
    this.cache.set(schema, validator);
    return validator;
  }

  private errorsOf(schema: RJSFSchema, data: Json, rootSchema?: RJSFSchema): RJSFValidationError[] {
    const result = this.validatorFor(schema, rootSchema).validate(data);
    if (result.valid) return [];
    return leafErrors(result.errors).map((error) => {
      const pointer = instancePointer(error.instanceLocation);
      const property = propertyPath(pointer);
      return {
        name: error.keyword,
        message: error.error,
        property,
        schemaPath: error.keywordLocation,
        stack: `${property || '.'} ${error.error}`,
      };
    });
  }

  validateFormData(formData: Json, schema: RJSFSchema): ValidationData<Json> {
    const errors = this.errorsOf(schema, formData ?? {});
    const errorSchema: ErrorSchema = violationsToErrorSchema(
      errors.map((e) => ({ pointer: pointerOfProperty(e.property ?? ''), message: e.message })),
    );
    return { errors, errorSchema };
  }

  isValid(schema: RJSFSchema, formData: Json, rootSchema: RJSFSchema): boolean {
    try {
      return this.errorsOf(schema, formData, rootSchema).length === 0;
    } catch {
      return false;
    }
  }

  rawValidation<Result = unknown>(schema: RJSFSchema, formData?: Json): { errors?: Result[]; validationError?: Error } {
    try {
      const errors = this.errorsOf(schema, formData);
      return { errors: errors as Result[] };
    } catch (error) {
      return { validationError: error as Error };
    }
  }

  reset(): void {
    this.cache = new WeakMap();
  }
}

function pointerOfProperty(property: string): string {
  if (!property) return '';
  return property
    .split('.')
    .slice(1)
    .map((t) => '/' + t.replace(/~/g, '~0').replace(/\//g, '~1'))
    .join('');
}

export const validator = new InterpretingValidator();

// rjsf's test helper imports @rjsf/validator-ajv8; Studio aliases it here (see vite.config.ts).
export default validator;
