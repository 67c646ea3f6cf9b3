/**
 * The example-file device plugin, built in (after Nomad's example device plugin): every regular
 * file in a directory is a device of group `example/file/mock`. A world-writable file is
 * unhealthy. Reserving devices mounts their files read-only at `/devices/<id>` and sets
 * `EXAMPLE_FILE_DEVICES`. It needs a `dir`, so it runs only when the agent config gives it one.
 */
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Type, type Static } from '@sinclair/typebox';
import {
  defineDevicePlugin,
  type ContainerReservation,
  type DeviceFingerprint,
  type DeviceGroup,
  type DeviceStats,
} from '../../shared/device.js';
import { Duration, parseDuration } from '../../shared/duration.js';
import { DeviceUnhealthyError, InvalidConfigError, UnknownDeviceError } from '../../shared/errors.js';
import type { SetConfigRequest } from '../../shared/plugin.js';
import { scanFiles, type FileDevice } from './scan-files.js';

const version = '0.1.0';
const group = { vendor: 'example', type: 'file', name: 'mock' } as const;

export const ExampleFileConfig = Type.Object({
  dir: Type.String({
    minLength: 1,
    description: "directory whose regular files are the devices (relative to the agent's working directory)",
  }),
  listPeriod: Duration({ default: '5s', description: 'how often the directory is scanned for changes' }),
});
export type ExampleFileConfig = Static<typeof ExampleFileConfig>;

/** A fresh plugin: the worker calls it once. */
export default function exampleFileDevice() {
  let dir = '';
  let listPeriodMs = 5_000;

  return defineDevicePlugin({
    info: () => ({ type: 'device', name: 'example-file', pluginVersion: version, apiVersions: ['1.0'] }),
    configSchema: () => ExampleFileConfig,
    setConfig(request: SetConfigRequest<ExampleFileConfig>) {
      dir = path.resolve(request.config.dir);
      listPeriodMs = parseDuration(request.config.listPeriod);
    },

    /** The group at once, then again only when a file came, went, or changed health. */
    async *fingerprint(signal: AbortSignal): AsyncGenerator<DeviceFingerprint> {
      let last = '';
      while (!signal.aborted) {
        const message = { groups: [deviceGroup(dir, await scanFiles(dir))] };
        const text = JSON.stringify(message);
        if (text !== last) yield message;
        last = text;
        if (!(await sleep(listPeriodMs, signal))) return;
      }
    },

    async reserve(deviceIds: string[]): Promise<ContainerReservation> {
      if (!Array.isArray(deviceIds) || deviceIds.length === 0) {
        const message = 'reserve needs at least one device id';
        throw new InvalidConfigError(message, { details: { errors: [{ path: '', message }] } });
      }
      const devices = new Map((await scanFiles(dir)).map((d) => [d.id, d]));
      const unknown = deviceIds.filter((id) => !devices.has(id));
      if (unknown.length) {
        const names = unknown.map((id) => JSON.stringify(id)).join(', ');
        throw new UnknownDeviceError(
          `example-file has no device ${names} in ${dir} (devices: ${[...devices.keys()].join(', ') || 'none'})`,
        );
      }
      const sick = deviceIds.map((id) => devices.get(id)!).filter((d) => !d.healthy);
      if (sick.length) throw new DeviceUnhealthyError(sick.map((d) => `device "${d.id}" is ${healthDescription(d)}`).join('; '));
      return {
        envs: { EXAMPLE_FILE_DEVICES: deviceIds.join(',') },
        mounts: deviceIds.map((id) => ({ taskPath: `/devices/${id}`, hostPath: devices.get(id)!.file, readOnly: true })),
        devices: [],
      };
    },

    /** Each file's size (the summary), modification time and mode, at once and every `intervalMs`. */
    async *stats(intervalMs: number, signal: AbortSignal): AsyncGenerator<DeviceStats> {
      if (!(intervalMs > 0)) {
        const message = `the stats interval must be a positive number of ms, got ${intervalMs}`;
        throw new InvalidConfigError(message, { details: { errors: [{ path: '', message }] } });
      }
      while (!signal.aborted) {
        const devices = await scanFiles(dir);
        const instances = Object.fromEntries(
          devices.map((d) => [
            d.id,
            {
              summary: { value: d.size, unit: 'B' as const, description: 'file size' },
              stats: {
                size: { value: d.size, unit: 'B' as const },
                modified: { value: new Date(d.mtimeMs).toISOString() },
                mode: { value: d.mode.toString(8).padStart(4, '0') },
              },
            },
          ]),
        );
        yield { timestamp: Date.now(), groups: [{ ...group, instances }] };
        if (!(await sleep(intervalMs, signal))) return;
      }
    },
  });
}

function deviceGroup(dir: string, devices: FileDevice[]): DeviceGroup {
  return {
    ...group,
    devices: devices.map((d) => ({ id: d.id, healthy: d.healthy, ...(d.healthy ? {} : { healthDescription: healthDescription(d) }) })),
    attributes: { dir: { value: dir }, count: { value: devices.length } },
  };
}

function healthDescription(device: FileDevice): string {
  return `world-writable: chmod o-w ${device.file}`;
}

/** Waits `ms`; false when `signal` aborted first. */
async function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await delay(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
