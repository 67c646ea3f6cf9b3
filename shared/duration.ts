/** Durations as people write them in config files: "250ms", "5s", "1m30s", "2h". */
import { Type } from '@sinclair/typebox';

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const whole = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/** The longest duration: 2^31-1 ms, what a Node timer holds (a longer one fires after 1 ms). */
export const maxDurationMs = 2 ** 31 - 1;
const maxText = '596h31m23.647s';

const howToWrite = 'a number and a unit (ms, s, m, h), e.g. "5s" or "1m30s"';
const limit = `at most ${maxText} (about 24.8 days): a longer wait does not fit in a timer`;

/**
 * A schema for a duration string such as "5s" or "1m30s", at most maxDurationMs. The limit is
 * the `taskhost-duration` format, which the SDK's schema helpers (shared/schema.ts) check.
 */
export const Duration = (options: { default?: string; description?: string } = {}) =>
  Type.String({
    pattern: whole.source,
    format: 'taskhost-duration',
    errorMessage: { pattern: `must be a duration: ${howToWrite}`, format: `must be ${limit}` },
    ...options,
  });

/** Milliseconds in a duration string; throws a RangeError that quotes a malformed or too long value. */
export function parseDuration(text: string): number {
  if (!whole.test(text)) {
    throw new RangeError(`"${text}" is not a duration: write ${howToWrite}`);
  }
  const ms = sum(text);
  if (ms > maxDurationMs) throw new RangeError(`"${text}" is too long: a duration must be ${limit}`);
  return ms;
}

/** Whether a duration string is within maxDurationMs; true for a malformed one (the pattern's to refuse). */
export function durationFits(text: string): boolean {
  return !whole.test(text) || sum(text) <= maxDurationMs;
}

function sum(text: string): number {
  let total = 0;
  for (const [, n, unit] of text.matchAll(part)) total += Number(n) * unitMs[unit!]!;
  return Math.round(total);
}

/** "1m30s" style text for a number of milliseconds, for messages and output. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 59_950) return `${+(ms / 1000).toFixed(ms % 1000 ? 1 : 0)}s`;
  const seconds = Math.round(ms / 1000); // round once, so 599.5s is 10m, never 9m60s
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return s ? `${m}m${s}s` : `${m}m`;
}
