/**
 * Checks of everything a device plugin sends the host, each issue with its JSON path and in
 * words a plugin author can act on. Beyond the schema (which Nomad stops at), a fingerprint may
 * not list a group twice, reuse a device id, or report a group that another plugin owns: with
 * duplicates, "which device is this?" has no single answer (reference/nomad.md section 7.3).
 */
import {
  ContainerReservation,
  DeviceFingerprint,
  DeviceStats,
  groupId,
  units,
  type FilledContainerReservation,
  type FilledDeviceFingerprint,
  type FilledDeviceStats,
} from '../shared/device.js';
import type { SchemaIssue } from '../shared/errors.js';
import { closest, compileSchema, type ValidationResult } from '../shared/schema.js';

const fingerprintSchema = compileSchema<FilledDeviceFingerprint>(DeviceFingerprint);
const reservationSchema = compileSchema<FilledContainerReservation>(ContainerReservation);
const statsSchema = compileSchema<FilledDeviceStats>(DeviceStats);

/**
 * How a message is checked. `owned`: the caller holds the only reference (it just arrived from a
 * plugin's thread or process), so defaults go into it rather than into a copy.
 */
export interface CheckOptions {
  owned?: boolean;
}

/**
 * A fingerprint message of `plugin`. `ownerOf` says which plugin owns a group id now (undefined
 * when none does); a group owned by another plugin makes the whole message invalid.
 */
export function validateFingerprint(
  message: unknown,
  plugin: string,
  ownerOf: (group: string) => string | undefined,
  options: CheckOptions = {},
): ValidationResult<FilledDeviceFingerprint> {
  const checked = options.owned ? fingerprintSchema.inPlace(message) : fingerprintSchema(message);
  if (!checked.ok) return { ok: false, issues: explain(checked.issues, message) };
  const issues: SchemaIssue[] = [];
  const groupAt = new Map<string, number>();
  const deviceAt = new Map<string, string>();
  checked.value.groups.forEach((group, g) => {
    const id = groupId(group);
    const first = groupAt.get(id);
    if (first !== undefined) issues.push({ path: `/groups/${g}`, message: `group ${id} is listed twice (also /groups/${first})` });
    else groupAt.set(id, g);
    const owner = ownerOf(id);
    if (owner !== undefined && owner !== plugin) {
      issues.push({ path: `/groups/${g}`, message: `group ${id} belongs to device plugin "${owner}", which reported it first` });
    }
    group.devices.forEach((device, d) => {
      const at = `/groups/${g}/devices/${d}/id`;
      const seen = deviceAt.get(device.id);
      if (seen !== undefined) issues.push({ path: at, message: `device id "${device.id}" is used twice (also ${seen})` });
      else deviceAt.set(device.id, at);
    });
  });
  return issues.length ? { ok: false, issues } : checked;
}

/** What a plugin's reserve() returned, with defaults applied. */
export function validateReservation(value: unknown): ValidationResult<FilledContainerReservation> {
  const checked = reservationSchema(value);
  return checked.ok ? checked : { ok: false, issues: explain(checked.issues, value) };
}

/** One message of a plugin's stats stream. */
export function validateStats(value: unknown, options: CheckOptions = {}): ValidationResult<FilledDeviceStats> {
  const checked = options.owned ? statsSchema.inPlace(value) : statsSchema(value);
  return checked.ok ? checked : { ok: false, issues: explain(checked.issues, value) };
}

const attributePath = /^(\/groups\/\d+\/attributes\/[^/]+)(?:\/|$)/;
const namePath = /^\/groups\/\d+\/(vendor|type|name)$/;
const absolutePath = /\/(taskPath|hostPath)$/;
const permissionsPath = /\/permissions$/;

/** Rewrites ajv's messages where they would puzzle a plugin author, quoting the bad value. */
function explain(issues: SchemaIssue[], root: unknown): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  const seen = new Set<string>();
  const add = (issue: SchemaIssue) => {
    const key = `${issue.path}\0${issue.message}`;
    if (!seen.has(key)) out.push(issue);
    seen.add(key);
  };
  for (const issue of issues) {
    const attribute = attributePath.exec(issue.path);
    const value = at(root, issue.path);
    if (attribute) {
      // A union's errors list every branch's complaint; one sentence about the attribute is clearer.
      add({ path: attribute[1]!, message: attributeProblem(at(root, attribute[1]!)) });
    } else if (namePath.test(issue.path)) {
      const rule = `must be letters, digits, "_", "." or "-", starting with a letter or digit (got ${JSON.stringify(value)})`;
      add({ path: issue.path, message: value === '' ? 'must not be empty' : rule });
    } else if (absolutePath.test(issue.path) && typeof value === 'string') {
      add({ path: issue.path, message: `must be an absolute path (got ${JSON.stringify(value)})` });
    } else if (permissionsPath.test(issue.path) && typeof value === 'string') {
      add({ path: issue.path, message: `must be one or more of "r", "w" and "m", each at most once (got ${JSON.stringify(value)})` });
    } else add(issue);
  }
  return out;
}

function attributeProblem(attribute: unknown): string {
  if (typeof attribute !== 'object' || attribute === null || Array.isArray(attribute)) {
    return 'must be an object such as {"value": "text"}, {"value": true} or {"value": 80, "unit": "GiB"}';
  }
  const { value, unit, ...rest } = attribute as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length) return `unknown key "${extra[0]}": an attribute has "value" and, for a number, "unit"`;
  if (!['string', 'boolean', 'number'].includes(typeof value)) return '"value" must be a string, a boolean or a number';
  // Only the unit is left to be wrong.
  if (typeof value !== 'number') return `a unit needs a number value, got ${JSON.stringify(value)}`;
  const guess = typeof unit === 'string' ? closest(unit, [...units]) : undefined;
  return `unknown unit ${JSON.stringify(unit)}${guess ? ` (did you mean "${guess}"?)` : ''}; units: ${units.join(', ')}`;
}

/** The value at a JSON Pointer, or undefined. */
function at(root: unknown, pointer: string): unknown {
  let value = root;
  for (const raw of pointer.split('/').slice(1)) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[raw.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return value;
}
