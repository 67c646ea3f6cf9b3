/**
 * Stand-ins for what branch nomad-core builds (hclspec.ts, msgpack-config.ts), just enough for
 * the Driver service's tests until it lands; this file goes when the two are merged.
 */
import { decode } from '@msgpack/msgpack';
import { parseDriverConfig } from '../../drivers/prepare-task.js';
import type { JsonSchema } from '../../shared/schema.js';

type Spec = Record<string, unknown>;

const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function hclType(schema: JsonSchema): string {
  const s = schema as { type?: string; items?: JsonSchema; additionalProperties?: JsonSchema | boolean };
  if (s.type === 'string') return 'string';
  if (s.type === 'number' || s.type === 'integer') return 'number';
  if (s.type === 'boolean') return 'bool';
  if (s.type === 'array') return `list(${s.items ? hclType(s.items) : 'any'})`;
  if (s.type === 'object' && typeof s.additionalProperties === 'object') return `map(${hclType(s.additionalProperties)})`;
  return 'any';
}

/** An hclspec object spec for a JSON Schema's top-level properties. */
export function hclSpecOf(schema: JsonSchema): Spec {
  const s = schema as { properties?: Record<string, JsonSchema>; required?: string[] };
  const attributes: Record<string, Spec> = {};
  for (const [name, property] of Object.entries(s.properties ?? {})) {
    attributes[snake(name)] = { Attr: { name: snake(name), type: hclType(property), required: s.required?.includes(name) ?? false } };
  }
  return { object: { attributes } };
}

function toCamel(value: unknown, schema: JsonSchema | undefined): unknown {
  const s = (schema ?? {}) as { properties?: Record<string, JsonSchema>; items?: JsonSchema };
  if (Array.isArray(value)) return value.map((v) => toCamel(v, s.items));
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === null || v === undefined) continue; // Nomad sends every attribute; nil is "not set"
    const name = s.properties ? (Object.keys(s.properties).find((p) => snake(p) === key) ?? key) : key;
    out[name] = toCamel(v, s.properties?.[name]);
  }
  return out;
}

/** Decodes `msgpack_driver_config` and validates it with the driver's schema (paths under /config). */
export function decodeDriverConfig(driver: string, schema: JsonSchema, bytes: Uint8Array): Record<string, unknown> {
  const value = bytes.length === 0 ? {} : decode(bytes);
  return parseDriverConfig(driver, schema, toCamel(value ?? {}, schema));
}
