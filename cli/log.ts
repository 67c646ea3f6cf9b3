/** Logs for a person at a terminal: one short line per record on stderr instead of JSON. */
import { pino, type Logger } from 'pino';
import type { CliIO } from './main.js';

const names: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

export function cliLogger(level: string, io: CliIO): Logger {
  return pino(
    { level, base: null, timestamp: false },
    {
      write(line: string) {
        const record = JSON.parse(line) as { level: number; msg?: string; plugin?: string };
        const where = record.plugin ? ` [${record.plugin}]` : '';
        io.stderr.write(`taskhost ${names[record.level] ?? record.level}${where}: ${record.msg ?? ''}\n`);
      },
    },
  );
}
