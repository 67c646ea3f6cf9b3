/**
 * The mock driver, built in for tests and demos, after Nomad's: each task follows the script in
 * its config (how long it runs, how it ends, how it answers stops, signals, exec and stats) and
 * runs nothing. Its handles carry the whole script, so a fresh instance recovers every task.
 */
import { appendFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import type {
  DriverCapabilities,
  DriverFingerprint,
  DriverPlugin,
  ExecResult,
  ExitResult,
  TaskConfig,
  TaskEvent,
  TaskHandle,
  TaskResourceUsage,
  TaskStatus,
} from '../../shared/driver.js';
import { Duration, parseDuration } from '../../shared/duration.js';
import { PluginError, TaskExistsError, TaskNotFoundError, TaskRunningError } from '../../shared/errors.js';
import { EventHub } from '../../shared/event-hub.js';
import type { PluginInfo, SetConfigRequest } from '../../shared/plugin.js';
import { compileSchema, parseWith } from '../../shared/schema.js';
import { MockTask, type MockTaskState } from './mock-task.js';
import { MockTaskConfig } from './mock-task-config.js';
import { pause } from '../../shared/pause.js';

export const MockConfig = Type.Object({
  fingerprintInterval: Duration({ default: '30s', description: 'how often fingerprint() reports' }),
  healthy: Type.Boolean({ default: true, description: 'the health fingerprint() reports' }),
});
export type MockConfig = Static<typeof MockConfig>;

/** The layout of driverState this driver writes (MockTaskState). */
const handleVersion = 1;

const validateConfig = compileSchema<MockConfig>(MockConfig);
const validateTaskConfig = compileSchema<MockTaskConfig>(MockTaskConfig);

export class MockDriver implements DriverPlugin<MockConfig> {
  // The schema's defaults until the host calls setConfig.
  #config = parseWith(validateConfig, {}, 'mock driver config');
  readonly #tasks = new Map<string, MockTask>();
  readonly #events = new EventHub<TaskEvent>();

  info(): PluginInfo {
    return { type: 'driver', name: 'mock', pluginVersion: '0.1.0', apiVersions: ['1.0'] };
  }

  configSchema(): typeof MockConfig {
    return MockConfig;
  }

  setConfig(request: SetConfigRequest<MockConfig>): void {
    this.#config = request.config;
  }

  taskConfigSchema(): typeof MockTaskConfig {
    return MockTaskConfig;
  }

  capabilities(): DriverCapabilities {
    return { sendSignals: true, exec: true, fsIsolation: 'none', networkModes: ['none', 'host'], mounts: false };
  }

  async *fingerprint(signal: AbortSignal): AsyncGenerator<DriverFingerprint> {
    const interval = parseDuration(this.#config.fingerprintInterval);
    while (!signal.aborted) {
      const healthy = this.#config.healthy;
      yield {
        health: healthy ? 'healthy' : 'unhealthy',
        healthDescription: healthy ? 'mock driver is ready' : 'mock driver configured unhealthy',
        attributes: { 'driver.mock': true },
      };
      await pause(interval, signal);
    }
  }

  /** Fails with the script's startError; otherwise writes its output and starts the clock. */
  async startTask(config: TaskConfig): Promise<{ handle: TaskHandle }> {
    if (this.#tasks.has(config.id)) throw new TaskExistsError(`task "${config.id}" already exists in the mock driver`);
    // The host has validated the config already; parsing again fills the defaults for callers
    // that drive the plugin directly, as tests do.
    const script = parseWith(validateTaskConfig, config.config, `the config of task "${config.id}"`);
    if (script.startError !== undefined) {
      throw new PluginError(script.startError, { recoverable: script.startErrorRecoverable });
    }
    // Synchronous, so no other start of the same id can slip in between the check and the set.
    appendFileSync(config.stdoutPath, script.stdout ?? '');
    appendFileSync(config.stderrPath, script.stderr ?? '');
    const task = MockTask.start(config, script, this.#events);
    this.#tasks.set(config.id, task);
    return { handle: { version: handleVersion, config, state: 'running', driverState: task.state } };
  }

  async waitTask(taskId: string, signal: AbortSignal): Promise<ExitResult> {
    return this.#task(taskId).wait(signal);
  }

  async stopTask(taskId: string, timeoutMs: number, killSignal?: string): Promise<void> {
    await this.#task(taskId).stop(timeoutMs, killSignal);
  }

  async destroyTask(taskId: string, force: boolean): Promise<void> {
    const task = this.#task(taskId);
    if (task.running) {
      if (!force) {
        throw new TaskRunningError(`task "${taskId}" is still running: stop it first, or destroy it with force`);
      }
      task.kill('SIGKILL');
    }
    this.#tasks.delete(taskId);
  }

  async inspectTask(taskId: string): Promise<TaskStatus> {
    return this.#task(taskId).status();
  }

  /** Rebuilds the task from the handle alone; a task this instance already has stays as it is. */
  async recoverTask(handle: TaskHandle): Promise<void> {
    const id = handle.config.id;
    if (this.#tasks.has(id)) return;
    // The host's intent handle of a start in flight when it died: the mock runs nothing, so a
    // task it has not kept is one it cannot find from its config.
    if (handle.driverState === null) throw new TaskNotFoundError(`the mock driver has no task "${id}": its start did not complete`);
    if (handle.version !== handleVersion) {
      throw new PluginError(
        `cannot recover task "${id}": its handle has driverState version ${handle.version}, this mock driver writes ${handleVersion}`,
      );
    }
    const state = handle.driverState as MockTaskState;
    if (state.recoverError !== undefined) throw new PluginError(state.recoverError);
    this.#tasks.set(id, MockTask.recover(handle.config, state, this.#events));
  }

  /** The first sample comes at once, the next ones every `intervalMs`. */
  async *taskStats(taskId: string, intervalMs: number, signal: AbortSignal): AsyncGenerator<TaskResourceUsage> {
    const task = this.#task(taskId);
    if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be a positive number of milliseconds, got ${intervalMs}`);
    yield* task.stats(intervalMs, signal);
  }

  taskEvents(signal: AbortSignal): AsyncGenerator<TaskEvent> {
    return this.#events.subscribe(signal);
  }

  async signalTask(taskId: string, signal: string): Promise<void> {
    this.#task(taskId).signal(signal);
  }

  /** Answers at once with the scripted result, so `timeoutMs` never comes into play. */
  async execTask(taskId: string, command: string[], _timeoutMs: number): Promise<ExecResult> {
    return this.#task(taskId).exec(command);
  }

  #task(taskId: string): MockTask {
    const task = this.#tasks.get(taskId);
    if (!task) throw new TaskNotFoundError(`the mock driver has no task "${taskId}"`);
    return task;
  }
}
