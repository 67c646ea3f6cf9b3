/**
 * The names the agent's API takes: namespaces (containerd's rule), task ids (the drivers' rule,
 * shared/driver.ts) and labels (string to string, key + value at most 4096 bytes). Each check
 * returns the issues it found, each with its JSON path, so a caller can report all of them at once.
 */
import { Type } from '@sinclair/typebox';
import { maxNameLength, namePattern } from '../shared/driver.js';
import { InvalidConfigError, type SchemaIssue } from '../shared/errors.js';

/** containerd's rule for namespaces: letters and digits, single `.`, `_` or `-` between them. */
export const namespacePattern = '^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$';
/** containerd's limit on namespace names. */
export const maxNamespaceLength = 76;
/** The namespace of a request without a `Taskhost-Namespace` header. */
export const defaultNamespace = 'default';
/** The request header that names the namespace. */
export const namespaceHeader = 'taskhost-namespace';
/** The most a label's key and value may hold together, in UTF-8 bytes. */
export const maxLabelBytes = 4096;
/** The longest task id: `<allocId>/<name>/<8 hex>`, each name at most maxNameLength. */
export const maxTaskIdLength = 2 * maxNameLength + 10;

const namespaceRegExp = new RegExp(namespacePattern);
const name = namePattern.slice(1, -1);
/**
 * Task ids as prepareTask makes them (shared/driver.ts' taskIdPattern), with its allocId and name
 * held to namePattern as prepareTask holds them: so `..` is never an id.
 */
export const taskIdPattern = `^${name}/${name}/[0-9a-f]{8}$`;
const taskIdRegExp = new RegExp(taskIdPattern);
const namespaceRule = 'must be letters and digits, with single ".", "_" or "-" between them (such as "default" or "team-a.prod")';

/** A schema for a namespace name. */
export const Namespace = (options: { description?: string } = {}) =>
  Type.String({
    minLength: 1,
    maxLength: maxNamespaceLength,
    pattern: namespacePattern,
    errorMessage: { pattern: namespaceRule, maxLength: `must be at most ${maxNamespaceLength} characters` },
    ...options,
  });

/** A schema for a task id as drivers make them (`<allocId>/<name>/<8 hex>`). */
export const TaskId = (options: { description?: string } = {}) =>
  Type.String({
    minLength: 1,
    maxLength: maxTaskIdLength,
    pattern: taskIdPattern,
    errorMessage: {
      pattern: 'must be a task id: <allocId>/<name>/<8 hex digits>',
      maxLength: `must be at most ${maxTaskIdLength} characters`,
    },
    ...options,
  });

/** A schema for labels: string keys to string values (the byte limit is checkLabels'). */
export const Labels = (options: { description?: string } = {}) => Type.Record(Type.String(), Type.String(), options);

/** The issues with a namespace name (none when it is valid). */
export function checkNamespace(value: unknown, path = ''): SchemaIssue[] {
  if (typeof value !== 'string') return [{ path, message: 'must be a string' }];
  if (value.length === 0) return [{ path, message: `must not be empty (the default is "${defaultNamespace}")` }];
  if (value.length > maxNamespaceLength)
    return [{ path, message: `must be at most ${maxNamespaceLength} characters, not ${value.length}` }];
  return namespaceRegExp.test(value) ? [] : [{ path, message: `${JSON.stringify(value)} ${namespaceRule}` }];
}

/** The issues with a task id (none when it is valid). */
export function checkTaskId(value: unknown, path = ''): SchemaIssue[] {
  if (typeof value !== 'string') return [{ path, message: 'must be a string' }];
  if (value.length > maxTaskIdLength) return [{ path, message: `must be at most ${maxTaskIdLength} characters, not ${value.length}` }];
  return taskIdRegExp.test(value) ? [] : [{ path, message: `${JSON.stringify(value)} is not a task id: <allocId>/<name>/<8 hex digits>` }];
}

/** The issues with one label: a non-empty key without NUL, key + value at most maxLabelBytes. */
export function checkLabel(key: string, value: string, path: string): SchemaIssue[] {
  if (key.length === 0) return [{ path, message: 'a label key must not be empty' }];
  if (key.includes('\0') || value.includes('\0')) return [{ path, message: 'a label must not contain a NUL character (\\u0000)' }];
  const bytes = Buffer.byteLength(key, 'utf8') + Buffer.byteLength(value, 'utf8');
  if (bytes > maxLabelBytes) {
    return [{ path, message: `label key and value hold ${bytes} bytes; at most ${maxLabelBytes} (UTF-8) are allowed together` }];
  }
  return [];
}

/** The issues with a set of labels, each at `<basePath>/<key>` (a JSON Pointer). */
export function checkLabels(labels: Readonly<Record<string, string>>, basePath = '/labels'): SchemaIssue[] {
  return Object.entries(labels).flatMap(([key, value]) => checkLabel(key, value, `${basePath}/${escapePointer(key)}`));
}

/**
 * The namespace a request names in its `Taskhost-Namespace` header, `default` without one.
 * Throws InvalidConfigError at `/headers/taskhost-namespace` for an invalid one.
 */
export function namespaceFromHeader(value: string | string[] | undefined): string {
  if (value === undefined) return defaultNamespace;
  const path = `/headers/${namespaceHeader}`;
  const issues = Array.isArray(value) ? [{ path, message: 'must be given once' }] : checkNamespace(value, path);
  if (issues.length)
    throw new InvalidConfigError(`the Taskhost-Namespace header is invalid: ${issues[0]!.message}`, { details: { errors: issues } });
  return value as string;
}

/** A key as one JSON Pointer segment. */
export function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}
