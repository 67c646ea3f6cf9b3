/**
 * `taskhost run F`: runs one task to completion. The task's own output is streamed as it comes
 * (stdout to stdout, stderr to stderr; with --json both go to stderr so that stdout holds only
 * the result document), events go to stderr, and Ctrl-C, SIGTERM or SIGHUP stop the task within
 * its kill timeout (a second signal kills it at once): a `taskhost run` that is told to go away
 * never leaves its task behind. A signal before the task has started cancels the start.
 */
import type { Logger } from 'pino';
import { signalNumber, type ExitResult, type TaskEvent } from '../shared/driver.js';
import { InvalidConfigError, TaskhostError } from '../shared/errors.js';
import { formatDuration } from '../shared/duration.js';
import type { AgentConfig } from '../plugin-loader/agent-config.js';
import { PluginLoader } from '../plugin-loader/loader.js';
import { DriverManager } from '../drivers/driver-manager.js';
import { loadTaskSpec } from '../drivers/prepare-task.js';
import { unknownDriverIssue } from '../drivers/unknown-driver-issue.js';
import { DeviceManager, type DeviceReservation } from '../devices/device-manager.js';
import { followFile } from './follow-file.js';
import { isPullEvent, PullProgressBar } from './pull-progress.js';
import type { CliIO } from './main.js';

export interface RunResult {
  taskId: string;
  name: string;
  driver: string;
  exitCode: number;
  signal: string | null;
  oomKilled: boolean;
  err?: string;
  durationMs: number;
  stdoutPath: string;
  stderrPath: string;
  events: { time: string; message: string; annotations?: Record<string, string> }[];
}

export interface RunOptions {
  file: string;
  json: boolean;
  config: AgentConfig;
  logger: Logger;
  io: CliIO;
  /** Where Ctrl-C, SIGTERM and SIGHUP come from (the process, or a test). */
  interrupts?: Interrupts;
}

/** The signals that stop a `taskhost run` and its task. */
export const stopSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type StopSignal = (typeof stopSignals)[number];

/** An emitter of stop signals: `process`, or a test's EventEmitter. */
export interface Interrupts {
  on(event: StopSignal, fn: () => void): unknown;
  off(event: StopSignal, fn: () => void): unknown;
}

/** Runs the task; resolves with the process exit code (the task's own, or 1 when it could not run). */
export async function runTask(options: RunOptions): Promise<number> {
  const { io, json, config } = options;
  const spec = await loadTaskSpec(options.file);
  // Only what this task needs: its driver, and the device plugins when it asks for devices.
  const only = { names: [spec.driver], types: spec.devices?.length ? (['device'] as const) : [] };
  const loader = new PluginLoader({ config, logger: options.logger, only });
  const manager = new DriverManager({ loader, logger: options.logger });
  // Device plugins are only followed for a task that asks for devices.
  const devices = spec.devices?.length ? new DeviceManager({ loader, logger: options.logger }) : undefined;
  let reservation: DeviceReservation | undefined;
  const events: RunResult['events'] = [];
  const say = (message: string) => io.stderr.write(`taskhost: ${message}\n`);
  const interrupts = options.interrupts ?? process;
  const following = new AbortController();
  // Listened to from the start, so a signal while plugins load or an image is pulled cancels
  // the start instead of killing this process with a container on its way.
  const cancelled = new AbortController();
  let onStarted: ((signal: StopSignal, count: number) => void) | undefined;
  let signals = 0;
  const handlers = stopSignals.map((signal) => {
    const handler = () => {
      signals++;
      if (onStarted) onStarted(signal, signals);
      else if (!cancelled.signal.aborted) {
        say(`${signal}: cancelling ${spec.name} before it started`);
        cancelled.abort(signal);
      }
    };
    interrupts.on(signal, handler);
    return [signal, handler] as const;
  });
  const notCancelled = () => {
    if (cancelled.signal.aborted) throw new NotStarted(cancelled.signal.reason as StopSignal);
  };
  try {
    // A clear error for an unknown driver, before anything else: it lists every driver the
    // agent has, not only the one this command would have started.
    const unknown = await unknownDriverIssue(spec.driver, loader);
    if (unknown) throw new InvalidConfigError(`${options.file}: /driver: ${unknown.message}`, { details: { errors: [unknown] } });
    await untilCancelled(manager.start(), cancelled.signal);
    await untilCancelled(manager.waitForFirstFingerprint(10_000), cancelled.signal);
    notCancelled();
    const health = manager.health().find((h) => h.name === spec.driver)!;
    if (health.health !== 'healthy') {
      say(`driver "${spec.driver}" is ${health.health}: ${health.healthDescription}`);
      return 1;
    }
    const record = (message: string, annotations?: Record<string, string>) => {
      events.push({ time: new Date().toISOString(), message, ...(annotations ? { annotations } : {}) });
      if (!json) say(`[${spec.name}] ${message}`);
    };
    if (devices && spec.devices) {
      await untilCancelled(devices.waitForFirstFingerprint(10_000), cancelled.signal);
      notCancelled();
      reservation = await devices.reserve(spec.devices, { owner: spec.name });
      for (const d of reservation.devices) record(`reserved ${d.group}: ${d.ids.join(', ')}`, { group: d.group, devices: d.ids.join(',') });
    }
    const task = await manager.prepare(spec, {
      hostEnv: process.env,
      hostEnvAllow: config.hostEnvAllow,
      ...(reservation ? { reservation: reservation.reservation } : {}),
    });
    notCancelled();
    // On a terminal, pull progress is one bar instead of a line per update.
    const bar = !json && process.stderr.isTTY && io.stderr === process.stderr ? new PullProgressBar(process.stderr) : undefined;
    manager.on('taskEvent', (_driver: string, event: TaskEvent) => {
      if (event.taskId !== task.id) return;
      if (bar && isPullEvent(event)) {
        events.push({ time: event.timestamp, message: event.message, ...(event.annotations ? { annotations: event.annotations } : {}) });
        bar.update(event);
        return;
      }
      bar?.stop();
      record(event.message, event.annotations);
    });
    const out = json ? io.stderr : io.stdout;
    const followers = [
      followFile(task.stdoutPath, (chunk) => out.write(chunk), following.signal),
      followFile(task.stderrPath, (chunk) => io.stderr.write(chunk), following.signal),
    ];
    const started = performance.now();
    const stop = (signal: StopSignal, count: number) => {
      if (count === 1) {
        const up = `up to ${formatDuration(task.killTimeoutMs)}`;
        say(
          signal === 'SIGINT'
            ? `stopping ${spec.name} (${up}; Ctrl-C again to kill it now)`
            : `${signal}: stopping ${spec.name} (${up}; a second signal kills it now)`,
        );
        manager.stopTask(task.id).catch((err: unknown) => say(`stop failed: ${(err as Error).message}`));
      } else {
        say(`killing ${spec.name}`);
        manager.stopTask(task.id, 0, 'SIGKILL').catch((err: unknown) => say(`kill failed: ${(err as Error).message}`));
      }
    };
    try {
      await manager.startTask(task, cancelled.signal);
    } catch (err) {
      notCancelled(); // a start cut short by a signal is a cancellation, not a failure
      throw err;
    }
    onStarted = stop;
    // A signal that came while the start was finishing: the task is stopped at once.
    if (cancelled.signal.aborted) stop(cancelled.signal.reason as StopSignal, 1);
    let exit: ExitResult;
    try {
      exit = await manager.waitTask(task.id);
      await quiet(() => events.length, 100, 1_000);
    } finally {
      following.abort();
      await Promise.all(followers);
    }
    const durationMs = Math.round(performance.now() - started);
    await manager.destroyTask(task.id, true).catch(() => undefined);
    const result: RunResult = {
      taskId: task.id,
      name: spec.name,
      driver: spec.driver,
      exitCode: exit.exitCode,
      signal: exit.signal,
      oomKilled: exit.oomKilled,
      ...(exit.err ? { err: exit.err } : {}),
      durationMs,
      stdoutPath: task.stdoutPath,
      stderrPath: task.stderrPath,
      events,
    };
    if (json) io.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else say(describeExit(spec.name, exit, durationMs));
    return exitCodeOf(exit);
  } catch (err) {
    if (err instanceof NotStarted) {
      say(`task ${spec.name} was not started: ${err.signal} arrived first`);
      return 128 + (signalNumber(err.signal) ?? 0);
    }
    if (err instanceof TaskhostError && err.code !== 'INVALID_CONFIG') {
      say(`task ${spec.name} could not run: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    following.abort();
    for (const [signal, handler] of handlers) interrupts.off(signal, handler);
    if (reservation) devices?.release(reservation.id);
    await devices?.close();
    await manager.close();
    await loader.close();
  }
}

/** A stop signal came before the task started; nothing runs. */
class NotStarted extends Error {
  readonly signal: StopSignal;
  constructor(signal: StopSignal) {
    super(`cancelled by ${signal}`);
    this.signal = signal;
  }
}

/** `work`, or sooner when `signal` aborts (work goes on, unheard; the caller then gives up). */
async function untilCancelled<T>(work: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return undefined;
  let onAbort!: () => void;
  const aborted = new Promise<undefined>((resolve) =>
    signal.addEventListener('abort', (onAbort = () => resolve(undefined)), { once: true }),
  );
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Events come over their own stream, so the last ones (the exit) can trail the wait's result:
 * wait until no new one has arrived for `idleMs`, at most `maxMs`.
 */
async function quiet(count: () => number, idleMs: number, maxMs: number): Promise<void> {
  const deadline = performance.now() + maxMs;
  let seen = count();
  for (;;) {
    await new Promise((r) => setTimeout(r, idleMs));
    if (count() === seen || performance.now() > deadline) return;
    seen = count();
  }
}

function describeExit(name: string, exit: ExitResult, ms: number): string {
  const how = exit.signal ? `was killed by ${exit.signal} (exit code ${exit.exitCode})` : `exited with code ${exit.exitCode}`;
  return `task ${name} ${how}${exit.oomKilled ? ', out of memory' : ''}${exit.err ? ` (${exit.err})` : ''} after ${formatDuration(ms)}`;
}

/** The process exit code for a task's result: its own code, 1 when it is unknown. */
function exitCodeOf(exit: ExitResult): number {
  if (exit.exitCode >= 0 && exit.exitCode <= 255) return exit.exitCode;
  return 1;
}
