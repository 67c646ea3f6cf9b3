/**
 * The process group of one raw_exec task and the executor that started it (executor.ts). The
 * executor is the task's parent and records its exit in a file; the driver watches the executor:
 * as its own child when it started it, through /proc when it adopted it after a restart. Either
 * way the exit comes from the executor's file, so a task that exited while no driver ran still
 * reports its real exit code. An executor that was itself killed leaves the task an orphan,
 * watched through /proc, whose exit status nobody can read.
 */
import { type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { signalExit, type ExitResult } from '../../shared/driver.js';
import { CancelledError } from '../../shared/errors.js';
import { fromShellStatus, readExitFile, startExecutor, type ExecutorOptions, type RunFiles } from './executor.js';
import { groupMembers } from './group-usage.js';
import { readProcStat } from './proc-stat.js';

/** What a TaskHandle's driverState holds: enough to find the task's processes after a restart. */
export interface DriverState {
  pid: number;
  /** The task leads its own process group, so this equals pid. */
  pgid: number;
  /** Field 22 of /proc/<pid>/stat: tells the task from a later process that got the same pid. */
  startTime: number;
  /** ISO time. */
  startedAt: string;
  /** The executor's pid and start time; absent in handles of version 1, which had no executor. */
  executorPid?: number;
  executorStartTime?: number;
}

/** How often an adopted process is looked at. */
const pollMs = 200;

export const exitedUnwatched = 'the task exited while the driver was not running; its exit status is unknown';
const reapedElsewhere = 'the task exited but another process reaped it; its exit status is unknown';
export const executorLost = "the task's executor was killed before it could record the exit; the exit status is unknown";

const signalNames = new Map<number, string>();
for (const [name, number] of Object.entries(constants.signals)) if (!signalNames.has(number)) signalNames.set(number, name);

export class TaskProcess {
  readonly state: DriverState;
  readonly #files: RunFiles;
  #result: ExitResult | undefined;
  #completedAt: string | undefined;
  readonly #exit = new AbortController();
  readonly #exitListeners = new Set<(result: ExitResult) => void>();
  #waiters = 0;
  /** The executor child or the poll timer: unref'd, so the driver alone keeps no process alive, but ref'd while someone waits. */
  #handle: { ref(): unknown; unref(): unknown } | undefined;
  #poller: NodeJS.Timeout | undefined;
  /** Whom the poller watches: the executor, or (no executor left) the task itself. */
  #watching: 'executor' | 'task' = 'executor';

  private constructor(state: DriverState, files: RunFiles) {
    this.state = state;
    this.#files = files;
  }

  /** Starts the task under a new executor. Rejects with the spawn error (E2BIG), or if the executor fails before the task starts. */
  static async spawn(options: ExecutorOptions, tools: { setsid: string; mv: string }): Promise<TaskProcess> {
    const startedAt = new Date().toISOString();
    const { child, record } = await startExecutor(options, tools);
    const task = new TaskProcess({ ...record, startedAt }, options.files);
    task.#handle = child;
    child.unref();
    if (child.exitCode !== null || child.signalCode !== null) task.#childExited(child);
    else child.once('exit', () => task.#childExited(child));
    return task;
  }

  /**
   * Re-attaches to a task an earlier driver started: its recorded exit at once if its executor is
   * gone, else the executor is watched. A state without an executor (a version 1 handle) is
   * watched as the task alone, as before the executor existed.
   */
  static adopt(state: DriverState, files: RunFiles): TaskProcess {
    const task = new TaskProcess(state, files);
    if (state.executorPid === undefined) task.#watchTask(exitedUnwatched);
    else task.#checkExecutor();
    if (task.#result === undefined) task.#poll();
    return task;
  }

  get running(): boolean {
    return this.#result === undefined;
  }

  get result(): ExitResult | undefined {
    return this.#result;
  }

  /** ISO time the task exited (as the executor recorded it), or the driver saw it exit. */
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

  /** Sends a signal to the task's process group; false if the task has already exited. */
  signal(name: string): boolean {
    // What is watched through /proc may have exited since the last poll: look again first.
    if (this.#poller && !this.#result) this.#check();
    if (this.#result) return false;
    if (killGroup(this.state.pgid, name)) return true;
    // For a moment after its record is written the task is still the executor's subshell,
    // before setsid(1) made its group: it alone is signalled then.
    if (!this.#taskIsLive()) return false;
    try {
      process.kill(this.state.pid, name);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
      throw err;
    }
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

  /** Stops watching (the processes themselves are left alone). */
  close(): void {
    clearInterval(this.#poller);
  }

  /** The executor this driver started has exited: its record says how the task ended. */
  #childExited(child: ChildProcess): void {
    this.#executorGone(child.exitCode ?? undefined);
  }

  /** Polls the executor or, once there is none, the task. */
  #poll(): void {
    clearInterval(this.#poller);
    const poller = setInterval(() => this.#check(), pollMs);
    poller.unref();
    if (this.#waiters > 0) poller.ref();
    this.#poller = poller;
    this.#handle = poller;
  }

  #check(): void {
    if (this.#watching === 'executor') this.#checkExecutor();
    else this.#watchTask(reapedElsewhere);
  }

  #checkExecutor(): void {
    const stat = readProcStat(this.state.executorPid!);
    if (stat === undefined || stat.startTime !== this.state.executorStartTime) return this.#executorGone(undefined);
    if (stat.state !== 'Z') return;
    // The executor's parent thread (a driver's worker) is gone, so nobody reaps it: its exit
    // status, which is the task's shell status, is still in its zombie.
    const status = stat.exitCode;
    this.#executorGone(status !== undefined && (status & 0x7f) === 0 ? (status >> 8) & 0xff : undefined);
  }

  /**
   * The executor is gone: its exit file says how the task ended. Without one (the executor was
   * killed, or could not write it) the task may live on, an orphan watched alone; or it is gone,
   * and the executor's own exit status (which is the task's) is the last word, where there is one.
   */
  #executorGone(shellStatus: number | undefined): void {
    if (this.#result) return;
    let recorded: ReturnType<typeof readExitFile>;
    try {
      recorded = readExitFile(this.#files.exit);
    } catch (err) {
      return this.#finish(unknownExit((err as Error).message));
    }
    // A file's time comes from the kernel's coarse clock, which may lag this one by a tick.
    if (recorded)
      return this.#finish(recorded.result, recorded.completedAt < this.state.startedAt ? this.state.startedAt : recorded.completedAt);
    if (this.#taskIsLive()) {
      this.#watching = 'task';
      if (!this.#poller) this.#poll();
      return;
    }
    this.#finish(shellStatus === undefined ? unknownExit(executorLost) : fromShellStatus(shellStatus));
  }

  /** Checks the task itself, with no executor to ask. */
  #watchTask(unknownStatus: string): void {
    this.#watching = 'task';
    const stat = readProcStat(this.state.pid);
    if (stat === undefined || stat.startTime !== this.state.startTime) {
      this.#finish(unknownExit(unknownStatus));
    } else if (stat.state === 'Z') {
      // A zombie nobody will reap (its parent thread is gone) still holds its wait status.
      this.#finish(stat.exitCode === undefined ? unknownExit(unknownStatus) : fromWaitStatus(stat.exitCode));
    }
  }

  /** The task's own process is there, running (not a zombie), and is still the task. */
  #taskIsLive(): boolean {
    const stat = readProcStat(this.state.pid);
    return stat !== undefined && stat.startTime === this.state.startTime && stat.state !== 'Z';
  }

  #finish(result: ExitResult, completedAt = new Date().toISOString()): void {
    if (this.#result) return;
    this.#result = result;
    this.#completedAt = completedAt;
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
