/**
 * Schema helpers: one TypeBox schema gives the TypeScript type and the ajv validator.
 * Validation applies defaults, rejects unknown keys and names every error's JSON path.
 */
import { createRequire } from 'node:module';
import { Type, type TUnsafe } from '@sinclair/typebox';
import type * as AjvModule from 'ajv';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { durationFits } from './duration.js';
import { InvalidConfigError, type SchemaIssue } from './errors.js';
import { schemaCompileError } from './schema-compile-error.js';

export type JsonSchema = Record<string, unknown>;

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; issues: SchemaIssue[] };

/** A compiled schema. Never mutates its input: defaults are applied to a copy. */
export interface Validator<T> {
  (data: unknown): ValidationResult<T>;
  readonly schema: JsonSchema;
  /**
   * The same check without the copy: defaults are applied to `data` itself, which the result's
   * value then is. Only for data nobody else holds (a message that just crossed a thread or
   * process boundary): on big messages the copy costs more than the check.
   */
  readonly inPlace: (data: unknown) => ValidationResult<T>;
}

let instance: Ajv | undefined;
/**
 * The one ajv instance, made on first use: loading ajv costs tens of milliseconds, which a plugin
 * that imports the SDK and never compiles a schema should not pay (ajv is CommonJS, so a
 * synchronous require does it and compileSchema stays synchronous).
 */
function ajvInstance(): Ajv {
  if (instance) return instance;
  const require = createRequire(import.meta.url);
  const { Ajv } = require('ajv') as typeof AjvModule;
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true });
  (require('ajv-formats') as { default: (a: Ajv) => void }).default(ajv);
  // Durations a timer can hold (see shared/duration.ts); malformed ones are left to the pattern.
  ajv.addFormat('taskhost-duration', { type: 'string', validate: durationFits });
  // `errorMessage: { <keyword>: <message> }` replaces ajv's wording for that keyword's failure, as
  // ajv-errors' object form does: `must match pattern "^(?:\d+..."` tells a person nothing.
  ajv.addKeyword({ keyword: 'errorMessage', schemaType: 'object' });
  instance = ajv;
  return ajv;
}

const compiled = new WeakMap<object, Validator<unknown>>();
const compiledByText = new Map<string, Validator<unknown>>();

/**
 * Compiles a schema once. Objects that declare `properties` but say nothing about
 * `additionalProperties` are closed, so an unknown key is always an error. A schema that does
 * not compile throws InvalidSchemaError naming each problem's path inside the schema, after
 * `source` (what the schema is, e.g. `taskConfigSchema()`).
 */
export function compileSchema<T = unknown>(schema: object, source = 'JSON Schema'): Validator<T> {
  try {
    return compile<T>(schema);
  } catch (err) {
    const closed = closeObjects(schema) as JsonSchema;
    delete closed.$id;
    throw schemaCompileError({
      schema,
      source,
      reason: err,
      known: knownKeywords(),
      suggest: (word) => closest(word, [...knownKeywords()]),
      metaIssues: () => (ajvInstance().validateSchema(closed) ? [] : firstPerPath(toIssues(ajvInstance().errors ?? []))),
    });
  }
}

function compile<T>(schema: object): Validator<T> {
  const cached = compiled.get(schema);
  if (cached) return cached as Validator<T>;
  // Schemas that arrive from plugins are fresh objects each time: reuse by content too.
  const text = JSON.stringify(schema);
  const same = compiledByText.get(text);
  if (same) {
    compiled.set(schema, same);
    return same as Validator<T>;
  }
  const closed = closeObjects(schema) as JsonSchema;
  delete closed.$id; // ajv refuses a second schema with the same $id
  const fn: ValidateFunction = ajvInstance().compile(closed);
  const inPlace = (data: unknown): ValidationResult<T> =>
    fn(data) ? { ok: true, value: data as T } : { ok: false, issues: toIssues(fn.errors ?? []) };
  const validator = ((data: unknown) => inPlace(data === undefined ? undefined : structuredClone(data))) as Validator<T>;
  Object.defineProperty(validator, 'schema', { value: closed });
  Object.defineProperty(validator, 'inPlace', { value: inPlace });
  compiled.set(schema, validator as Validator<unknown>);
  compiledByText.set(text, validator as Validator<unknown>);
  return validator;
}

/** Validates and returns the value with defaults applied, or throws InvalidConfigError naming each path. */
export function parseWith<T>(validator: Validator<T>, data: unknown, what: string, basePath = ''): T {
  const result = validator(data);
  if (result.ok) return result.value;
  const issues = result.issues.map((i) => ({ path: basePath + i.path, message: i.message }));
  throw new InvalidConfigError(`${what} is invalid: ${formatIssues(issues).join('; ')}`, {
    details: { errors: issues },
  });
}

/** A string that must be one of `values`; reads better in errors than a union of literals. */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: { default?: T[number]; description?: string } = {},
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/** `/a/b: message` lines, one per issue, `(root)` for the document itself. */
export function formatIssues(issues: SchemaIssue[]): string[] {
  return issues.map((i) => `${i.path === '' ? '(root)' : i.path}: ${i.message}`);
}

let known: Set<string> | undefined;
/** The keywords this validator knows: draft-07's, ajv's (nullable, ...) and ajv-formats'. */
function knownKeywords(): Set<string> {
  known ??= new Set(Object.keys(ajvInstance().RULES.keywords));
  return known;
}

/** One issue per path: the meta-schema reports a wrong `type` three ways. */
function firstPerPath(issues: SchemaIssue[]): SchemaIssue[] {
  const first = new Map<string, SchemaIssue>();
  for (const issue of issues) if (!first.has(issue.path)) first.set(issue.path, issue);
  return [...first.values()];
}

function closeObjects(schema: unknown, insideAllOf = false): unknown {
  if (Array.isArray(schema)) return schema.map((s) => closeObjects(s, insideAllOf));
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'allOf') out[key] = closeObjects(value, true);
    else if (key === 'properties' || key === 'definitions' || key === 'patternProperties') {
      out[key] = Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, closeObjects(v)]));
    } else if (key === 'enum' || key === 'const' || key === 'default' || key === 'examples') out[key] = value;
    else out[key] = closeObjects(value);
  }
  const s = schema as Record<string, unknown>;
  if (!insideAllOf && s.properties && !('additionalProperties' in s) && !('patternProperties' in s)) {
    out.additionalProperties = false;
  }
  return out;
}

function toIssues(errors: ErrorObject[]): SchemaIssue[] {
  const seen = new Set<string>();
  const issues: SchemaIssue[] = [];
  for (const e of errors) {
    const issue = toIssue(e);
    const key = `${issue.path}\0${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

function toIssue(e: ErrorObject): SchemaIssue {
  const custom = (e.parentSchema as JsonSchema | undefined)?.errorMessage as Record<string, unknown> | undefined;
  if (typeof custom?.[e.keyword] === 'string') return { path: e.instancePath, message: custom[e.keyword] as string };
  if (e.keyword === 'additionalProperties') {
    const key = String((e.params as { additionalProperty: string }).additionalProperty);
    const known = Object.keys(((e.parentSchema as JsonSchema | undefined)?.properties as object | undefined) ?? {});
    const guess = closest(key, known);
    const hint = guess ? ` (did you mean "${guess}"?)` : known.length ? ` (allowed: ${known.join(', ')})` : '';
    return { path: `${e.instancePath}/${escapePointer(key)}`, message: `unknown key${hint}` };
  }
  if (e.keyword === 'required') {
    const key = String((e.params as { missingProperty: string }).missingProperty);
    return { path: `${e.instancePath}/${escapePointer(key)}`, message: 'is required' };
  }
  if (e.keyword === 'enum') {
    const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v));
    return { path: e.instancePath, message: `must be one of ${allowed.join(', ')}` };
  }
  return { path: e.instancePath, message: e.message ?? e.keyword };
}

function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The known key within edit distance 2 (or a third of its length) of what was written. */
export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
