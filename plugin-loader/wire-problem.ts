/**
 * Whether a plugin's reply can cross to the host. The wire carries JSON-like data: plain
 * objects, arrays, strings, numbers, booleans, null (and undefined, which JSON drops). Anything
 * else is refused here, in the worker, before piscina tries to post it:
 *
 * - functions, symbols and objects holding native handles (a ChildProcess, a socket) cannot be
 *   cloned at all: posting one kills the worker and every call on it;
 * - BigInts and cycles clone, but break every JSON step after the boundary (the handle store,
 *   the agent API, `--json` output, JSON streams);
 * - class instances lose their prototype (and so their methods and getters) on the way; among
 *   them Date, Map and Set clone faithfully, yet are refused too: no contract type holds one,
 *   and JSON, which everything after the boundary speaks, turns a Map or a Set into {} and a Date
 *   into a string, so they would break later, far from the plugin that sent them.
 *
 * The walk is on the call path of every reply: no allocation unless something is wrong.
 */
import { PluginContractError } from '../shared/errors.js';

/** Where a reply holds something that cannot cross, and what it is (with what to send instead). */
export interface WireProblem {
  /** JSON Pointer into the reply; "" for the reply itself. */
  path: string;
  what: string;
}

/** Deeper than any reply the contracts describe; a bound so the walk cannot overflow the stack. */
export const maxWireDepth = 200;

interface Found {
  /** Keys from the bad value up to the root (reversed once, when reported). */
  keys: (string | number)[];
  what: string;
}

/**
 * The error for a reply that cannot cross (`did`: "returned a value", "yielded an item"), or
 * undefined when it can.
 */
export function wireError(method: string, did: string, value: unknown): PluginContractError | undefined {
  const problem = wireProblem(value);
  if (!problem) return undefined;
  return new PluginContractError(
    `${method}() ${did} that cannot cross to the host: ${problem.path || 'the value'} is ${problem.what}. Replies are JSON-like data: plain objects, arrays, strings, numbers, booleans and null`,
    { details: { method, path: problem.path } },
  );
}

/** The first thing in `value` that cannot cross to the host, or undefined when all of it can. */
export function wireProblem(value: unknown): WireProblem | undefined {
  const found = visit(value, [], 0);
  if (!found) return undefined;
  const path = found.keys
    .reverse()
    .map((k) => `/${String(k).replace(/~/g, '~0').replace(/\//g, '~1')}`)
    .join('');
  return { path, what: found.what };
}

function visit(value: unknown, ancestors: object[], depth: number): Found | undefined {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'undefined':
      return undefined;
    case 'object':
      return value === null ? undefined : visitObject(value, ancestors, depth);
    case 'function':
      return found(`a function${value.name ? ` (${value.name})` : ''}: send data, not code`);
    case 'bigint':
      return found(`a BigInt (${value}n): send a number, or a string beyond 2^53`);
    default:
      return found(`a symbol (${String(value)}): send a string`);
  }
}

function visitObject(value: object, ancestors: object[], depth: number): Found | undefined {
  if (depth >= maxWireDepth) return found(`nested deeper than ${maxWireDepth} levels`);
  if (ancestors.includes(value)) return found('a cycle (it contains itself): send a tree, refer to shared parts by id');
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Array.prototype) {
    const list = value as unknown[];
    ancestors.push(value);
    for (let i = 0; i < list.length; i++) {
      const f = visit(list[i], ancestors, depth + 1);
      if (f) return (f.keys.push(i), f);
    }
    ancestors.pop();
    return undefined;
  }
  if (proto !== Object.prototype && proto !== null) return found(instance(value));
  ancestors.push(value);
  for (const key in value) {
    const f = visit((value as Record<string, unknown>)[key], ancestors, depth + 1);
    if (f) return (f.keys.push(key), f);
  }
  ancestors.pop();
  return undefined;
}

function found(what: string): Found {
  return { keys: [], what };
}

/** What a class instance is, and what to send instead. */
function instance(value: object): string {
  if (value instanceof Date) return 'a Date: send date.toISOString() (or date.getTime())';
  if (value instanceof Map) return 'a Map: send a plain object (Object.fromEntries(map))';
  if (value instanceof Set) return 'a Set: send an array ([...set])';
  if (value instanceof Promise) return 'a Promise: await it before you return';
  if (value instanceof Error) return `an Error (${value.message}): throw it, or send its message`;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    return `a ${value.constructor.name}: send a string (buffer.toString('base64') or 'utf8')`;
  }
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  if (typeof name !== 'string' || name === '') return 'an object of an unnamed class: send a plain object with the data itself';
  if (name === 'ChildProcess') return 'a ChildProcess: send what the host needs to find it again (its pid)';
  return `${/^[AEIO]/.test(name) ? 'an' : 'a'} ${name} (a class instance): send a plain object with the data itself`;
}
