/**
 * Why a JSON Schema did not compile, with each problem's JSON path inside the schema. ajv's
 * strict mode says only "unknown keyword" and stops at the first; an author needs to know where
 * (`/properties/seconds/minimun`), and what was meant (`minimum`).
 */
import { InvalidSchemaError, type SchemaIssue } from './errors.js';

export interface SchemaCompileFailure {
  schema: object;
  /** What the schema is, to start each message with (`taskConfigSchema()`). */
  source: string;
  /** What the validator threw. */
  reason: unknown;
  /** The keywords the validator knows, and the closest of them to a word. */
  known: ReadonlySet<string>;
  suggest: (word: string) => string | undefined;
  /** The validator's meta-schema issues (a known keyword with a wrong value), with paths into the schema. */
  metaIssues: () => SchemaIssue[];
}

/** An InvalidSchemaError that names each problem's path: unknown keywords first, then meta-schema issues, then ajv's message. */
export function schemaCompileError({ schema, source, reason, known, suggest, metaIssues }: SchemaCompileFailure): InvalidSchemaError {
  const message = reason instanceof Error ? reason.message : String(reason);
  let issues = unknownKeywords(schema, known, suggest);
  if (issues.length === 0) issues = metaIssues();
  if (issues.length === 0) {
    // ajv names a place as `at "#/properties/a"` (strictTypes, an unresolvable $ref and the like).
    const at = /at (?:path )?"#([^"]*)"/.exec(message);
    issues = [{ path: at?.[1] ?? '', message }];
  }
  const text = issues.map((i) => `${source} ${i.path === '' ? '(root)' : i.path}: ${i.message}`).join('; ');
  return new InvalidSchemaError(text, { details: { errors: issues }, cause: reason });
}

/** Keywords whose value is one subschema, or (items, additionalItems) a list of them. */
const subschema = new Set([
  'additionalItems',
  'additionalProperties',
  'contains',
  'propertyNames',
  'if',
  'then',
  'else',
  'not',
  'items',
  'unevaluatedItems',
  'unevaluatedProperties',
  'contentSchema',
]);
/** Keywords whose value is a list of subschemas. */
const subschemaList = new Set(['allOf', 'anyOf', 'oneOf', 'prefixItems']);
/** Keywords whose value maps names to subschemas (dependencies: or to a list of names). */
const subschemaMap = new Set(['properties', 'patternProperties', 'definitions', '$defs', 'dependentSchemas', 'dependencies']);

/**
 * Every key of `schema` in a schema position that is not in `known`, with its path and the
 * closest known keyword when `suggest` finds one.
 */
export function unknownKeywords(schema: unknown, known: ReadonlySet<string>, suggest: (word: string) => string | undefined): SchemaIssue[] {
  const issues: SchemaIssue[] = [];
  const visit = (node: unknown, path: string): void => {
    if (typeof node !== 'object' || node === null) return; // true and false are schemas too
    if (Array.isArray(node)) return;
    for (const [key, value] of Object.entries(node)) {
      const at = `${path}/${escape(key)}`;
      if (!known.has(key)) {
        const guess = suggest(key);
        issues.push({ path: at, message: `unknown keyword${guess ? ` (did you mean "${guess}"?)` : ''}` });
      } else if (subschema.has(key)) {
        if (Array.isArray(value)) value.forEach((v, i) => visit(v, `${at}/${i}`));
        else visit(value, at);
      } else if (subschemaList.has(key) && Array.isArray(value)) {
        value.forEach((v, i) => visit(v, `${at}/${i}`));
      } else if (subschemaMap.has(key) && typeof value === 'object' && value !== null) {
        for (const [name, sub] of Object.entries(value as Record<string, unknown>)) {
          if (!Array.isArray(sub)) visit(sub, `${at}/${escape(name)}`);
        }
      }
    }
  };
  visit(schema, '');
  return issues;
}

function escape(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}
