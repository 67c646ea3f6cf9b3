/**
 * Seeded mutation of JSON documents for the input fuzz test: the same seed gives the same cases
 * on every machine, so a failure is reproduced by its seed and case number alone.
 */

/** mulberry32: a small, fast, well-mixed 32-bit PRNG. */
export function prng(seed: number): Random {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: <T>(items: readonly T[]) => items[int(items.length)]!, chance: (p: number) => next() < p };
}

export interface Random {
  /** In [0, 1). */
  next(): number;
  /** In [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Container = Json[] | { [key: string]: Json };
/** Where a value sits: its container and key, or the root. */
interface Slot {
  parent: Container | undefined;
  key: string | number;
  value: unknown;
}

/** Values that break naive code: limits, NaN-like text, odd unicode, NUL and control characters. */
const strangeStrings = [
  '',
  ' ',
  'NaN',
  'Infinity',
  '-1',
  '1e999',
  '0x10',
  ' 5s ',
  '\u0000',
  'a\u0000b',
  '\u0007\u001b[31m\r\n',
  '\t',
  '\ud800',
  '\u202eevil',
  'e\u0301\u0301\u0301',
  '🦀🚀',
  '${node.attr.kernel.name}',
  '${${}}',
  '$' + '{'.repeat(50),
  '../../etc/passwd',
  '..',
  '.',
  '/',
  '/etc',
  '~',
  'com.taskhost.task_id',
  'SIGKILL',
  'SIGNOPE',
  '600h',
  '9999h',
  '2147483648ms',
  '596h31m23.647s',
  '-5s',
  '0s',
  '1.5.5s',
  'unix:///nonexistent.sock',
  'busybox:1.35',
  'UPPER/case:tag',
  'a b',
];
const strangeNumbers = [
  0,
  -0,
  -1,
  1,
  0.5,
  -0.5,
  3.999,
  1e308,
  -1e308,
  2 ** 31,
  2 ** 31 - 1,
  2 ** 53 + 2,
  Number.MIN_VALUE,
  262_145,
  16_777_217,
  255,
  256,
];
const unknownKeys = ['', 'x', '__proto__', 'constructor', 'toString', 'nmae', 'Name', '\u0000', '../x', 'a'.repeat(300), '🦀', 'name '];

/** Every slot of the document down to `maxDepth`, the root first. */
function slots(doc: unknown, maxDepth = 8): Slot[] {
  const out: Slot[] = [{ parent: undefined, key: '', value: doc }];
  const walk = (value: unknown, depth: number) => {
    if (depth >= maxDepth || typeof value !== 'object' || value === null) return;
    const container = value as Container;
    for (const [k, v] of Object.entries(container)) {
      out.push({ parent: container, key: Array.isArray(container) ? Number(k) : k, value: v });
      walk(v, depth + 1);
    }
  };
  walk(doc, 0);
  return out;
}

/** A value of some other JSON type, or a strange one of the same. */
function replacement(rng: Random, current: unknown): Json {
  switch (rng.int(9)) {
    case 0:
      return rng.pick(strangeStrings);
    case 1:
      return rng.pick(strangeNumbers);
    case 2:
      return rng.chance(0.5);
    case 3:
      return null;
    case 4:
      return typeof current === 'object' && current !== null && !Array.isArray(current) ? [current as Json] : [];
    case 5:
      return Array.isArray(current) ? Object.fromEntries((current as Json[]).map((v, i) => [String(i), v])) : {};
    case 6:
      return rng.pick(['x', '\u0000', 'é', '9', '/']).repeat(rng.pick([129, 300, 4096, 70_000]));
    case 7:
      return nest(rng.pick([63, 64, 65, 200, 3000]), rng.chance(0.5), current as Json);
    default:
      return typeof current === 'string' ? current + rng.pick(strangeStrings) : rng.pick(strangeStrings);
  }
}

/** `levels` arrays (or objects) around `inner`. */
export function nest(levels: number, arrays: boolean, inner: Json = 1): Json {
  let value = inner;
  for (let i = 0; i < levels; i++) value = arrays ? [value] : { a: value };
  return value;
}

/** What JSON cannot hold, for the library's entry points (a caller may pass anything). */
function notJson(rng: Random): unknown {
  const cycle: Record<string, unknown> = { a: 1 };
  cycle.self = cycle;
  return rng.pick<() => unknown>([
    () => undefined,
    () => Number.NaN,
    () => Infinity,
    () => () => 'function',
    () => Symbol('s'),
    () => 10n,
    () => new Date(0),
    () => new Map([['a', 1]]),
    () => cycle,
    () => Object.create(null) as unknown,
    () => new (class Custom {})(),
  ])();
}

/**
 * A mutated deep copy of `base`: 1 to 3 edits at random slots (replace, delete, rename, add an
 * unknown key, nest deeply, or, with `library`, a value that is not JSON). Returns the new root.
 */
export function mutate(base: unknown, rng: Random, options: { library?: boolean } = {}): unknown {
  let doc = structuredClone(base) as Json;
  const edits = 1 + rng.int(3);
  for (let e = 0; e < edits; e++) {
    const all = slots(doc);
    const slot = rng.pick(all);
    const kind = rng.int(options.library ? 7 : 6);
    let value: unknown;
    if (kind === 6) value = notJson(rng);
    else if (kind === 5 && typeof slot.value === 'object' && slot.value !== null && !Array.isArray(slot.value)) {
      (slot.value as Record<string, Json>)[rng.pick(unknownKeys)] = replacement(rng, undefined);
      continue;
    } else value = replacement(rng, slot.value);
    if (slot.parent === undefined) {
      doc = value as Json;
      continue;
    }
    const parent = slot.parent as Record<string | number, unknown>;
    if (kind === 3 && !Array.isArray(parent)) delete parent[slot.key];
    else if (kind === 4 && !Array.isArray(parent)) {
      delete parent[slot.key];
      parent[String(slot.key) + rng.pick(['', 'x', ' ', '\u0000'])] = slot.value;
    } else parent[slot.key] = value;
  }
  return doc;
}

/**
 * The document as file text: usually JSON.stringify, sometimes with a key written twice (JSON.parse
 * keeps the last), cut short, or padded past the reader's size limit.
 */
export function fileText(doc: unknown, rng: Random): string {
  const text = JSON.stringify(doc) ?? 'null';
  switch (rng.int(12)) {
    case 0:
      return text.startsWith('{"') ? `{"name":"dup",${text.slice(1)}` : text;
    case 1:
      return text.slice(0, rng.int(text.length));
    case 2:
      return text.startsWith('{') ? `{"pad":"${'x'.repeat(1024 * 1024)}",${text.slice(1)}` : text;
    case 3:
      return `\ufeff${text}`;
    default:
      return text;
  }
}
