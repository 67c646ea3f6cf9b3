/**
 * The host's view of a device plugin: each DevicePlugin method as a call or stream over the
 * plugin's worker. What comes back is typed `unknown` on purpose: a plugin is not trusted, so
 * the device manager validates every message before it uses one.
 */
import type { CallOptions } from '../plugin-loader/plugin-worker.js';
import type { PluginInstance } from '../plugin-loader/plugin-instance.js';

export class DeviceClient {
  readonly instance: PluginInstance;

  constructor(instance: PluginInstance) {
    this.instance = instance;
  }

  get name(): string {
    return this.instance.name;
  }

  fingerprint(signal: AbortSignal): AsyncIterable<unknown> {
    return this.instance.stream('fingerprint', [], { signal, window: 4, json: true });
  }
  reserve(deviceIds: string[], options?: CallOptions): Promise<unknown> {
    return this.instance.call('reserve', [deviceIds], options);
  }
  stats(intervalMs: number, signal: AbortSignal): AsyncIterable<unknown> {
    return this.instance.stream('stats', [intervalMs], { signal, window: 4, json: true });
  }
}
