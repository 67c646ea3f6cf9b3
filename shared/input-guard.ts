/**
 * Bounds on the documents taskhost reads (task specs, agent configs), checked before any schema
 * sees them: validators, clones and interpolation all recurse, so a document nested a few
 * thousand levels deep would overflow the stack, and one of gigabytes would exhaust memory.
 * Every refusal is an InvalidConfigError naming the JSON path at fault.
 */
import { open } from 'node:fs/promises';
import { InvalidConfigError, type SchemaIssue } from './errors.js';

/** How deep objects and arrays may nest, and how large a file may be. */
export const inputLimits = Object.freeze({ maxDepth: 64, maxFileBytes: 1024 * 1024 });

/**
 * Checks that `data` is JSON-shaped (plain objects, arrays, strings, finite numbers, booleans,
 * null; `undefined` only as an object value), nested at most `maxDepth` levels, with no NUL
 * character in any key or string (no file name, argument or environment variable can hold one).
 * Throws InvalidConfigError naming each path at fault.
 */
export function guardInput(data: unknown, source: string, maxDepth = inputLimits.maxDepth): void {
  const issues: SchemaIssue[] = [];
  walk(data, [], 0, maxDepth, issues);
  if (issues.length) throw invalidInput(source, issues);
}

/**
 * Reads a JSON file of at most `maxFileBytes` (a pipe or device too: it is read in chunks, never
 * trusted for its size) and checks what it holds with guardInput. `source` names it in errors.
 */
export async function readJsonFile(file: string, source = file, maxFileBytes = inputLimits.maxFileBytes): Promise<unknown> {
  const text = await readBounded(file, source, maxFileBytes);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw invalidInput(source, [{ path: '', message: `not valid JSON: ${(err as Error).message}` }], `${source} is not valid JSON`);
  }
  guardInput(data, source);
  return data;
}

async function readBounded(file: string, source: string, max: number): Promise<string> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw invalidInput(source, [{ path: '', message: `cannot read ${file}: ${(err as Error).message}` }], `cannot read ${file}`);
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, max + 1 - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > max) {
        const message = `is larger than ${formatBytes(max)}, the most taskhost reads of a file like this one`;
        throw invalidInput(source, [{ path: '', message }]);
      }
    }
    return Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    if (err instanceof InvalidConfigError) throw err;
    throw invalidInput(source, [{ path: '', message: `cannot read ${file}: ${(err as Error).message}` }], `cannot read ${file}`);
  } finally {
    await handle.close();
  }
}

function walk(value: unknown, at: string[], depth: number, maxDepth: number, issues: SchemaIssue[]): void {
  if (issues.length >= 20) return; // enough to act on; a hostile document could yield millions
  if (typeof value === 'string') {
    if (value.includes('\0')) issues.push({ path: pointer(at), message: nulMessage('the value') });
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) issues.push({ path: pointer(at), message: `must be a finite number, not ${value}` });
    return;
  }
  if (value === null || typeof value === 'boolean') return;
  if (typeof value !== 'object') {
    issues.push({
      path: pointer(at),
      message: `must be JSON data (an object, array, string, number, boolean or null), not a ${typeof value}`,
    });
    return;
  }
  if (depth >= maxDepth) {
    issues.push({
      path: shortPointer(at),
      message: `is nested ${at.length + 1} levels deep; at most ${maxDepth} levels of objects and arrays are allowed`,
    });
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => walk(item, [...at, String(i)], depth + 1, maxDepth, issues));
    return;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    const kind = (value as { constructor?: { name?: string } }).constructor?.name ?? 'object';
    issues.push({ path: pointer(at), message: `must be a plain JSON object, not a ${kind}` });
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    if (key.includes('\0')) issues.push({ path: pointer([...at, key]), message: nulMessage('the key') });
    else if (item !== undefined) walk(item, [...at, key], depth + 1, maxDepth, issues);
  }
}

function nulMessage(what: string): string {
  return `${what} contains a NUL character (\\u0000), which no file name, argument or environment variable can hold`;
}

function pointer(segments: string[]): string {
  return segments.map((s) => `/${s.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/** A deep path with its middle left out: the start says where the nesting begins. */
function shortPointer(segments: string[]): string {
  if (segments.length <= 10) return pointer(segments);
  return `${pointer(segments.slice(0, 6))}/…${pointer(segments.slice(-2))}`;
}

function formatBytes(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`;
}

function invalidInput(source: string, issues: SchemaIssue[], summary?: string): InvalidConfigError {
  const text = issues.map((i) => `${i.path === '' ? '(root)' : i.path}: ${i.message}`).join('; ');
  return new InvalidConfigError(summary ?? `${source} is invalid: ${text}`, { details: { errors: issues } });
}
