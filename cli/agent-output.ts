/**
 * How the commands that drive a running agent print what it answers: the tasks table, one
 * task's record, the images table, one event per line, and the process exit code a completed
 * task stands for. Plain functions of records and a clock, so tests pin them without an agent.
 */
import { signalNumber } from '../shared/driver.js';
import type { ImageListing } from '../agent/agent-client.js';
import type { StoreEvent, TaskRecord } from '../agent/store-records.js';
import { table } from './table.js';

/**
 * `ID  DRIVER  STATE  EXIT  AGE`: the id holds the task's name (`<allocId>/<name>/<8 hex>`),
 * so a row of a UUID alloc id fits in 100 columns.
 */
export function tasksTable(records: readonly TaskRecord[], now = Date.now()): string {
  const rows = records.map((r) => [r.id, r.driver, r.state, exitColumn(r), age(r.createdAt, now)]);
  return table(['ID', 'DRIVER', 'STATE', 'EXIT', 'AGE'], rows);
}

/** One task's record, a field a line, times with how long ago they were. */
export function taskDetails(record: TaskRecord, now = Date.now()): string {
  const when = (iso: string | undefined) => (iso === undefined ? undefined : `${iso} (${age(iso, now)} ago)`);
  const labels = Object.entries(record.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const config = JSON.stringify(record.spec.config ?? {});
  const fields: [string, string | undefined][] = [
    ['id', record.id],
    ['name', record.name],
    ['namespace', record.namespace],
    ['driver', record.driver],
    ['state', describeState(record)],
    ['labels', labels || '-'],
    ['config', config.length > 200 ? `${config.slice(0, 199)}…` : config],
    ['created', when(record.createdAt)],
    ['started', when(record.startedAt)],
    ['completed', when(record.completedAt)],
  ];
  return fields
    .filter((f): f is [string, string] => f[1] !== undefined)
    .map(([k, v]) => `${`${k}:`.padEnd(11)}${v}`)
    .join('\n');
}

/** `exited with code 3`, `killed by SIGTERM (exit code 143)`, `failed: CODE: why`, `running`. */
export function describeState(record: TaskRecord): string {
  const exit = record.exitResult;
  if (record.state === 'exited' && exit) {
    const how = exit.signal ? `killed by ${exit.signal} (exit code ${exit.exitCode})` : `exited with code ${exit.exitCode}`;
    return `${how}${exit.oomKilled ? ', out of memory' : ''}${exit.err ? ` (${exit.err})` : ''}`;
  }
  if (record.error) return `${record.state}: ${record.error.code}: ${record.error.message}`;
  return record.state;
}

/**
 * The exit code of a command that waited for the task, as `taskhost run`'s: the task's own
 * code, 128 + the signal's number when it has none, and 1 when it did not exit (failed, lost).
 */
export function taskExitCode(record: TaskRecord): number {
  const exit = record.exitResult;
  if (record.state !== 'exited' || !exit) return 1;
  if (Number.isInteger(exit.exitCode) && exit.exitCode >= 0 && exit.exitCode <= 255) return exit.exitCode;
  const number = exit.signal ? signalNumber(exit.signal) : undefined;
  return number === undefined ? 1 : 128 + number;
}

/** `NAME  ID  DIGEST  SIZE  USERS  LAST USED`, ids and digests cut to 12 hex digits as docker does. */
export function imagesTable(images: readonly ImageListing[], now = Date.now()): string {
  const rows = images.map((i) => [
    i.name,
    shortHash(i.id),
    i.digest ? shortHash(i.digest) : '-',
    formatSize(i.sizeBytes),
    String(i.users.length),
    i.lastUsedAt ? `${age(i.lastUsedAt, now)} ago` : '-',
  ]);
  return table(['NAME', 'ID', 'DIGEST', 'SIZE', 'USERS', 'LAST USED'], rows);
}

/** `12  tasks  updated  default/a1/web/0123abcd  state=running`: an event on one line. */
export function eventLine(event: StoreEvent): string {
  const payload = event.payload as { state?: unknown; exitResult?: { exitCode?: unknown } } | null | undefined;
  const state = typeof payload?.state === 'string' ? `  state=${payload.state}` : '';
  const code = typeof payload?.exitResult?.exitCode === 'number' ? ` exitCode=${payload.exitResult.exitCode}` : '';
  return `${String(event.index).padStart(6)}  ${event.topic.padEnd(12)}  ${event.type.padEnd(8)}  ${event.key}${state}${code}`;
}

/** How long ago `iso` was, in its largest unit: `42s`, `5m`, `3h`, `2d`. */
export function age(iso: string, now = Date.now()): string {
  const seconds = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (!Number.isFinite(seconds)) return '-';
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

function exitColumn(record: TaskRecord): string {
  const exit = record.exitResult;
  if (record.state === 'exited' && exit) {
    const why = exit.oomKilled ? ' OOM' : exit.signal ? ` ${exit.signal}` : '';
    return `${exit.exitCode}${why}`;
  }
  return record.error?.code ?? '-';
}

/** `sha256:0123456789abcdef…` to `0123456789ab`. */
function shortHash(value: string): string {
  const hex = value.includes(':') ? value.slice(value.indexOf(':') + 1) : value;
  return hex.slice(0, 12);
}

function formatSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let unit = 0;
  while (n >= 1000 && unit < units.length - 1) {
    n /= 1000;
    unit++;
  }
  return unit === 0 ? `${n}B` : `${n < 10 ? n.toFixed(1) : Math.round(n)}${units[unit]}`;
}
