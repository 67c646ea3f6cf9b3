// Compile-time checks of the device SDK (`taskhost/sdk`): never run, only type-checked.
import {
  defineDevicePlugin,
  type ContainerReservation,
  type DeviceFingerprint,
  type DeviceStats,
  type FilledContainerReservation,
  type FilledDeviceFingerprint,
  type FilledDeviceStats,
} from '../../shared/index.js';

async function* once<T>(item: T): AsyncGenerator<T> {
  yield item;
}

/** What the host fills with defaults a plugin may leave out: no attributes, no stats per instance, an empty reservation. */
export const lean = defineDevicePlugin({
  info: () => ({ type: 'device', name: 'lean', pluginVersion: '1.0.0', apiVersions: ['1.0'] }),
  configSchema: () => null,
  setConfig() {},
  fingerprint: () => once({ groups: [{ vendor: 'acme', type: 'fpga', name: 'x1', devices: [{ id: 'a', healthy: true }] }] }),
  reserve: () => ({}),
  stats: () => once({ timestamp: 0, groups: [{ vendor: 'acme', type: 'fpga', name: 'x1', instances: { a: { summary: { value: 1 } } } }] }),
});

/** Every argument and its AbortSignal declared; mounts without readOnly, devices without permissions. */
export const withSignals = defineDevicePlugin({
  info: () => ({ type: 'device', name: 'typed', pluginVersion: '1.0.0', apiVersions: ['1.0'] }),
  configSchema: () => null,
  setConfig: (_request: unknown, _signal: AbortSignal) => undefined,
  shutdown: (_signal: AbortSignal) => undefined,
  fingerprint: (_signal: AbortSignal) => once<DeviceFingerprint>({ groups: [] }),
  reserve: async (ids: string[], _signal: AbortSignal) => ({
    envs: { ACME: ids.join(',') },
    mounts: [{ taskPath: '/dev/acme', hostPath: '/dev/acme' }],
    devices: [{ taskPath: '/dev/acme0', hostPath: '/dev/acme0' }],
  }),
  stats: (_intervalMs: number, _signal: AbortSignal) => once<DeviceStats>({ timestamp: 0, groups: [] }),
});

// A message the host has filled is always one a plugin may send.
export const filledReservation: ContainerReservation = {} as FilledContainerReservation;
export const filledFingerprint: DeviceFingerprint = {} as FilledDeviceFingerprint;
export const filledStats: DeviceStats = {} as FilledDeviceStats;

// @ts-expect-error -- the host's own types keep every default filled
export const hostReservation: FilledContainerReservation = {};
// @ts-expect-error -- a filled group has its attributes
export const hostGroup: FilledDeviceFingerprint = { groups: [{ vendor: 'a', type: 'b', name: 'c', devices: [] }] };

const { reserve: _reserve, ...withoutReserve } = lean;
// @ts-expect-error -- a device plugin without reserve is not one
defineDevicePlugin(withoutReserve);
// @ts-expect-error -- stats is required
defineDevicePlugin({ ...lean, stats: undefined });
// @ts-expect-error -- reserve's second argument is an AbortSignal
defineDevicePlugin({ ...lean, reserve: (_ids: string[], _signal: number) => ({}) });
// @ts-expect-error -- a reservation's mounts name both paths
defineDevicePlugin({ ...lean, reserve: () => ({ mounts: [{ taskPath: '/dev/acme' }] }) });
// @ts-expect-error -- a fingerprint lists groups of devices, each with its health
defineDevicePlugin({ ...lean, fingerprint: () => once({ groups: [{ vendor: 'a', type: 'b', name: 'c', devices: [{ id: 'a' }] }] }) });
