/** What the benchmarks share on their command line: integer flags and how a bad one ends the run. */
import { parseArgs } from 'node:util';

/** A flag the person got wrong: the run stops with the message and the usage, exit code 2. */
export class UsageError extends Error {}

/** The integer given for `--flag`, or `fallback` when it was not given. */
export function integerFlag(flag: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${flag} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

/** Runs a benchmark's main: usage errors exit 2 with the usage, anything else exits 1. */
export function runBenchmark(name: string, usage: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof UsageError || String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(err as Error).message}\n\n${usage}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}

export interface BenchFlags<K extends string> {
  /** Each named flag's text, when it was given. */
  values: Partial<Record<K, string>>;
  quick: boolean;
  json: boolean;
}

/**
 * Parses a benchmark's command line: the named value flags plus --quick, --json and --help.
 * Prints the usage and returns undefined for --help; an unknown flag throws (exit code 2).
 */
export function parseBenchFlags<K extends string>(argv: string[], usage: string, names: readonly K[]): BenchFlags<K> | undefined {
  const options = Object.fromEntries(names.map((name) => [name, { type: 'string' as const }]));
  const { values } = parseArgs({
    args: argv,
    options: {
      ...options,
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return undefined;
  }
  const given = values as Record<string, string | boolean | undefined>;
  const text = Object.fromEntries(names.filter((n) => typeof given[n] === 'string').map((n) => [n, given[n]])) as Partial<
    Record<K, string>
  >;
  return { values: text, quick: given.quick === true, json: given.json === true };
}
