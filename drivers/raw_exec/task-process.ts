/**
 * The process group of one raw_exec task: either started here, as a child of this thread, or
 * adopted after a driver restart from its pid and start time. An adopted process is not our
 * child, so nothing can wait on it: it is watched through /proc instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { constants } from 'node:os';
import { signalExit, type ExitResult } from '../../shared/driver.js';
import { CancelledError } from '../../shared/errors.js';
import { groupMembers } from './group-usage.js';
import { readProcStat } from './proc-stat.js';

/** What a TaskHandle's driverState holds: enough to find the task's process after a restart. */
export interface DriverState {
  pid: number;
  /** The task leads its own process group, so this equals pid. */
  pgid: number;
  /** Field 22 of /proc/<pid>/stat: tells the task from a later process that got the same pid. */
  startTime: number;
  /** ISO time. */
  startedAt: string;
}

export interface SpawnOptions {
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Files the task's output is appended to. */
  stdoutPath: string;
  stderrPath: string;
}

/** How often an adopted process is looked at. */
const pollMs = 200;

export const exitedUnwatched = 'the task exited while the driver was not running; its exit status is unknown';
const reapedElsewhere = 'the task exited but another process reaped it; its exit status is unknown';

const signalNames = new Map<number, string>();
for (const [name, number] of Object.entries(constants.signals)) if (!signalNames.has(number)) signalNames.set(number, name);

export class TaskProcess {
  readonly state: DriverState;
  #result: ExitResult | undefined;
  #completedAt: string | undefined;
  readonly #exit = new AbortController();
  readonly #exitListeners = new Set<(result: ExitResult) => void>();
  #waiters = 0;
  /** The child or the poll timer: unref'd, so the driver alone keeps no process alive, but ref'd while someone waits. */
  #handle: { ref(): unknown; unref(): unknown } | undefined;
  #poller: NodeJS.Timeout | undefined;

  private constructor(state: DriverState) {
    this.state = state;
  }

  /** Starts `command` as the leader of a new process group. Rejects with the spawn error (ENOENT, EACCES). */
  static async spawn(options: SpawnOptions): Promise<TaskProcess> {
    const fds: number[] = [];
    let child: ChildProcess;
    try {
      fds.push(openSync(options.stdoutPath, 'a'));
      fds.push(openSync(options.stderrPath, 'a'));
      // detached: its own session and process group, so the task outlives a driver crash and
      // one signal to the group reaches everything the task started.
      child = spawn(options.command, options.args, {
        cwd: options.cwd,
        env: options.env,
        detached: true,
        stdio: ['ignore', fds[0], fds[1]],
      });
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    const pid = child.pid;
    if (pid === undefined) throw await new Promise<Error>((resolve) => child.once('error', resolve));
    // Read before anything awaits: until the event loop reaps the child, even a task that has
    // already exited is still in /proc (as a zombie), start time included.
    const stat = readProcStat(pid);
    if (stat === undefined) {
      process.kill(-pid, 'SIGKILL');
      throw new Error(`cannot read /proc/${pid}/stat: raw_exec needs Linux with /proc mounted`);
    }
    const task = new TaskProcess({ pid, pgid: pid, startTime: stat.startTime, startedAt: new Date().toISOString() });
    child.once('exit', (code, signal) =>
      task.#finish(signal === null ? { exitCode: code ?? -1, signal: null, oomKilled: false } : signalExit(signal)),
    );
    child.unref();
    task.#handle = child;
    return task;
  }

  /** Re-attaches to a task an earlier driver started; it is exited at once if its process is gone. */
  static adopt(state: DriverState): TaskProcess {
    const task = new TaskProcess(state);
    task.#check(exitedUnwatched);
    if (task.#result === undefined) {
      const poller = setInterval(() => task.#check(reapedElsewhere), pollMs);
      poller.unref();
      task.#poller = poller;
      task.#handle = poller;
    }
    return task;
  }

  get running(): boolean {
    return this.#result === undefined;
  }

  get result(): ExitResult | undefined {
    return this.#result;
  }

  /** ISO time the driver saw the exit. */
  get completedAt(): string | undefined {
    return this.#completedAt;
  }

  /** Aborts when the task exits. */
  get exitSignal(): AbortSignal {
    return this.#exit.signal;
  }

  /** Calls `listener` once with the exit result: now if the task has already exited. */
  onExit(listener: (result: ExitResult) => void): void {
    if (this.#result) listener(this.#result);
    else this.#exitListeners.add(listener);
  }

  /** Resolves with the exit result; rejects with CancelledError if `signal` aborts first. */
  wait(signal?: AbortSignal): Promise<ExitResult> {
    if (this.#result) return Promise.resolve(this.#result);
    if (signal?.aborted) return Promise.reject(new CancelledError('the wait was cancelled before the task exited'));
    return new Promise((resolve, reject) => {
      const settle = () => {
        signal?.removeEventListener('abort', onAbort);
        if (--this.#waiters === 0) this.#handle?.unref();
      };
      const onExit = (result: ExitResult) => {
        settle();
        resolve(result);
      };
      const onAbort = () => {
        this.#exitListeners.delete(onExit);
        settle();
        reject(new CancelledError('the wait was cancelled before the task exited'));
      };
      if (this.#waiters++ === 0) this.#handle?.ref();
      this.#exitListeners.add(onExit);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Whether the task exits within `ms`. */
  async exitedWithin(ms: number): Promise<boolean> {
    try {
      await this.wait(AbortSignal.timeout(ms));
      return true;
    } catch (err) {
      if (err instanceof CancelledError) return false;
      throw err;
    }
  }

  /** Sends a signal to the whole process group; false if the task has already exited. */
  signal(name: string): boolean {
    // An adopted pid may have been reused since the last poll: look again before signalling.
    if (this.#poller) this.#check(reapedElsewhere);
    if (this.#result) return false;
    return killGroup(this.state.pgid, name);
  }

  /** SIGKILLs what is left of the group once its leader has exited (background children). */
  async killStragglers(): Promise<void> {
    // Cheap check first: with no process left in the group (the usual case) there is no need to
    // walk all of /proc, which costs milliseconds per call on a busy node.
    if (!groupExists(this.state.pgid)) return;
    const members = await groupMembers(this.state.pgid);
    // While any member lives, the kernel keeps the group's id from being reused; a live leader
    // with another start time means the group is gone and its id now names someone else's.
    if (members.some((m) => m.pid === this.state.pgid && m.startTime !== this.state.startTime)) return;
    if (members.some((m) => m.state !== 'Z')) killGroup(this.state.pgid, 'SIGKILL');
  }

  /** Stops watching (the process itself is left alone). */
  close(): void {
    clearInterval(this.#poller);
  }

  #check(unknownStatus: string): void {
    const stat = readProcStat(this.state.pid);
    if (stat === undefined || stat.startTime !== this.state.startTime) {
      this.#finish(unknownExit(unknownStatus));
    } else if (stat.state === 'Z') {
      // A zombie nobody will reap (its parent thread is gone) still holds its wait status.
      this.#finish(stat.exitCode === undefined ? unknownExit(unknownStatus) : fromWaitStatus(stat.exitCode));
    }
  }

  #finish(result: ExitResult): void {
    if (this.#result) return;
    this.#result = result;
    this.#completedAt = new Date().toISOString();
    clearInterval(this.#poller);
    this.#exit.abort();
    for (const listener of [...this.#exitListeners]) listener(result);
    this.#exitListeners.clear();
  }
}

function unknownExit(err: string): ExitResult {
  return { exitCode: -1, signal: null, oomKilled: false, err };
}

/** The ExitResult of a waitpid() status word. */
export function fromWaitStatus(status: number): ExitResult {
  const signal = status & 0x7f;
  if (signal === 0) return { exitCode: (status >> 8) & 0xff, signal: null, oomKilled: false };
  const name = signalNames.get(signal);
  return name === undefined ? { exitCode: 128 + signal, signal: `signal ${signal}`, oomKilled: false } : signalExit(name);
}

/** Signals a process group; false if it no longer exists. */
export function killGroup(pgid: number, signal: string): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** Whether any process (zombies included) is still in the group: signal 0 checks without sending. */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
