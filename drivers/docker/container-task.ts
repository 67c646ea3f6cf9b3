/**
 * One task's container as the driver watches it: when it exits and how, its output on the way
 * to the task's log files, and which signals the driver sent it (a 137 is only reported as
 * SIGKILL when the driver sent SIGKILL). The wait on the container has no deadline: the
 * container may outlive this driver, and a wait that times out would report a healthy task dead.
 */
import type Docker from 'dockerode';
import { signalNumber, type ExitResult, type TaskConfig } from '../../shared/driver.js';
import { CancelledError } from '../../shared/errors.js';
import { shortCall } from './docker-client.js';
import { daemonMessage } from './daemon-message.js';
import { isAbort, isNotFound } from './docker-errors.js';
import { copyLogs } from './container-logs.js';
import { waitContainer } from './container-wait.js';
import { pause } from '../../shared/pause.js';

/** What the task handle carries: enough to find the container and its image again. */
export interface DriverState {
  containerId: string;
  containerName: string;
  /** The image id (sha256:...), whose reference count the task holds. */
  imageId: string;
  /** The reference the container was created with. */
  image: string;
}

export type ContainerState = Docker.ContainerInspectInfo['State'];

/** How long, after the container exits, its log follow may take to deliver the last lines. */
const logDrainMs = 10_000;

/** Between attempts to reach an Engine that stopped answering while we waited. */
const retryMs = { first: 250, max: 5_000 };

export interface ContainerTaskOptions {
  container: Docker.Container;
  config: TaskConfig;
  state: DriverState;
  /** ISO time the container started. */
  startedAt: string;
  /** Task events: exits, lost contact with the Engine, log errors. */
  emit: (message: string, annotations?: Record<string, string>) => void;
}

export class ContainerTask {
  readonly container: Docker.Container;
  readonly config: TaskConfig;
  readonly state: DriverState;
  readonly startedAt: string;
  readonly #emit: ContainerTaskOptions['emit'];
  /** Aborts once the exit result is known: stops stats streams and stop timers. */
  readonly #exited = new AbortController();
  /** Aborts when the driver stops watching (shutdown, destroy): ends waits and log copies. */
  readonly #closed = new AbortController();
  /** Signals the driver sent; only these explain an exit code of 128+n. */
  readonly #sent = new Set<string>();
  readonly #done: Promise<ExitResult>;
  #resolve!: (result: ExitResult) => void;
  #result: ExitResult | undefined;
  #completedAt: string | undefined;
  #logs: Promise<void> = Promise.resolve();
  /** Aborts the log copy when it has not finished well after the exit. */
  readonly #logsGiveUp = new AbortController();

  constructor(options: ContainerTaskOptions) {
    this.container = options.container;
    this.config = options.config;
    this.state = options.state;
    this.startedAt = options.startedAt;
    this.#emit = options.emit;
    this.#done = new Promise((resolve) => (this.#resolve = resolve));
  }

  get running(): boolean {
    return this.#result === undefined;
  }

  get result(): ExitResult | undefined {
    return this.#result;
  }

  get completedAt(): string | undefined {
    return this.#completedAt;
  }

  /** Aborts when the task has exited (and its output is in the files). */
  get exitSignal(): AbortSignal {
    return this.#exited.signal;
  }

  /** Remembers that the driver sent `signal`, so an exit it caused is reported as such. */
  noteSignal(signal: string): void {
    this.#sent.add(signal);
  }

  /**
   * Follows the container's output into the task's files. `since` (per stream, ms) skips what an
   * earlier driver instance already wrote; `follow: false` copies what is there and stops.
   */
  copyLogs(options: { follow: boolean; since?: { stdout?: number | undefined; stderr?: number | undefined } }): void {
    const signal = AbortSignal.any([this.#closed.signal, this.#logsGiveUp.signal]);
    this.#logs = copyLogs(this.container, this.config, { ...options, signal }, (err, resuming) =>
      this.#emit(resuming ? `log stream interrupted (${daemonMessage(err)}); resuming` : `log collection failed: ${daemonMessage(err)}`),
    );
  }

  /**
   * Watches for the exit. `armed` is a `next-exit` wait issued before the container was started;
   * a `not-running` wait issued now covers the case where the Engine registered that one too
   * late. Whichever answers first wins and the other is aborted; the exit itself is then read
   * from the container's state, never from the wait's status code.
   */
  watch(armed?: { wait: Promise<unknown>; abort: AbortController }): void {
    void this.#watch(armed);
  }

  /** Records the exit of a container already known to have stopped (recovery). */
  async finish(state: ContainerState): Promise<void> {
    if (this.#result !== undefined) return;
    const timer = setTimeout(() => this.#logsGiveUp.abort(), logDrainMs);
    try {
      await this.#logs;
    } finally {
      clearTimeout(timer);
    }
    if (this.#result !== undefined) return;
    const result = this.exitResultOf(state);
    // Events first: whoever waits on the exit then finds them already sent.
    if (result.oomKilled) this.#emit('OOM killed: the container went over its memory limit', { oomKilled: 'true' });
    this.#emit(describeExit(result), exitAnnotations(result));
    this.#result = result;
    this.#completedAt = isoTime(state.FinishedAt);
    this.#exited.abort();
    this.#resolve(result);
  }

  /** The ExitResult for a stopped container's state, as far as the Engine and this driver know. */
  exitResultOf(state: ContainerState): ExitResult {
    const result: ExitResult = { exitCode: state.ExitCode, signal: this.#signalFor(state.ExitCode), oomKilled: state.OOMKilled === true };
    if (state.Error) result.err = state.Error;
    return result;
  }

  /** Resolves with the exit result; `signal` aborts only this wait. */
  wait(signal?: AbortSignal): Promise<ExitResult> {
    if (this.#result !== undefined) return Promise.resolve(this.#result);
    const stops = [signal, this.#closed.signal].filter((s): s is AbortSignal => s !== undefined);
    const stop = AbortSignal.any(stops);
    if (stop.aborted) return Promise.reject(this.#cancelled(signal));
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(this.#cancelled(signal));
      stop.addEventListener('abort', onAbort, { once: true });
      void this.#done.then((result) => {
        stop.removeEventListener('abort', onAbort);
        resolve(result);
      });
    });
  }

  /** Whether the task exits within `ms`. */
  async exitedWithin(ms: number): Promise<boolean> {
    if (this.#result !== undefined) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    try {
      return await Promise.race([this.#done.then(() => true as const), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops watching: waits, log copies and retries end; the container is left as it is. */
  close(): void {
    this.#closed.abort();
  }

  async #watch(armed?: { wait: Promise<unknown>; abort: AbortController }): Promise<void> {
    const closed = this.#closed.signal;
    let delay = retryMs.first;
    let reported = false;
    while (!closed.aborted) {
      const current = new AbortController();
      const waits: Promise<unknown>[] = [waitContainer(this.container, 'not-running', AbortSignal.any([current.signal, closed]))];
      if (armed) waits.unshift(armed.wait);
      try {
        await Promise.any(waits).catch((err: AggregateError) => {
          // The not-running wait is the one whose failure says something.
          throw err.errors.at(-1);
        });
        const info = await this.container.inspect({ abortSignal: shortCall(closed) });
        // Restarted behind our back (or a stale next-exit): keep waiting.
        if (!info.State.Running) return await this.finish(info.State);
      } catch (err) {
        if (closed.aborted) return;
        if (isNotFound(err)) return await this.#removedOutOfBand();
        if (!reported && !isAbort(err)) {
          reported = true;
          this.#emit(`lost contact with the Docker Engine while waiting for the container (${daemonMessage(err)}); still trying`);
        }
        await pause(delay, closed);
        delay = Math.min(delay * 2, retryMs.max);
      } finally {
        current.abort();
        armed?.abort.abort();
        armed = undefined;
      }
    }
  }

  async #removedOutOfBand(): Promise<void> {
    this.#logsGiveUp.abort();
    await this.#logs;
    if (this.#result !== undefined) return;
    const result: ExitResult = {
      exitCode: -1,
      signal: null,
      oomKilled: false,
      err: `container ${this.state.containerName} was removed outside taskhost; how it ended is unknown`,
    };
    this.#emit(result.err!);
    this.#result = result;
    this.#completedAt = new Date().toISOString();
    this.#exited.abort();
    this.#resolve(result);
  }

  #signalFor(exitCode: number): string | null {
    if (exitCode <= 128) return null;
    for (const name of this.#sent) if (signalNumber(name) === exitCode - 128) return name;
    return null;
  }

  #cancelled(signal: AbortSignal | undefined): CancelledError {
    return this.#closed.signal.aborted && !signal?.aborted
      ? new CancelledError(`the docker driver stopped watching task "${this.config.id}"`)
      : new CancelledError(`waitTask("${this.config.id}") was cancelled by the caller`);
  }
}

/** An Engine time as ISO-8601, or undefined for its zero time ("0001-01-01T00:00:00Z"). */
export function isoTime(value: string | undefined): string | undefined {
  if (!value || value.startsWith('0001-')) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : undefined;
}

function describeExit(result: ExitResult): string {
  const how = result.signal !== null ? `killed by ${result.signal} (exit code ${result.exitCode})` : `exited with code ${result.exitCode}`;
  return result.err ? `${how}: ${result.err}` : how;
}

function exitAnnotations(result: ExitResult): Record<string, string> {
  const annotations: Record<string, string> = { exitCode: String(result.exitCode), oomKilled: String(result.oomKilled) };
  if (result.signal !== null) annotations.signal = result.signal;
  return annotations;
}
