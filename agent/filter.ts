/**
 * containerd's filter syntax for listing tasks: `<fieldpath>[<op><value>]`, ops `==`, `!=` and
 * `~=` (a regular expression), a bare field path testing presence, `,` joining selectors with
 * AND; several filters in a list are joined with OR. Fields are `id`, `name`, `driver`, `state`
 * and `labels.<key>`; a key holding characters other than letters, digits, `_`, `-`, `/` and `.`
 * is quoted: `labels."a b"==x`. A malformed filter is an InvalidConfigError whose message and
 * `details.errors` name the filter's index and the character offset (from 0) at fault.
 */
import { InvalidConfigError, type SchemaIssue } from '../shared/errors.js';
import { closest } from '../shared/schema.js';

/** What a filter looks at: the fields of a task record it may name. */
export interface FilterRecord {
  id: string;
  name: string;
  driver: string;
  state: string;
  labels?: Readonly<Record<string, string>>;
}

/** True when the record matches at least one filter (every record when there are none). */
export type RecordPredicate = (record: FilterRecord) => boolean;

/** The fields a filter may name, besides `labels.<key>`. */
export const filterFields = ['id', 'name', 'driver', 'state'] as const;
type PlainField = (typeof filterFields)[number];

/** How many filters one request may give, and how long each may be. */
export const filterLimits = Object.freeze({ maxFilters: 64, maxFilterLength: 4096 });

type Operator = '==' | '!=' | '~=';
type Selector =
  | { field: PlainField | { label: string }; op: 'present' }
  | { field: PlainField | { label: string }; op: '==' | '!='; value: string }
  | { field: PlainField | { label: string }; op: '~='; value: RegExp };

const operators: readonly Operator[] = ['==', '!=', '~='];
const fieldChar = /[A-Za-z0-9_/-]/;
const fieldList = 'id, name, driver, state, labels.<key>';

/** A malformed filter: where (offset from 0) and what. */
class FilterSyntaxError extends Error {
  constructor(
    readonly at: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Parses filters into one predicate (OR of the filters, AND within one). An empty filter
 * matches every record, as containerd's does. Throws InvalidConfigError naming each malformed
 * filter as `filter[<index>] at <offset>: ...`, its issue at `<path>/<index>`.
 */
export function parseFilters(filters: readonly string[], options: { path?: string } = {}): RecordPredicate {
  const path = options.path ?? '/query/filter';
  const issues: SchemaIssue[] = [];
  const lines: string[] = [];
  if (filters.length > filterLimits.maxFilters) {
    const message = `${filters.length} filters given; at most ${filterLimits.maxFilters} are allowed`;
    throw new InvalidConfigError(message, { details: { errors: [{ path, message }] } });
  }
  const parsed: Selector[][] = [];
  filters.forEach((text, index) => {
    try {
      parsed.push(parseFilter(text));
    } catch (err) {
      if (!(err instanceof FilterSyntaxError)) throw err;
      const message = `at ${err.at}: ${err.message}`;
      issues.push({ path: `${path}/${index}`, message });
      lines.push(`filter[${index}] ${message}`);
    }
  });
  if (issues.length) throw new InvalidConfigError(lines.join('; '), { details: { errors: issues } });
  if (parsed.length === 0) return () => true;
  return (record) => parsed.some((selectors) => selectors.every((s) => matches(s, record)));
}

function matches(selector: Selector, record: FilterRecord): boolean {
  const [value, present] = fieldValue(selector.field, record);
  switch (selector.op) {
    case 'present':
      return present;
    case '==':
      return present && value === selector.value;
    case '!=':
      return !(present && value === selector.value);
    case '~=':
      return present && selector.value.test(value);
  }
}

function fieldValue(field: Selector['field'], record: FilterRecord): [string, boolean] {
  if (typeof field === 'object') {
    const labels = record.labels ?? {};
    return Object.hasOwn(labels, field.label) ? [labels[field.label]!, true] : ['', false];
  }
  const value = record[field];
  return typeof value === 'string' && value !== '' ? [value, true] : ['', false];
}

function parseFilter(text: string): Selector[] {
  if (typeof text !== 'string') throw new FilterSyntaxError(0, 'must be a string');
  if (text.length > filterLimits.maxFilterLength) {
    throw new FilterSyntaxError(
      filterLimits.maxFilterLength,
      `is ${text.length} characters long; at most ${filterLimits.maxFilterLength} are allowed`,
    );
  }
  const scanner = new Scanner(text);
  scanner.skipSpace();
  if (scanner.done()) return [];
  const selectors: Selector[] = [];
  for (;;) {
    selectors.push(parseSelector(scanner));
    scanner.skipSpace();
    if (scanner.done()) return selectors;
    if (scanner.peek() !== ',') {
      throw new FilterSyntaxError(
        scanner.at,
        `expected "," or the end of the filter, found ${quoteChar(scanner.peek())}; quote a value that holds spaces or commas`,
      );
    }
    scanner.at++;
    scanner.skipSpace();
    if (scanner.done()) throw new FilterSyntaxError(scanner.at, 'expected a field after ","');
  }
}

function parseSelector(scanner: Scanner): Selector {
  const start = scanner.at;
  const segments = parseFieldPath(scanner);
  const written = scanner.text.slice(start, scanner.at);
  const field = resolveField(segments, written);
  scanner.skipSpace();
  if (scanner.done() || scanner.peek() === ',') return { field, op: 'present' };
  const op = operators.find((o) => scanner.text.startsWith(o, scanner.at));
  if (!op) {
    const found = scanner.peek();
    const hint = typeof field === 'object' && !'=!~'.includes(found) ? `; quote a label key that holds other characters: labels."a@b"` : '';
    throw new FilterSyntaxError(scanner.at, `expected an operator (==, !=, ~=) after "${written}", found ${quoteChar(found)}${hint}`);
  }
  scanner.at += 2;
  scanner.skipSpace();
  const valueAt = scanner.at;
  const value = parseValue(scanner, op);
  if (op !== '~=') return { field, op, value };
  try {
    return { field, op, value: new RegExp(value, 'u') };
  } catch (err) {
    throw new FilterSyntaxError(valueAt, `invalid regular expression ${JSON.stringify(value)}: ${regExpProblem(err)}`);
  }
}

interface Segment {
  text: string;
  at: number;
}

function parseFieldPath(scanner: Scanner): Segment[] {
  const segments: Segment[] = [];
  for (;;) {
    const at = scanner.at;
    if (scanner.peek() === '"') segments.push({ text: parseQuoted(scanner), at });
    else {
      while (!scanner.done() && fieldChar.test(scanner.peek())) scanner.at++;
      if (scanner.at === at) {
        const what = segments.length ? `after "."` : '';
        const found = scanner.done() ? 'the end' : quoteChar(scanner.peek());
        throw new FilterSyntaxError(at, `expected a field name${what ? ` ${what}` : ''} (${fieldList}), found ${found}`);
      }
      segments.push({ text: scanner.text.slice(at, scanner.at), at });
    }
    if (scanner.peek() !== '.') return segments;
    scanner.at++;
  }
}

function resolveField(segments: Segment[], written: string): Selector['field'] {
  const [first, ...rest] = segments as [Segment, ...Segment[]];
  if (first.text === 'labels') {
    if (rest.length === 0)
      throw new FilterSyntaxError(first.at + first.text.length, 'expected a label key after "labels" (such as labels.team==a)');
    return { label: rest.map((s) => s.text).join('.') };
  }
  if ((filterFields as readonly string[]).includes(first.text)) {
    if (rest.length) throw new FilterSyntaxError(rest[0]!.at - 1, `field "${first.text}" has no sub-fields; only labels.<key> has`);
    return first.text as PlainField;
  }
  const guess = closest(first.text, [...filterFields, 'labels']);
  const suggestion = guess === 'labels' ? `labels${written.slice(first.text.length) || '.<key>'}` : guess;
  const hint = suggestion ? ` (did you mean "${suggestion}"?)` : '';
  throw new FilterSyntaxError(first.at, `unknown field ${JSON.stringify(first.text)}${hint}; the fields are ${fieldList}`);
}

function parseValue(scanner: Scanner, op: Operator): string {
  if (scanner.peek() === '"') return parseQuoted(scanner);
  const at = scanner.at;
  while (!scanner.done() && scanner.peek() !== ',' && !/\s/.test(scanner.peek())) scanner.at++;
  if (scanner.at === at) throw new FilterSyntaxError(at, `expected a value after "${op}" (write "" for an empty one)`);
  return scanner.text.slice(at, scanner.at);
}

const escapes: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', t: '\t', r: '\r' };

function parseQuoted(scanner: Scanner): string {
  const start = scanner.at;
  scanner.at++;
  let out = '';
  for (;;) {
    if (scanner.done()) throw new FilterSyntaxError(start, 'unterminated quoted string: close it with "');
    const ch = scanner.peek();
    scanner.at++;
    if (ch === '"') return out;
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    if (scanner.done()) throw new FilterSyntaxError(start, 'unterminated quoted string: close it with "');
    const escaped = escapes[scanner.peek()];
    if (escaped === undefined) {
      throw new FilterSyntaxError(
        scanner.at - 1,
        `unknown escape "\\${scanner.peek()}" in a quoted string: write \\\\ for a backslash, \\" for a quote`,
      );
    }
    out += escaped;
    scanner.at++;
  }
}

/** V8's message without its restatement of the pattern (`Invalid regular expression: /[/u: `). */
function regExpProblem(err: unknown): string {
  return (err as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
}

function quoteChar(ch: string): string {
  return ch === '' ? 'the end' : JSON.stringify(ch);
}

class Scanner {
  at = 0;
  constructor(readonly text: string) {}
  done(): boolean {
    return this.at >= this.text.length;
  }
  peek(): string {
    return this.text[this.at] ?? '';
  }
  skipSpace(): void {
    while (!this.done() && /\s/.test(this.peek())) this.at++;
  }
}
