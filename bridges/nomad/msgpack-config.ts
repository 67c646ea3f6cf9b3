/**
 * A config as Nomad sends it (SetConfig's msgpack_config, TaskConfig's msgpack_driver_config),
 * turned into the config a taskhost plugin expects: msgpack decoded as Nomad's cty encoder
 * writes it, HCL's snake_case names mapped back to the schema's, and the result validated
 * against the plugin's own schema. Errors name the path in the HCL names the user wrote.
 */
import { decode } from '@msgpack/msgpack';
import { InvalidConfigError, type SchemaIssue } from '../../shared/errors.js';
import { compileSchema, formatIssues, type JsonSchema } from '../../shared/schema.js';
import { additional, hclNames, itemsOf, kindOf, properties } from './hclspec.js';

/** A decimal number as cty writes one that neither int64 nor float64 holds exactly ("0.1", "1e400"). */
const decimal = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Decodes msgpack bytes: empty bytes are an empty config; int64 values beyond 2^53 arrive as
 * BigInt here and are turned into numbers by fromHcl, which knows where numbers belong.
 */
export function decodeMsgpack(bytes: Uint8Array): unknown {
  if (bytes.length === 0) return {};
  return decode(bytes, { useBigInt64: true });
}

/**
 * Maps a decoded HCL value onto `schema`: nil means absent (Nomad sends every attribute of the
 * spec, nil when the user left it out), snake_case keys become the schema's property names,
 * numbers that came as BigInt or decimal strings become numbers where the schema wants one.
 * What does not fit is left as it is, for validation to name.
 */
export function fromHcl(value: unknown, schema: JsonSchema | undefined, path: string, issues: SchemaIssue[]): unknown {
  if (value === null || value === undefined) return undefined;
  const kind = schema ? kindOf(schema) : undefined;
  if (kind === undefined) {
    // `any` in the spec: cty writes the value's type first, as [type JSON, value].
    if (Array.isArray(value) && value.length === 2 && value[0] instanceof Uint8Array) return plain(value[1], path, issues);
    return plain(value, path, issues);
  }
  if (kind === 'number' || kind === 'integer') return toNumber(value, kind, path, issues);
  if (kind === 'array' && Array.isArray(value)) {
    const items = itemsOf(schema!);
    return value.map((v, i) => fromHcl(v, items, `${path}/${i}`, issues) ?? null);
  }
  if (kind === 'object' && isMap(value)) {
    const out: Record<string, unknown> = {};
    const props = properties(schema!);
    if (props) {
      const byHcl = new Map([...hclNames(schema!)].map(([prop, hcl]) => [hcl, prop]));
      for (const [key, v] of Object.entries(value)) {
        const prop = byHcl.get(key) ?? key;
        const converted = fromHcl(v, props[prop], `${path}/${pointer(key)}`, issues);
        if (converted !== undefined) out[prop] = converted;
      }
      return out;
    }
    const values = additional(schema!);
    for (const [key, v] of Object.entries(value)) {
      const converted = fromHcl(v, values, `${path}/${pointer(key)}`, issues);
      if (converted !== undefined) out[key] = converted;
    }
    return out;
  }
  return plain(value, path, issues);
}

/** A value with no schema to go by: nils dropped from maps, big integers as numbers. */
function plain(value: unknown, path: string, issues: SchemaIssue[]): unknown {
  if (typeof value === 'bigint') return toNumber(value, 'number', path, issues);
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (Array.isArray(value)) return value.map((v, i) => plain(v, `${path}/${i}`, issues) ?? null);
  if (isMap(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = plain(v, `${path}/${pointer(k)}`, issues);
    return out;
  }
  return value;
}

function toNumber(value: unknown, kind: 'number' | 'integer', path: string, issues: SchemaIssue[]): unknown {
  let n: number;
  if (typeof value === 'bigint') n = Number(value);
  else if (typeof value === 'string' && decimal.test(value.trim())) n = Number(value.trim());
  else return value;
  if (kind === 'integer' && Number.isInteger(n) && !Number.isSafeInteger(n)) {
    issues.push({ path, message: `${String(value)} is too large: an integer here must be within ±${Number.MAX_SAFE_INTEGER}` });
    return value;
  }
  if (!Number.isFinite(n)) {
    issues.push({ path, message: `${String(value)} is out of range for a number` });
    return value;
  }
  return n;
}

/**
 * The HCL path of a path in the schema's names: `/fingerprintInterval` -> `/fingerprint_interval`.
 * Record keys and list indexes stay as they are.
 */
export function hclPath(schema: JsonSchema | null, path: string): string {
  if (path === '' || schema === null) return path;
  let node: JsonSchema | undefined = schema;
  const out: string[] = [];
  for (const raw of path.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const props: Record<string, JsonSchema> | undefined = node ? properties(node) : undefined;
    if (node && props) {
      out.push(pointer(hclNames(node).get(seg) ?? seg));
      node = props[seg];
    } else if (node && kindOf(node) === 'array') {
      out.push(raw);
      node = itemsOf(node);
    } else {
      out.push(raw);
      node = node ? additional(node) : undefined;
    }
  }
  return '/' + out.join('/');
}

/**
 * Nomad's msgpack config as the plugin's validated config (defaults applied). Throws
 * InvalidConfigError whose errors name HCL paths (`/fingerprint_interval`); `what` says whose
 * config it is, for the message.
 */
export function configFromMsgpack(bytes: Uint8Array, schema: JsonSchema | null, what: string): unknown {
  let decoded: unknown;
  try {
    decoded = decodeMsgpack(bytes);
  } catch (err) {
    throw invalid(what, [{ path: '', message: `is not valid msgpack (${(err as Error).message})` }]);
  }
  const issues: SchemaIssue[] = [];
  if (schema === null) {
    if (decoded === null || (isMap(decoded) && Object.values(decoded).every((v) => v === null || v === undefined))) return undefined;
    throw invalid(what, [{ path: '', message: 'takes no config: remove the config block' }]);
  }
  const value = fromHcl(decoded, schema, '', issues) ?? {};
  if (issues.length > 0) throw invalid(what, issues);
  const result = compileSchema(schema, what)(value);
  if (result.ok) return result.value;
  throw invalid(
    what,
    result.issues.map((i) => ({ path: hclPath(schema, i.path), message: i.message })),
  );
}

function invalid(what: string, issues: SchemaIssue[]): InvalidConfigError {
  return new InvalidConfigError(`${what} is invalid: ${formatIssues(issues).join('; ')}`, { details: { errors: issues } });
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function pointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}
