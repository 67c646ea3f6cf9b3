/**
 * raw_exec's per-task executor, after Nomad's: a small `/bin/sh` process between the driver and
 * the task. The task is its child, so it alone can read the task's exit status; it lives in its
 * own session, so it outlives the driver's worker, the agent and a `kill -9` of the agent, and
 * it records the exit in a file of the task's directory for whoever recovers the task later.
 * A shell, not a Node process: about 0.1 MB of private memory per task instead of about 40 MB.
 *
 * The executor's files, under `<taskDir>/.raw_exec/`, named after the task's run (see runFiles):
 *   `<run>.pid`   written before the command is exec'd: `{ pid, pgid, startTime, executorPid,
 *                 executorStartTime }` (start times are field 22 of /proc/<pid>/stat)
 *   `<run>.exit`  written once the task has exited: an ExitResult `{ exitCode, signal, oomKilled }`
 * Both are written to `<file>.tmp` first and renamed, so a reader never sees half of one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants as fsConstants, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { signalExit, type ExitResult } from '../../shared/driver.js';
import { InvalidConfigError, PluginError } from '../../shared/errors.js';
import { readProcStat } from './proc-stat.js';

/** The shell every executor runs in. */
export const executorShell = '/bin/sh';

/** What the executor records of the task it started: enough to find both processes again. */
export interface ExecutorRecord {
  /** The task; it leads its own session and process group, so pgid equals pid. */
  pid: number;
  pgid: number;
  /** Field 22 of /proc/<pid>/stat: tells the process from a later one that got the same pid. */
  startTime: number;
  executorPid: number;
  executorStartTime: number;
}

/** Where one run of a task keeps its executor's files. */
export interface RunFiles {
  dir: string;
  pid: string;
  exit: string;
}

/**
 * The executor's files for a task: `<taskDir>/.raw_exec/<run>.pid` and `.exit`, where `<run>` is
 * the last part of the task id (the 8 hex digits of `<allocId>/<name>/<8 hex>`: one task
 * directory belongs to one alloc and name), or a hash of an id of another shape.
 */
export function runFiles(taskDir: string, taskId: string): RunFiles {
  const last = taskId.slice(taskId.lastIndexOf('/') + 1);
  const run = /^[A-Za-z0-9_-]{1,64}$/.test(last) ? last : createHash('sha256').update(taskId).digest('hex').slice(0, 16);
  const dir = path.join(taskDir, '.raw_exec');
  return { dir, pid: path.join(dir, `${run}.pid`), exit: path.join(dir, `${run}.exit`) };
}

/** Removes a run's files (destroyTask: the run is over and forgotten). */
export function removeRunFiles(files: RunFiles): void {
  for (const file of [files.pid, files.exit]) {
    for (const f of [file, `${file}.tmp`]) rmSync(f, { force: true, recursive: true });
  }
}

/**
 * The executor. Its own variables all start with `__taskhost_` (a task env may not use such
 * names: the shell would export its own values of them to the task). Arguments: the run's file
 * prefix, setsid's and mv's paths, how many variable names follow, those names (ones the shell
 * adds to its environment that the task's env lacks: unset before the exec), then the command
 * and its arguments. fd 3 is the driver's pipe: the pid record goes there too, once.
 *
 * Signals: the executor traps the usual terminating ones with a handler that does nothing, so a
 * stray `kill` does not lose the record; a trapped signal (unlike an ignored one) is reset to its
 * default in the subshell, so the task starts with every signal at its default, as from Node's
 * spawn. The task runs as a foreground command (an `&` job would start with SIGINT and SIGQUIT
 * ignored), in its own session made by setsid(1): the shell cannot make a process group itself
 * without a terminal. The subshell's pid is the task's: setsid() and exec keep the pid and the
 * start time, so the record is written before the command runs.
 *
 * Exit status: a shell sees a task killed by signal n as status 128 + n, and cannot tell it from
 * a task that called exit(128 + n) itself; both are recorded as killed by that signal.
 */
export const executorScript = [
  '__taskhost_p=$1 __taskhost_setsid=$2 __taskhost_mv=$3',
  'shift 3',
  // The executor's own messages (a shell reporting a killed child) stay out of the task's log.
  'exec 4>&2 2>/dev/null',
  'trap : HUP INT QUIT PIPE ALRM TERM USR1 USR2 TSTP TTIN TTOU',
  '(',
  // Field 22 (start time) of a /proc/<pid>/stat line; the name in field 2 may hold spaces.
  '  __taskhost_start() {',
  '    __taskhost_x=${1##*) } __taskhost_i=3',
  '    while [ "$__taskhost_i" -lt 22 ]; do __taskhost_x=${__taskhost_x#* } __taskhost_i=$((__taskhost_i + 1)); done',
  '    __taskhost_st=${__taskhost_x%% *}',
  '  }',
  '  read -r __taskhost_me </proc/self/stat && read -r __taskhost_ex </proc/$$/stat || exit 125',
  '  __taskhost_start "$__taskhost_me"',
  '  __taskhost_j="{\\"pid\\":${__taskhost_me%% *},\\"pgid\\":${__taskhost_me%% *},\\"startTime\\":$__taskhost_st"',
  '  __taskhost_start "$__taskhost_ex"',
  '  __taskhost_j="$__taskhost_j,\\"executorPid\\":$$,\\"executorStartTime\\":$__taskhost_st}"',
  `  { printf '%s\\n' "$__taskhost_j" >"$__taskhost_p.pid.tmp" && "$__taskhost_mv" -f "$__taskhost_p.pid.tmp" "$__taskhost_p.pid"; } 2>&4 || exit 125`,
  // A driver that died meanwhile closed the pipe: the task starts all the same.
  "  trap '' PIPE",
  `  printf '%s\\n' "$__taskhost_j" >&3`,
  '  trap - PIPE',
  '  __taskhost_n=$1',
  '  shift',
  '  while [ "$__taskhost_n" -gt 0 ]; do unset "$1"; shift; __taskhost_n=$((__taskhost_n - 1)); done',
  '  exec 3>&- 2>&4 4>&-',
  '  exec "$__taskhost_setsid" -- "$@"',
  ')',
  '__taskhost_s=$? __taskhost_sig=null',
  'if [ "$__taskhost_s" -gt 128 ]; then',
  '  __taskhost_n=$(kill -l "$__taskhost_s")',
  '  case $__taskhost_n in [A-Z]*) case $__taskhost_n in *[!A-Z0-9+]*) ;; *) __taskhost_sig="\\"SIG$__taskhost_n\\"" ;; esac ;; esac',
  'fi',
  `{ printf '{"exitCode":%d,"signal":%s,"oomKilled":false}\\n' "$__taskhost_s" "$__taskhost_sig" >"$__taskhost_p.exit.tmp" && "$__taskhost_mv" -f "$__taskhost_p.exit.tmp" "$__taskhost_p.exit"; } 2>&4`,
  'exit "$__taskhost_s"',
].join('\n');

/** The prefix of the executor's own variables; a task env may not use it. */
export const executorVariablePrefix = '__taskhost_';

/** Variables a POSIX shell may add to the environment it passes on (dash: PWD; bash: SHLVL; busybox: PATH). */
const shellVariables = ['PWD', 'OLDPWD', 'SHLVL', '_', 'PATH'];

/** Where the tools the executor needs are, or which one is missing. */
export type ExecutorTools = { setsid: string; mv: string } | { missing: string };

let tools: ExecutorTools | undefined;

/** Finds /bin/sh, setsid(1) and mv(1) (in the agent's PATH or the usual directories), once. */
export function executorTools(): ExecutorTools {
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => path.isAbsolute(d)), '/usr/bin', '/bin', '/usr/sbin', '/sbin'];
  tools ??= findExecutorTools(executorShell, dirs);
  return tools;
}

/** The shell, if it is there, and setsid and mv from the first of `dirs` that has each. */
export function findExecutorTools(shell: string, dirs: string[]): ExecutorTools {
  if (!isExecutableFile(shell)) return { missing: shell };
  const find = (name: string) => dirs.map((d) => path.join(d, name)).find(isExecutableFile);
  const setsid = find('setsid');
  if (!setsid) return { missing: 'setsid (util-linux or busybox)' };
  const mv = find('mv');
  if (!mv) return { missing: 'mv (coreutils or busybox)' };
  return { setsid, mv };
}

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** An Error carrying an errno code, as spawn would have rejected with. */
function errno(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/**
 * Throws what exec would fail with (ENOENT, EACCES, ENAMETOOLONG) for `command`, looked up as
 * execvp does: a name with a slash from `cwd`, any other in the task env's PATH. The executor
 * execs the command later, so its errors would otherwise reach only the task's stderr log.
 */
export function checkProgram(command: string, cwd: string, env: Record<string, string>): void {
  const candidates = command.includes('/')
    ? [path.resolve(cwd, command)]
    : (env.PATH ?? '/usr/bin:/bin').split(':').map((dir) => path.resolve(cwd, dir || '.', command));
  let denied = false;
  for (const file of candidates) {
    try {
      if (statSync(file).isFile()) {
        accessSync(file, fsConstants.X_OK);
        return;
      }
      denied = true; // a directory: exec says EACCES
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENAMETOOLONG') throw err;
      if (code === 'EACCES') denied = true;
    }
  }
  throw errno(denied ? 'EACCES' : 'ENOENT', `cannot run ${command}`);
}

export interface ExecutorOptions {
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Files the task's output is appended to. */
  stdoutPath: string;
  stderrPath: string;
  files: RunFiles;
  /** The shell to run the executor in (default /bin/sh): the tests try each POSIX shell they find. */
  shell?: string;
}

export interface StartedExecutor {
  child: ChildProcess;
  record: ExecutorRecord;
}

/**
 * Starts the executor and resolves once it has recorded the task (before the task's command
 * runs). Rejects with the spawn error (E2BIG) or, when the executor exits before that, with an
 * error that points at the task's stderr log.
 */
export async function startExecutor(options: ExecutorOptions, tools: { setsid: string; mv: string }): Promise<StartedExecutor> {
  mkdirSync(options.files.dir, { recursive: true });
  const prefix = options.files.pid.slice(0, -'.pid'.length);
  const unset = shellVariables.filter((name) => !(name in options.env));
  const fds: number[] = [];
  let child: ChildProcess;
  try {
    fds.push(openSync(options.stdoutPath, 'a'));
    fds.push(openSync(options.stderrPath, 'a'));
    // detached: its own session, so neither the agent's death nor a signal to the agent's
    // process group (a Ctrl-C in its terminal) reaches it.
    child = spawn(
      options.shell ?? executorShell,
      [
        '-c',
        executorScript,
        'taskhost-raw_exec-executor',
        prefix,
        tools.setsid,
        tools.mv,
        String(unset.length),
        ...unset,
        options.command,
        ...options.args,
      ],
      { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', fds[0], fds[1], 'pipe'] },
    );
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  if (child.pid === undefined) throw await new Promise<Error>((resolve) => child.once('error', resolve));
  const line = await firstLine(child.stdio[3] as Readable);
  if (line === undefined) {
    const status = await exitStatus(child);
    removeRunFiles(options.files);
    throw new PluginError(
      `raw_exec's executor exited (${status}) before it started the task: could it write ${options.files.dir}? Its messages are in ${options.stderrPath}`,
    );
  }
  const record = parseRecord(line, 'the executor');
  await ownGroup(record);
  return { child, record };
}

/**
 * Waits (a millisecond or so) for setsid(1) to give the task its own process group: the record
 * is written just before, and a caller that signals the group at once must find it. Returns
 * early if the task is gone already; gives up after a generous bound on a stalled host.
 */
async function ownGroup(record: ExecutorRecord): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const stat = readProcStat(record.pid);
    if (stat === undefined || stat.startTime !== record.startTime || stat.state === 'Z' || stat.pgrp === record.pid) return;
    if (performance.now() > deadline) return;
    await delay(1);
  }
}

/** The first line on `stream`, then closes it; undefined if it ends first. */
function firstLine(stream: Readable): Promise<string | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const end = text.indexOf('\n');
      if (end < 0) return;
      stream.off('close', onClose);
      stream.destroy();
      resolve(text.slice(0, end));
    };
    const onClose = () => resolve(undefined);
    stream.on('data', onData);
    stream.on('error', () => undefined); // a reset pipe closes next: onClose answers
    stream.once('close', onClose);
  });
}

function exitStatus(child: ChildProcess): Promise<string> {
  const describe = () => (child.signalCode ? `killed by ${child.signalCode}` : `exit status ${child.exitCode}`);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(describe());
  return new Promise((resolve) => child.once('exit', () => resolve(describe())));
}

/** The executor's record of a task, or undefined if there is no pid file (it never ran). */
export function readPidFile(file: string): (ExecutorRecord & { startedAt: string }) | undefined {
  const text = readIfExists(file);
  if (text === undefined) return undefined;
  return { ...parseRecord(text, file), startedAt: statSync(file).mtime.toISOString() };
}

/** The exit the executor recorded, with when, or undefined if it has recorded none. */
export function readExitFile(file: string): { result: ExitResult; completedAt: string } | undefined {
  const text = readIfExists(file);
  if (text === undefined) return undefined;
  let value: Partial<ExitResult> | undefined;
  try {
    value = JSON.parse(text) as Partial<ExitResult>;
  } catch {
    value = undefined;
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    !Number.isInteger(value.exitCode) ||
    !(value.signal === null || typeof value.signal === 'string') ||
    typeof value.oomKilled !== 'boolean'
  ) {
    throw new InvalidConfigError(`raw_exec cannot read the exit the executor recorded in ${file}: ${JSON.stringify(text)}`);
  }
  return {
    result: { exitCode: value.exitCode!, signal: value.signal, oomKilled: value.oomKilled },
    completedAt: statSync(file).mtime.toISOString(),
  };
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function parseRecord(text: string, where: string): ExecutorRecord {
  let value: Partial<ExecutorRecord> | undefined;
  try {
    value = JSON.parse(text) as Partial<ExecutorRecord>;
  } catch {
    value = undefined;
  }
  const positive = (n: unknown) => Number.isInteger(n) && (n as number) > 0;
  if (
    typeof value !== 'object' ||
    value === null ||
    !positive(value.pid) ||
    !positive(value.pgid) ||
    !Number.isInteger(value.startTime) ||
    !positive(value.executorPid) ||
    !Number.isInteger(value.executorStartTime)
  ) {
    throw new InvalidConfigError(`raw_exec cannot read the task record of ${where}: ${JSON.stringify(text)}`);
  }
  const { pid, pgid, startTime, executorPid, executorStartTime } = value as ExecutorRecord;
  return { pid, pgid, startTime, executorPid, executorStartTime };
}

const signalNames = new Map<number, string>();
for (const [name, number] of Object.entries(constants.signals)) if (!signalNames.has(number)) signalNames.set(number, name);

/** The ExitResult of a shell's `$?` for a command: above 128, killed by signal `$? - 128`. */
export function fromShellStatus(status: number): ExitResult {
  const name = status > 128 ? signalNames.get(status - 128) : undefined;
  return name === undefined ? { exitCode: status, signal: null, oomKilled: false } : signalExit(name);
}
