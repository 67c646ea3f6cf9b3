/**
 * The device plugin both arms of bench/devices.ts host: taskhost in a worker thread, the gRPC peer
 * in a child process. It stands for a GPU plugin on a big node: `groups` groups of
 * `devicesPerGroup` devices, each sampled for a utilisation summary and five readings per stats
 * tick. Readings are cheap arithmetic, so what the benchmark measures is moving and checking
 * samples, not making them; both arms run this same code.
 *
 * Each sample's `timestamp` is a fractional unix-ms time (timeOrigin + performance.now()), so the
 * host can tell how long a sample took to become visible to well under a millisecond.
 */
import { performance } from 'node:perf_hooks';
import { Type, type Static } from '@sinclair/typebox';
import type { DeviceFingerprint, DeviceGroup, DeviceGroupStats, DevicePlugin, DeviceStats } from '../shared/device.js';
import { pause } from '../shared/pause.js';
import type { SetConfigRequest } from '../shared/plugin.js';

export const DeviceBenchConfig = Type.Object({
  /** Tells this plugin's groups apart from the other plugins' (a group may have one owner). */
  index: Type.Integer({ minimum: 0 }),
  groups: Type.Integer({ minimum: 1, default: 2 }),
  devicesPerGroup: Type.Integer({ minimum: 1, default: 64 }),
  /** How often the complete fingerprint is sent again, with one device's health flipped. */
  fingerprintMs: Type.Integer({ minimum: 1, default: 60_000 }),
});
export type DeviceBenchConfig = Static<typeof DeviceBenchConfig>;

/** The unix time in fractional milliseconds. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/** A plugin object named `name` (the manifest's name: the loader checks that they agree). */
export function createDeviceBenchPlugin(name: string): DevicePlugin<DeviceBenchConfig> {
  let config: DeviceBenchConfig = { index: 0, groups: 2, devicesPerGroup: 64, fingerprintMs: 60_000 };
  let flipped = -1;
  const groupNames = () => Array.from({ length: config.groups }, (_, g) => `model${config.index}x${g}`);
  const deviceIds = (g: number) => Array.from({ length: config.devicesPerGroup }, (_, d) => `gpu-${config.index}-${g}-${d}`);

  const fingerprint = (): DeviceFingerprint => ({
    groups: groupNames().map((groupName, g): DeviceGroup => ({
      vendor: 'bench',
      type: 'gpu',
      name: groupName,
      devices: deviceIds(g).map((id, d) => ({
        id,
        healthy: !(g === 0 && d === flipped),
        locality: { pciBusId: `0000:${(config.index * 16 + g).toString(16).padStart(2, '0')}:${d.toString(16).padStart(2, '0')}.0` },
      })),
      attributes: {
        memory: { value: 141, unit: 'GiB' },
        driver: { value: '580.159.03' },
        mig: { value: false },
      },
    })),
  });

  let tick = 0;
  const sample = (): DeviceStats => {
    tick++;
    const timestamp = preciseNow();
    const groups = groupNames().map((groupName, g): DeviceGroupStats => {
      const instances: DeviceGroupStats['instances'] = {};
      deviceIds(g).forEach((id, d) => {
        const phase = (tick + d * 7 + g * 13) % 100;
        instances[id] = {
          summary: { value: phase, unit: '%', description: 'GPU utilisation' },
          stats: {
            memoryUsed: { value: 1024 + phase * 1400, unit: 'MiB' },
            temperature: { value: 30 + (phase >> 1), unit: 'C' },
            power: { value: 75 + phase * 6.25, unit: 'W' },
            smClock: { value: 1980 - phase, unit: 'MHz' },
            eccErrors: { value: 0 },
          },
        };
      });
      return { vendor: 'bench', type: 'gpu', name: groupName, instances };
    });
    return { timestamp, groups };
  };

  return {
    info: () => ({ type: 'device', name, pluginVersion: '1.0.0', apiVersions: ['1.0'] }),
    configSchema: () => DeviceBenchConfig,
    setConfig(request: SetConfigRequest<DeviceBenchConfig>) {
      config = { ...config, ...request.config };
    },

    async *fingerprint(signal: AbortSignal): AsyncGenerator<DeviceFingerprint> {
      while (!signal.aborted) {
        yield fingerprint();
        await pause(config.fingerprintMs, signal);
        flipped = (flipped + 1) % config.devicesPerGroup;
      }
    },

    reserve(ids: string[]) {
      return { envs: { BENCH_VISIBLE_DEVICES: ids.join(',') }, mounts: [], devices: [] };
    },

    /** A sample at once, then one per interval on a fixed schedule, so a late timer does not drift. */
    async *stats(intervalMs: number, signal: AbortSignal): AsyncGenerator<DeviceStats> {
      let due = preciseNow();
      while (!signal.aborted) {
        yield sample();
        due += intervalMs;
        // A tick more than an interval late is skipped, not sent twice in a row: the host sees the gap.
        while (due < preciseNow()) due += intervalMs;
        await pause(due - preciseNow(), signal);
      }
    },
  };
}
