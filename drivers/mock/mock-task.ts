/**
 * One scripted task of the mock driver. Its whole future is fixed when it starts
 * (MockTaskState), so a fresh driver can rebuild it from the handle's driverState and it ends
 * exactly when and how it would have.
 */
import {
  signalExit,
  signalNumber,
  type ExecResult,
  type ExitResult,
  type TaskConfig,
  type TaskEvent,
  type TaskResourceUsage,
  type TaskStatus,
} from '../../shared/driver.js';
import { formatDuration, parseDuration } from '../../shared/duration.js';
import { CancelledError, PluginError, TaskNotRunningError } from '../../shared/errors.js';
import type { EventHub } from '../../shared/event-hub.js';
import type { MockTaskConfig } from './mock-task-config.js';
import { pause } from '../../shared/pause.js';

/** The handle's driverState (version 1): everything the task will do, in plain JSON. */
export interface MockTaskState {
  /** Unix time in ms. */
  startedAt: number;
  runForMs: number;
  /** How the task ends when nobody stops it. */
  exit: ExitResult;
  stopIgnored: boolean;
  stats: { cpuPercent: number; rssBytes: number };
  recoverError?: string;
  signalError?: string;
  exec?: { stdout: string; stderr: string; exitCode: number };
}

export class MockTask {
  readonly config: TaskConfig;
  readonly state: MockTaskState;
  /** Rebuilt by recoverTask rather than started by this driver instance. */
  readonly recovered: boolean;
  readonly #events: EventHub<TaskEvent>;
  readonly #exitListeners = new Set<(result: ExitResult) => void>();
  #exit: { result: ExitResult; at: number } | undefined;
  #runTimer: NodeJS.Timeout | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  #killAt: number | undefined;

  private constructor(config: TaskConfig, state: MockTaskState, events: EventHub<TaskEvent>, recovered: boolean) {
    this.config = config;
    this.state = state;
    this.#events = events;
    this.recovered = recovered;
  }

  /** Starts a task that runs for its scripted time; even "0s" exits on a later turn, after the start. */
  static start(config: TaskConfig, script: MockTaskConfig, events: EventHub<TaskEvent>): MockTask {
    const task = new MockTask(config, stateOf(script, Date.now()), events, false);
    task.#emit(`started; exits by itself after ${formatDuration(task.state.runForMs)}`);
    task.#scheduleExit(task.state.runForMs);
    return task;
  }

  /** Rebuilds a task: still running with the time it has left, or exited at its scripted time. */
  static recover(config: TaskConfig, state: MockTaskState, events: EventHub<TaskEvent>): MockTask {
    const task = new MockTask(config, state, events, true);
    const deadline = state.startedAt + state.runForMs;
    const left = deadline - Date.now();
    if (left > 0) {
      task.#emit(`recovered; exits by itself at ${new Date(deadline).toISOString()}`);
      task.#scheduleExit(left);
    } else {
      task.#exit = { result: state.exit, at: deadline };
      task.#emit(`recovered after its run had ended: ${describeExit(state.exit)}`);
    }
    return task;
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Calls `listener` once the task has exited (at once if it has); returns how to cancel that. */
  onExit(listener: (result: ExitResult) => void): () => void {
    if (this.#exit) {
      listener(this.#exit.result);
      return () => undefined;
    }
    this.#exitListeners.add(listener);
    return () => this.#exitListeners.delete(listener);
  }

  /** The exit result once the task has exited; rejects with CancelledError when `signal` aborts first. */
  wait(signal: AbortSignal): Promise<ExitResult> {
    if (this.#exit) return Promise.resolve(this.#exit.result);
    const cancelled = () => new CancelledError(`waiting for task "${this.config.id}" was cancelled`, { cause: signal.reason });
    if (signal.aborted) return Promise.reject(cancelled());
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        stopListening();
        reject(cancelled());
      };
      const stopListening = this.onExit((result) => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      });
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Sends the stop signal and resolves once the task has exited. A task that ignores it is
   * killed with SIGKILL after `timeoutMs` (or exits by itself before that).
   */
  async stop(timeoutMs: number, killSignal: string | undefined): Promise<void> {
    if (!this.running) return;
    const name = killSignal ?? this.config.killSignal ?? 'SIGTERM';
    if (this.state.stopIgnored && name !== 'SIGKILL') {
      // Each stop promises a kill within its own timeout, so the earliest kill wins.
      const killAt = Date.now() + timeoutMs;
      if (this.#killAt === undefined || killAt < this.#killAt) {
        this.#killAt = killAt;
        clearTimeout(this.#killTimer);
        this.#killTimer = setTimeout(() => this.#end(signalExit('SIGKILL')), timeoutMs).unref();
        this.#emit(`ignored ${name}; killing it with SIGKILL in ${formatDuration(timeoutMs)}`);
      } else {
        this.#emit(`ignored ${name}`);
      }
    } else {
      this.#emit(`stopping with ${name}`);
      this.#end(signalExit(name));
    }
    await new Promise<void>((resolve) => this.onExit(() => resolve()));
  }

  /** Ends the task at once, as if `name` killed it (nothing happens once it has exited). */
  kill(name: string): void {
    this.#end(signalExit(name));
  }

  /** Delivers a signal: SIGKILL always ends the task, SIGTERM and SIGINT unless it ignores stops. */
  signal(name: string): void {
    if (this.state.signalError !== undefined) throw new PluginError(this.state.signalError);
    if (signalNumber(name) === undefined) throw new PluginError(`"${name}" is not a signal this system knows`);
    if (!this.running) throw new TaskNotRunningError(`task "${this.config.id}" has exited; it cannot receive ${name}`);
    const asksToStop = name === 'SIGTERM' || name === 'SIGINT';
    const ignored = asksToStop && this.state.stopIgnored;
    this.#emit(ignored ? `received ${name}; ignored` : `received ${name}`);
    if (name === 'SIGKILL' || (asksToStop && !ignored)) this.#end(signalExit(name));
  }

  /** The scripted result of running `command` in the task; it runs nothing. */
  exec(command: string[]): ExecResult {
    if (command.length === 0) throw new PluginError('execTask needs a command');
    if (!this.running) throw new TaskNotRunningError(`task "${this.config.id}" has exited; nothing can run in it`);
    const echo = { stdout: `${command.join(' ')}\n`, stderr: '', exitCode: 0 };
    const { stdout, stderr, exitCode } = this.state.exec ?? echo;
    return { stdout, stderr, exitResult: { exitCode, signal: null, oomKilled: false } };
  }

  /** The scripted usage at once, then every `intervalMs`, until the task exits or `signal` aborts. */
  async *stats(intervalMs: number, signal: AbortSignal): AsyncGenerator<TaskResourceUsage> {
    while (this.running && !signal.aborted) {
      yield {
        taskId: this.config.id,
        timestamp: Date.now(),
        cpu: { percent: this.state.stats.cpuPercent },
        memory: { rssBytes: this.state.stats.rssBytes },
        measured: [],
      };
      await pause(intervalMs, signal, (wake) => this.onExit(wake));
    }
  }

  status(): TaskStatus {
    const status: TaskStatus = {
      id: this.config.id,
      name: this.config.name,
      state: this.running ? 'running' : 'exited',
      startedAt: new Date(this.state.startedAt).toISOString(),
      driverAttributes: { runFor: formatDuration(this.state.runForMs), recovered: String(this.recovered) },
    };
    if (this.#exit) {
      status.completedAt = new Date(this.#exit.at).toISOString();
      status.exitResult = this.#exit.result;
    }
    return status;
  }

  #scheduleExit(ms: number): void {
    // The scripted exit time, not the timer's (late) firing time, so a recovered task and the
    // one it replaces agree on when it ended.
    const at = this.state.startedAt + this.state.runForMs;
    this.#runTimer = setTimeout(() => {
      // Timers run on the monotonic clock and may fire a little before the wall clock reaches
      // `at`; ending then would let a fresh instance recovering the handle at that moment see
      // a task that has not yet ended. So the task ends when the wall clock says so.
      const early = at - Date.now();
      if (early > 0) this.#scheduleExit(early);
      else this.#end(this.state.exit, at);
    }, ms).unref();
  }

  #end(result: ExitResult, at = Date.now()): void {
    if (this.#exit) return;
    this.#exit = { result, at };
    clearTimeout(this.#runTimer);
    clearTimeout(this.#killTimer);
    this.#emit(describeExit(result));
    const listeners = [...this.#exitListeners];
    this.#exitListeners.clear();
    for (const listener of listeners) listener(result);
  }

  #emit(message: string): void {
    this.#events.emit({
      taskId: this.config.id,
      taskName: this.config.name,
      allocId: this.config.allocId,
      timestamp: new Date().toISOString(),
      message,
    });
  }
}

function stateOf(script: MockTaskConfig, startedAt: number): MockTaskState {
  const state: MockTaskState = {
    startedAt,
    runForMs: parseDuration(script.runFor),
    exit:
      script.exitSignal === undefined
        ? { exitCode: script.exitCode, signal: null, oomKilled: script.oomKilled }
        : signalExit(script.exitSignal, script.oomKilled),
    stopIgnored: script.stopIgnored,
    stats: script.stats,
  };
  if (script.recoverError !== undefined) state.recoverError = script.recoverError;
  if (script.signalError !== undefined) state.signalError = script.signalError;
  if (script.exec !== undefined) state.exec = script.exec;
  return state;
}

function describeExit(result: ExitResult): string {
  const how = result.signal ? `killed by ${result.signal} (exit code ${result.exitCode})` : `exited with code ${result.exitCode}`;
  return result.oomKilled ? `${how}, out of memory` : how;
}
