/**
 * Logs as go-hclog writes them: one JSON object per line on stderr with `@level`, `@message`,
 * `@timestamp` and `@module`, plus the record's fields. go-plugin's client parses such lines
 * and logs each at its own level in Nomad's log; any other line it logs as one debug message.
 */
import { pino, type Logger } from 'pino';

export interface HclogLoggerOptions {
  level?: string;
  /** `@module` of every line (Nomad prefixes it to the plugin's name). */
  module?: string;
  /** Where lines go; default process.stderr. */
  write?: (line: string) => void;
}

/** go-hclog's level names; pino's fatal has no counterpart there. */
const levels: Record<string, string> = { trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', error: 'error', fatal: 'error' };

/** A pino logger whose lines go-plugin's client reads as hclog lines. */
export function hclogLogger(options: HclogLoggerOptions = {}): Logger {
  const write = options.write ?? stderrWriter();
  return pino(
    {
      level: options.level ?? 'info',
      base: { '@module': options.module ?? 'taskhost' },
      messageKey: '@message',
      timestamp: () => `,"@timestamp":"${hclogTimestamp(new Date())}"`,
      formatters: { level: (label) => ({ '@level': levels[label] ?? 'info' }) },
    },
    { write },
  );
}

/**
 * `2024-05-01T10:20:30.123000Z`: go-plugin parses `@timestamp` with six fractional digits and
 * drops the whole line when they are not there, so milliseconds are padded.
 */
export function hclogTimestamp(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

let guarded = false;

/**
 * Writes to process.stderr, which never throws or crashes the process when the reading end has
 * gone (Nomad's client exited): the lines are lost, the plugin and its tasks carry on.
 */
export function stderrWriter(): (line: string) => void {
  if (!guarded) {
    guarded = true;
    process.stderr.on('error', () => undefined);
  }
  return (line) => {
    if (process.stderr.destroyed || !process.stderr.writable) return;
    try {
      process.stderr.write(line.endsWith('\n') ? line : line + '\n');
    } catch {
      // EPIPE raised synchronously: the client is gone, nobody can read the line.
    }
  };
}
