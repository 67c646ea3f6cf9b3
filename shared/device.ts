/**
 * The device plugin contract (design.md section 4, after Nomad's device plugin). A device plugin
 * reports groups of devices, reserves devices for a task (what to mount and set so the task can
 * use them), and streams device statistics. The host passes every declared argument, then an
 * AbortSignal (see methodArity in method-args.ts).
 *
 * Two shapes of each message: the one a plugin returns (DeviceFingerprint, ContainerReservation,
 * DeviceStats), where what the host fills with a default may be left out, and the one the host
 * works with after validating it (Filled...), where every such field is there. The schemas
 * accept the first and produce the second.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { BasePlugin } from './plugin.js';
import { StringEnum } from './schema.js';

type Awaitable<T> = T | Promise<T>;

/** Units an attribute or stat may carry; a number with a unit is a measurement, e.g. 80 GiB. */
export const units = [
  'B',
  'KB',
  'MB',
  'GB',
  'TB',
  'KiB',
  'MiB',
  'GiB',
  'TiB',
  'B/s',
  'KB/s',
  'MB/s',
  'GB/s',
  'KiB/s',
  'MiB/s',
  'GiB/s',
  'Hz',
  'kHz',
  'MHz',
  'GHz',
  'mW',
  'W',
  'kW',
  'C',
  '%',
] as const;
export type Unit = (typeof units)[number];

const name = Type.String({ minLength: 1, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' });

/** An attribute: a string or bool, or a number optionally with a unit. */
export const Attribute = Type.Union([
  Type.Object({ value: Type.String() }, { additionalProperties: false }),
  Type.Object({ value: Type.Boolean() }, { additionalProperties: false }),
  Type.Object({ value: Type.Number(), unit: Type.Optional(StringEnum(units)) }, { additionalProperties: false }),
]);
export type Attribute = Static<typeof Attribute>;

export const Device = Type.Object(
  {
    id: Type.String({ minLength: 1 }),
    healthy: Type.Boolean(),
    healthDescription: Type.Optional(Type.String()),
    locality: Type.Optional(Type.Object({ pciBusId: Type.Optional(Type.String()) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type Device = Static<typeof Device>;

/** Devices of one kind, addressed as `vendor/type/name` (e.g. nvidia/gpu/H200). */
export const DeviceGroup = Type.Object(
  {
    vendor: name,
    type: name,
    name,
    devices: Type.Array(Device),
    attributes: Type.Record(Type.String({ minLength: 1 }), Attribute, { default: {} }),
  },
  { additionalProperties: false },
);
/** A group as the host holds it, after validation: `attributes` filled. */
export type FilledDeviceGroup = Static<typeof DeviceGroup>;
/** A group as a plugin reports it; `attributes` defaults to {}. */
export interface DeviceGroup extends Omit<FilledDeviceGroup, 'attributes'> {
  attributes?: FilledDeviceGroup['attributes'] | undefined;
}

/** One fingerprint message: the plugin's complete current set of groups (not a delta). */
export const DeviceFingerprint = Type.Object({ groups: Type.Array(DeviceGroup) }, { additionalProperties: false });
/** A fingerprint message as the host holds it, after validation. */
export type FilledDeviceFingerprint = Static<typeof DeviceFingerprint>;
/** A fingerprint message as a plugin yields it. */
export interface DeviceFingerprint {
  groups: DeviceGroup[];
}

/** What a task needs to use reserved devices. Paths are absolute; permissions a subset of "rwm". */
export const ContainerReservation = Type.Object(
  {
    envs: Type.Record(Type.String(), Type.String(), { default: {} }),
    mounts: Type.Array(
      Type.Object(
        { taskPath: Type.String({ pattern: '^/' }), hostPath: Type.String({ pattern: '^/' }), readOnly: Type.Boolean({ default: true }) },
        { additionalProperties: false },
      ),
      { default: [] },
    ),
    devices: Type.Array(
      Type.Object(
        {
          taskPath: Type.String({ pattern: '^/' }),
          hostPath: Type.String({ pattern: '^/' }),
          permissions: Type.String({ pattern: '^(?!.*(.).*\\1)[rwm]{1,3}$', default: 'rw' }),
        },
        { additionalProperties: false },
      ),
      { default: [] },
    ),
  },
  { additionalProperties: false },
);
/** A reservation as the host holds it, after validation: every default filled. */
export type FilledContainerReservation = Static<typeof ContainerReservation>;
/**
 * A reservation as a plugin returns it. Left out, `envs` is {}, `mounts` and `devices` are [],
 * a mount's `readOnly` is true and a device's `permissions` "rw".
 */
export interface ContainerReservation {
  envs?: Record<string, string> | undefined;
  mounts?: { taskPath: string; hostPath: string; readOnly?: boolean | undefined }[] | undefined;
  devices?: { taskPath: string; hostPath: string; permissions?: string | undefined }[] | undefined;
}

/** A statistic: a number (with a unit) or a string. */
export const StatValue = Type.Object(
  { value: Type.Union([Type.Number(), Type.String()]), unit: Type.Optional(StringEnum(units)), description: Type.Optional(Type.String()) },
  { additionalProperties: false },
);
export type StatValue = Static<typeof StatValue>;

export const DeviceGroupStats = Type.Object(
  {
    vendor: name,
    type: name,
    name,
    /** Per device id: a summary stat and the rest. */
    instances: Type.Record(
      Type.String({ minLength: 1 }),
      Type.Object({ summary: StatValue, stats: Type.Record(Type.String(), StatValue, { default: {} }) }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);
/** One group's stats as the host holds them, after validation: every instance's `stats` filled. */
export type FilledDeviceGroupStats = Static<typeof DeviceGroupStats>;
/** One group's stats as a plugin reports them; an instance's `stats` defaults to {}. */
export interface DeviceGroupStats extends Omit<FilledDeviceGroupStats, 'instances'> {
  instances: Record<string, { summary: StatValue; stats?: Record<string, StatValue> | undefined }>;
}

/** One stats message: every group's stats, sampled at `timestamp` (unix ms). */
export const DeviceStats = Type.Object({ timestamp: Type.Number(), groups: Type.Array(DeviceGroupStats) }, { additionalProperties: false });
/** A stats message as the host holds it, after validation. */
export type FilledDeviceStats = Static<typeof DeviceStats>;
/** A stats message as a plugin yields it. */
export interface DeviceStats {
  timestamp: number;
  groups: DeviceGroupStats[];
}

export interface DevicePlugin<C = unknown> extends BasePlugin<C> {
  /** The complete current device groups: the first message at once, then on every change. */
  fingerprint(signal: AbortSignal): AsyncIterable<DeviceFingerprint>;
  /** What a task needs to use these devices (all from this plugin's groups). */
  reserve(deviceIds: string[], signal: AbortSignal): Awaitable<ContainerReservation>;
  /** Device statistics every `intervalMs`. */
  stats(intervalMs: number, signal: AbortSignal): AsyncIterable<DeviceStats>;
}

/**
 * Gives a device plugin its type and checks it whole at compile time: every required method,
 * with arguments and returns the contract allows. Returns the plugin as it is.
 */
export function defineDevicePlugin<P extends DevicePlugin>(plugin: P): P {
  return plugin;
}

/** Methods every device plugin must implement. */
export const deviceMethods: readonly string[] = ['fingerprint', 'reserve', 'stats'];

/** `vendor/type/name` of a group. */
export function groupId(group: Pick<DeviceGroup, 'vendor' | 'type' | 'name'>): string {
  return `${group.vendor}/${group.type}/${group.name}`;
}
