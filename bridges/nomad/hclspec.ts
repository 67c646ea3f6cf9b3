/**
 * The hclspec Nomad needs to decode a plugin's HCL config block, generated from the plugin's own
 * JSON Schema (TypeBox), in the message shape of hclspec.proto. HCL names are snake_case
 * (`fingerprint_interval` for `fingerprintInterval`); msgpack-config.ts maps them back.
 */
import type { JsonSchema } from '../../shared/schema.js';

/** hclspec.Spec as proto-loader takes it: exactly one of these is set. */
export interface HclSpec {
  object?: { attributes: Record<string, HclSpec> };
  Attr?: { name: string; type: string; required: boolean };
  block_value?: { name: string; required: boolean; nested: HclSpec };
  block_list?: { name: string; min_items: number; max_items: number; nested: HclSpec };
  default?: { primary: HclSpec; default: HclSpec };
  literal?: { value: string };
}

/** `fingerprintInterval` -> `fingerprint_interval`, `memoryMB` -> `memory_mb`, `HTTPPort` -> `http_port`. */
export function snakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .replace(/-/g, '_')
    .toLowerCase();
}

/**
 * HCL names of an object schema's properties, keyed by property: snake_case, unless two
 * properties would share one, which then keep their names as written.
 */
export function hclNames(schema: JsonSchema): Map<string, string> {
  const props = Object.keys(properties(schema) ?? {});
  const counts = new Map<string, number>();
  for (const p of props) counts.set(snakeCase(p), (counts.get(snakeCase(p)) ?? 0) + 1);
  return new Map(props.map((p) => [p, counts.get(snakeCase(p))! > 1 ? p : snakeCase(p)]));
}

/** The hclspec of a plugin's config schema; a plugin without config gets an empty object. */
export function hclSpec(schema: JsonSchema | null): HclSpec {
  if (schema === null) return { object: { attributes: {} } };
  return objectSpec(schema);
}

function objectSpec(schema: JsonSchema): HclSpec {
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  const attributes: Record<string, HclSpec> = {};
  const names = hclNames(schema);
  for (const [prop, sub] of Object.entries(properties(schema) ?? {})) {
    const name = names.get(prop)!;
    attributes[name] = propertySpec(name, sub, required.has(prop));
  }
  return { object: { attributes } };
}

function propertySpec(name: string, schema: JsonSchema, inRequired: boolean): HclSpec {
  const hasDefault = schema.default !== undefined;
  // A required key with a default is filled in by validation: HCL may leave it out.
  const required = inRequired && !hasDefault;
  const kind = kindOf(schema);
  if (kind === 'object' && properties(schema)) {
    return { block_value: { name, required, nested: objectSpec(schema) } };
  }
  if (kind === 'array') {
    const items = itemsOf(schema);
    if (items && kindOf(items) === 'object' && properties(items)) {
      const min = typeof schema.minItems === 'number' ? schema.minItems : 0;
      const max = typeof schema.maxItems === 'number' ? schema.maxItems : 0;
      return { block_list: { name, min_items: required ? Math.max(min, 1) : min, max_items: max, nested: objectSpec(items) } };
    }
  }
  const attr: HclSpec = { Attr: { name, type: hclType(schema), required } };
  if (!hasDefault) return attr;
  return { default: { primary: attr, default: { literal: { value: hclLiteral(schema.default) } } } };
}

/** The HCL type expression of a JSON Schema: string, number, bool, list(T), map(T), object({...}), any. */
export function hclType(schema: JsonSchema): string {
  switch (kindOf(schema)) {
    case 'string':
      return 'string';
    case 'number':
    case 'integer':
      return 'number';
    case 'boolean':
      return 'bool';
    case 'array': {
      const items = itemsOf(schema);
      return `list(${items ? hclType(items) : 'any'})`;
    }
    case 'object': {
      const props = properties(schema);
      if (props) {
        const names = hclNames(schema);
        const fields = Object.entries(props).map(([p, sub]) => `${names.get(p)}=${hclType(sub)}`);
        return `object({${fields.join(', ')}})`;
      }
      const values = additional(schema);
      return `map(${values ? hclType(values) : 'any'})`;
    }
    default:
      return 'any';
  }
}

/**
 * A value as an HCL literal expression: strings quoted, with HCL's template openers (`${`, `%{`)
 * doubled so a default like "${HOME}" stays text.
 */
export function hclLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return JSON.stringify(value).replace(/([$%])\{/g, (_, opener: string) => `${opener}${opener}{`);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(hclLiteral).join(', ')}]`;
  if (typeof value === 'object') {
    const fields = Object.entries(value as Record<string, unknown>).map(([k, v]) => `${JSON.stringify(k)} = ${hclLiteral(v)}`);
    return `{${fields.join(', ')}}`;
  }
  return JSON.stringify(String(value));
}

/** The one JSON type a schema stands for (`null` aside, as in `["string", "null"]`), or undefined. */
export function kindOf(schema: JsonSchema): string | undefined {
  const type = schema.type;
  if (typeof type === 'string') return type;
  if (Array.isArray(type)) {
    const real = type.filter((t) => t !== 'null');
    return real.length === 1 ? (real[0] as string) : undefined;
  }
  if (Array.isArray(schema.enum) && schema.enum.length > 0 && schema.enum.every((v) => typeof v === 'string')) return 'string';
  if (typeof schema.const === 'string') return 'string';
  for (const key of ['anyOf', 'oneOf'] as const) {
    const branches = schema[key];
    if (!Array.isArray(branches)) continue;
    const kinds = new Set((branches as JsonSchema[]).map(kindOf).filter((k) => k !== 'null'));
    if (kinds.size === 1) return [...kinds][0];
  }
  if (schema.properties) return 'object';
  return undefined;
}

export function properties(schema: JsonSchema): Record<string, JsonSchema> | undefined {
  const props = schema.properties;
  return props && typeof props === 'object' && Object.keys(props).length > 0 ? (props as Record<string, JsonSchema>) : undefined;
}

export function itemsOf(schema: JsonSchema): JsonSchema | undefined {
  return schema.items && typeof schema.items === 'object' && !Array.isArray(schema.items) ? (schema.items as JsonSchema) : undefined;
}

/** The schema of a record's values (`additionalProperties`, or a single `patternProperties`). */
export function additional(schema: JsonSchema): JsonSchema | undefined {
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object') return schema.additionalProperties as JsonSchema;
  const patterns = schema.patternProperties;
  if (patterns && typeof patterns === 'object') {
    const values = Object.values(patterns as Record<string, JsonSchema>);
    if (values.length === 1) return values[0];
  }
  return undefined;
}
