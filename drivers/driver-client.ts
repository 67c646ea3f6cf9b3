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
import type { JsonSchema } from '../shared/schema.js';
import type { CallOptions } from '../plugin-loader/plugin-worker.js';
import type { PluginInstance } from '../plugin-loader/plugin-instance.js';

export class DriverClient {
  readonly instance: PluginInstance;

  constructor(instance: PluginInstance) {
    this.instance = instance;
  }

  get name(): string {
    return this.instance.name;
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
    return this.instance.call('startTask', [config], options);
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
