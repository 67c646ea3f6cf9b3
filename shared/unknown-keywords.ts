/**
 * Where a JSON Schema uses a keyword the validator does not know (`minimun` for `minimum`), as
 * JSON paths into the schema. ajv's strict mode only says "unknown keyword" and stops at the
 * first; an author needs to know where, and what was meant.
 */
import type { SchemaIssue } from './errors.js';

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
