/**
 * The host's typed view of a driver plugin: every DriverPlugin method as a call or stream over
 * the plugin's worker, with the arguments laid out exactly as the contract declares them (the
 * plugin receives its AbortSignal after them).
 */
import type {
  DriverCapabilities,
  DriverFingerprint,
  ExecResult,
  ExitResult,
  TaskConfig,
  TaskEvent,
  TaskHandle,
  TaskResourceUsage,
  TaskStatus,
} from '../shared/driver.js';
import { PluginContractError } from '../shared/errors.js';
import { jsonLoss } from '../shared/json-loss.js';
import type { JsonSchema } from '../shared/schema.js';
import type { CallOptions } from '../plugin-loader/plugin-worker.js';
import type { PluginInstance } from '../plugin-loader/plugin-instance.js';

/** A reply as JSON, shortened, for an error message. */
function kindOf(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export class DriverClient {
  readonly instance: PluginInstance;

  constructor(instance: PluginInstance) {
    this.instance = instance;
  }

  get name(): string {
    return this.instance.name;
  }

  /**
   * A start's reply as the host will store it: its handle round-tripped through JSON, so what
   * recoverTask gets after a restart is what the driver sees now. A reply the host cannot keep
   * (it did not cross the thread, or its handle does not survive JSON) is a PluginContractError,
   * and the task it started is destroyed: nobody could track it.
   */
  async #trackable(config: TaskConfig, reply: Promise<{ handle: TaskHandle }>): Promise<{ handle: TaskHandle }> {
    let result: { handle: TaskHandle };
    try {
      result = await reply;
    } catch (err) {
      if (err instanceof PluginContractError) await this.#destroyUntracked(config.id);
      throw err;
    }
    const handle = (result as { handle?: unknown } | null | undefined)?.handle;
    if (typeof handle !== 'object' || handle === null || Array.isArray(handle)) {
      await this.#destroyUntracked(config.id);
      throw new PluginContractError(
        `startTask() returned ${kindOf(result)}, not { handle }: return { handle: { version, config, state, driverState } }`,
        { details: { method: 'startTask', path: '/handle' } },
      );
    }
    const loss = jsonLoss(handle);
    if (loss) {
      await this.#destroyUntracked(config.id);
      throw new PluginContractError(
        `startTask() returned a handle that does not survive JSON: ${loss.path || 'the handle'} is ${loss.what}, which JSON turns into ${loss.becomes}: keep driverState plain objects, arrays, strings, finite numbers and booleans (the host stores handles as JSON and gives them back to recoverTask() after a restart)`,
        { details: { method: 'startTask', path: loss.path } },
      );
    }
    return { ...result, handle: JSON.parse(JSON.stringify(handle)) as TaskHandle };
  }

  /** Best effort: the start already failed, and that is what the caller hears about. */
  async #destroyUntracked(taskId: string): Promise<void> {
    await this.destroyTask(taskId, true).catch(() => undefined);
  }

  taskConfigSchema(): Promise<JsonSchema> {
    return this.instance.call('taskConfigSchema');
  }
  capabilities(): Promise<DriverCapabilities> {
    return this.instance.call('capabilities');
  }
  fingerprint(signal?: AbortSignal): AsyncIterable<DriverFingerprint> {
    return this.instance.stream('fingerprint', [], { signal, window: 4 });
  }
  startTask(config: TaskConfig, options?: CallOptions): Promise<{ handle: TaskHandle }> {
    return this.#trackable(config, this.instance.call('startTask', [config], options));
  }
  waitTask(taskId: string, signal?: AbortSignal): Promise<ExitResult> {
    return this.instance.call('waitTask', [taskId], { signal });
  }
  stopTask(taskId: string, timeoutMs: number, killSignal?: string, options?: CallOptions): Promise<void> {
    return this.instance.call('stopTask', [taskId, timeoutMs, killSignal], options);
  }
  destroyTask(taskId: string, force: boolean, options?: CallOptions): Promise<void> {
    return this.instance.call('destroyTask', [taskId, force], options);
  }
  inspectTask(taskId: string, options?: CallOptions): Promise<TaskStatus> {
    return this.instance.call('inspectTask', [taskId], options);
  }
  recoverTask(handle: TaskHandle, options?: CallOptions): Promise<void> {
    return this.instance.call('recoverTask', [handle], options);
  }
  taskStats(taskId: string, intervalMs: number, signal?: AbortSignal): AsyncIterable<TaskResourceUsage> {
    return this.instance.stream('taskStats', [taskId, intervalMs], { signal, window: 4 });
  }
  taskEvents(signal?: AbortSignal): AsyncIterable<TaskEvent> {
    return this.instance.stream('taskEvents', [], { signal, window: 64 });
  }
  signalTask(taskId: string, signal: string, options?: CallOptions): Promise<void> {
    return this.instance.call('signalTask', [taskId, signal], options);
  }
  execTask(taskId: string, command: string[], timeoutMs: number, options?: CallOptions): Promise<ExecResult> {
    return this.instance.call('execTask', [taskId, command, timeoutMs], options);
  }
  validateTask(config: TaskConfig, options?: CallOptions): Promise<void> {
    return this.instance.call('validateTask', [config], options);
  }
}
