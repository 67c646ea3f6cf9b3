/**
 * The device manager: the node's device set, from the fingerprint stream of every device plugin
 * the loader hosts, plus their latest statistics and the devices reserved for tasks.
 *
 * Where Nomad's manager drops a plugin for good on its first invalid message or error (reference
 * nomad.md section 7.4), this one withdraws the plugin's devices and keeps going: streams are
 * re-opened with backoff, a plugin that keeps sending invalid fingerprints is restarted, a
 * crashed plugin's devices come back when it does. A withdrawn device stays listed, as
 * `unknown` (its plugin is down) or `unhealthy` (its plugin misbehaves), with the reason, so
 * "why is my device missing?" always has an answer.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { EventEmitter } from 'eventemitter3';
import { pino, type Logger } from 'pino';
import {
  deviceMethods,
  groupId,
  type Attribute,
  type FilledContainerReservation,
  type Device,
  type FilledDeviceGroup,
  type FilledDeviceGroupStats,
} from '../shared/device.js';
import { InvalidConfigError, PluginLoadError, type PluginCrashedError, type TaskhostError } from '../shared/errors.js';
import { formatIssues } from '../shared/schema.js';
import type { PluginLoader } from '../plugin-loader/loader.js';
import { followStream } from '../plugin-loader/follow-stream.js';
import { guardedEmit } from '../plugin-loader/guarded-emit.js';
import { closingController } from '../shared/pause.js';
import { DeviceClient } from './device-client.js';
import { pickDevices, type DevicePick, type DeviceRequest } from './pick-devices.js';
import { validateFingerprint, validateReservation, validateStats } from './validate-device-messages.js';

export type { DeviceRequest } from './pick-devices.js';

/** `unknown`: its plugin is down or has not reported yet. */
export type DeviceHealth = 'healthy' | 'unhealthy' | 'unknown';

export interface NodeDevice {
  id: string;
  health: DeviceHealth;
  healthDescription?: string;
  locality?: Device['locality'];
}

/** A group of the node's device set, with the plugin that owns it. */
export interface NodeDeviceGroup {
  /** `vendor/type/name`. */
  id: string;
  vendor: string;
  type: string;
  name: string;
  plugin: string;
  attributes: Record<string, Attribute>;
  devices: NodeDevice[];
}

/** What the manager knows of one device plugin. */
export interface DevicePluginHealth {
  name: string;
  /** healthy: its last fingerprint was valid. unhealthy: invalid, failing or failed. unknown: down, or no fingerprint yet. */
  health: DeviceHealth;
  healthDescription: string;
  /** Whether it has answered its fingerprint stream (validly or not) since the manager started. */
  fingerprinted: boolean;
  /** The groups it owns (from its last valid fingerprint). */
  groups: string[];
  updatedAt: string;
}

export interface DeviceGroupSample {
  id: string;
  plugin: string;
  /** The group's latest stats, or null before the first sample. */
  stats: FilledDeviceGroupStats | null;
  /** When the latest sample arrived (ISO time), or null. */
  sampledAt: string | null;
  /** How old the latest sample was when the snapshot was taken, or null. */
  staleMs: number | null;
}

export interface DeviceStatsSnapshot {
  collectedAt: string;
  groups: DeviceGroupSample[];
}

/** Devices reserved for a task: which ones, and what the task needs to use them. */
export interface DeviceReservation {
  /** The handle `release()` takes. */
  id: string;
  /** Who holds it (a task id, say); `release(owner)` frees everything it holds. Defaults to `id`. */
  owner: string;
  devices: { group: string; plugin: string; ids: string[] }[];
  /** Every plugin's reservation merged: envs (a later group wins a name), mounts, devices. */
  reservation: FilledContainerReservation;
}

export interface ReserveOptions {
  /** Who holds the reservation (a task id, say); default its handle. */
  owner?: string;
  signal?: AbortSignal;
  /** Devices reserved by someone this manager does not know of: never picked. */
  isReserved?: (group: string, id: string) => boolean;
}

export interface DeviceManagerEvents {
  /** The node's device set changed: a group, a device, an attribute or a device's health. */
  changed: [groups: NodeDeviceGroup[]];
  /** A plugin's health or description changed. */
  health: [info: DevicePluginHealth];
  /** One snapshot per stats interval (built only while someone listens). */
  stats: [snapshot: DeviceStatsSnapshot];
  /** A plugin's stats message was accepted: what it covers, when the plugin sampled it, when it arrived. */
  sampled: [sample: DeviceSampleArrival];
}

/** Times are unix milliseconds with a fractional part, so arrival minus sampling is meaningful below 1 ms. */
export interface DeviceSampleArrival {
  plugin: string;
  /** The groups the message carried stats for (`vendor/type/name`). */
  groups: string[];
  /** The message's own `timestamp`: when the plugin took the sample. */
  timestamp: number;
  /** When the manager accepted it; from then on `stats()` shows it. */
  receivedAt: number;
}

export interface DeviceManagerOptions {
  loader: PluginLoader;
  logger?: Logger;
  /** How often stats are collected and a `stats` snapshot is emitted (default 1000). */
  statsIntervalMs?: number;
  /** First and maximum delay before a fingerprint or stats stream is re-opened. */
  streamBackoffMs?: [number, number];
  /** Invalid fingerprints in a row after which the plugin is restarted (default 3). */
  restartAfterInvalid?: number;
}

interface Latch {
  promise: Promise<void>;
  open: () => void;
}

interface Plugin {
  client: DeviceClient;
  health: DevicePluginHealth;
  /** Its last valid fingerprint: the groups it owns, withdrawn or not. */
  groups: FilledDeviceGroup[];
  samples: Map<string, { stats: FilledDeviceGroupStats; sampledAt: number }>;
  firstFingerprint: Latch;
  firstValid: Latch;
  firstStats: Latch;
}

export class DeviceManager extends EventEmitter<DeviceManagerEvents> {
  readonly #loader: PluginLoader;
  readonly #log: Logger;
  readonly #statsIntervalMs: number;
  readonly #backoff: [number, number];
  readonly #restartAfterInvalid: number;
  readonly #plugins = new Map<string, Plugin>();
  readonly #closing = closingController();
  /** Reserved devices, as `group\0id`. */
  readonly #reserved = new Set<string>();
  readonly #reservations = new Map<string, DeviceReservation>();
  #node: NodeDeviceGroup[] = [];
  /** Each plugin's part of the node's device set, and its serialised form to tell a change. */
  readonly #nodeParts = new Map<string, { groups: NodeDeviceGroup[]; key: string }>();
  #statsTimer: NodeJS.Timeout | undefined;
  #loops: Promise<void>[] = [];
  #started: Promise<void> | undefined;

  constructor(options: DeviceManagerOptions) {
    super();
    this.#loader = options.loader;
    this.#log = options.logger ?? pino({ level: 'warn' }, pino.destination(2));
    this.#statsIntervalMs = options.statsIntervalMs ?? 1_000;
    this.#backoff = options.streamBackoffMs ?? [1_000, 60_000];
    this.#restartAfterInvalid = options.restartAfterInvalid ?? 3;
    if (!(this.#statsIntervalMs > 0)) throw new RangeError(`statsIntervalMs must be positive, got ${this.#statsIntervalMs}`);
  }

  /** Starts following every device plugin the loader hosts (starting the loader if need be). */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    await this.#loader.start();
    if (this.#closing.signal.aborted) return;
    for (const instance of this.#loader.instances('device')) {
      this.#plugins.set(instance.name, {
        client: new DeviceClient(instance),
        health: {
          name: instance.name,
          health: 'unknown',
          healthDescription: 'no fingerprint yet',
          fingerprinted: false,
          groups: [],
          updatedAt: new Date().toISOString(),
        },
        groups: [],
        samples: new Map(),
        firstFingerprint: latch(),
        firstValid: latch(),
        firstStats: latch(),
      });
    }
    this.#loader.on('crashed', this.#onCrashed);
    this.#loader.on('failed', this.#onFailed);
    for (const plugin of this.#plugins.values()) this.#loops.push(this.#fingerprintLoop(plugin), this.#statsLoop(plugin));
    if (this.#plugins.size > 0) {
      this.#statsTimer = setInterval(() => {
        // A snapshot copies every group's stats: not worth making when nobody reads it.
        if (this.listenerCount('stats') > 0) guardedEmit(this, this.#log, 'stats', this.stats());
      }, this.#statsIntervalMs);
      this.#statsTimer.unref();
    }
  }

  /** Resolves once every device plugin has fingerprinted (or failed), or when `timeoutMs` has passed. */
  async waitForFirstFingerprint(timeoutMs = 50_000): Promise<void> {
    await this.start();
    await within(
      timeoutMs,
      [...this.#plugins.values()].map((p) => p.firstFingerprint.promise),
    );
  }

  /** Resolves once every healthy plugin has sent stats (or failed to), or when `timeoutMs` has passed. */
  async waitForFirstStats(timeoutMs = 50_000): Promise<void> {
    await this.start();
    const healthy = [...this.#plugins.values()].filter((p) => p.health.health === 'healthy');
    await within(
      timeoutMs,
      healthy.map((p) => p.firstStats.promise),
    );
  }

  /** The node's device set: every group, sorted by id, each device with its health. */
  devices(): NodeDeviceGroup[] {
    return structuredClone(this.#node);
  }

  /** Every device plugin's health, by name. */
  health(): DevicePluginHealth[] {
    return [...this.#plugins.values()].map((p) => structuredClone(p.health)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The latest stats of every group, and how stale each is. */
  stats(): DeviceStatsSnapshot {
    const now = Date.now();
    const groups = this.#node.map((g): DeviceGroupSample => {
      const sample = this.#plugins.get(g.plugin)!.samples.get(g.id);
      return {
        id: g.id,
        plugin: g.plugin,
        stats: sample ? structuredClone(sample.stats) : null,
        sampledAt: sample ? new Date(sample.sampledAt).toISOString() : null,
        staleMs: sample ? now - sample.sampledAt : null,
      };
    });
    return { collectedAt: new Date(now).toISOString(), groups };
  }

  /**
   * Reserves healthy devices for each request (see pickDevices for how they are chosen), asks
   * each group's owner plugin what the task needs, and validates its answer. All or nothing:
   * when one plugin fails, nothing stays reserved. `isReserved` adds devices held elsewhere (the
   * agent's stored reservations, which outlive this manager). Picking and marking happen in one
   * synchronous step, so two calls at once never get the same device.
   */
  async reserve(requests: readonly DeviceRequest[], options: ReserveOptions = {}): Promise<DeviceReservation> {
    await this.start();
    const elsewhere = options.isReserved ?? (() => false);
    const picks = pickDevices(requests, this.#node, (group, id) => this.#reserved.has(reservedKey(group, id)) || elsewhere(group, id));
    const keys = picks.flatMap((p) => p.ids.map((id) => reservedKey(p.group.id, id)));
    for (const key of keys) this.#reserved.add(key);
    let parts: FilledContainerReservation[];
    try {
      parts = await Promise.all(picks.map((pick) => this.#reserveOn(pick, options.signal)));
    } catch (err) {
      for (const key of keys) this.#reserved.delete(key);
      throw err;
    }
    const id = randomUUID();
    const reservation: DeviceReservation = {
      id,
      owner: options.owner ?? id,
      devices: picks.map((p) => ({ group: p.group.id, plugin: p.group.plugin, ids: p.ids })),
      reservation: {
        envs: Object.assign({}, ...parts.map((p) => p.envs)) as Record<string, string>,
        mounts: parts.flatMap((p) => p.mounts),
        devices: parts.flatMap((p) => p.devices),
      },
    };
    this.#reservations.set(id, reservation);
    this.#log.info({ reservation: id, owner: reservation.owner, devices: reservation.devices }, 'devices reserved');
    return structuredClone(reservation);
  }

  /** Frees the reservation with this handle, or every one this owner holds; returns how many. */
  release(handleOrOwner: string): number {
    let released = 0;
    for (const [id, r] of this.#reservations) {
      if (id !== handleOrOwner && r.owner !== handleOrOwner) continue;
      for (const d of r.devices) for (const device of d.ids) this.#reserved.delete(reservedKey(d.group, device));
      this.#reservations.delete(id);
      released++;
    }
    return released;
  }

  /** Stops following plugins (the plugins themselves belong to the loader). */
  async close(): Promise<void> {
    this.#closing.abort();
    clearInterval(this.#statsTimer);
    this.#loader.off('crashed', this.#onCrashed);
    this.#loader.off('failed', this.#onFailed);
    await this.#started?.catch(() => undefined);
    await Promise.all(this.#loops);
  }

  async #reserveOn(pick: DevicePick, signal: AbortSignal | undefined): Promise<FilledContainerReservation> {
    const plugin = this.#plugins.get(pick.group.plugin)!;
    const answer = await plugin.client.reserve(pick.ids, { signal });
    const checked = validateReservation(answer);
    if (checked.ok) return checked.value;
    const issues = formatIssues(checked.issues).join('; ');
    throw new InvalidConfigError(
      `device plugin "${plugin.client.name}" returned an invalid reservation for ${pick.group.id} (${pick.ids.join(', ')}): ${issues}`,
      { details: { errors: checked.issues, plugin: plugin.client.name, group: pick.group.id } },
    );
  }

  /** Keeps the plugin's fingerprint stream open; restarts a plugin that keeps sending invalid ones. */
  async #fingerprintLoop(plugin: Plugin): Promise<void> {
    let invalid = 0;
    await this.#follow(
      plugin,
      (signal) => {
        invalid = 0;
        return plugin.client.fingerprint(signal);
      },
      async (message) => {
        const valid = this.#accept(plugin, message);
        plugin.firstFingerprint.open();
        invalid = valid ? 0 : invalid + 1;
        if (invalid >= this.#restartAfterInvalid) {
          this.#log.warn({ plugin: plugin.client.name, invalid }, 'device plugin keeps sending invalid fingerprints; restarting it');
          await plugin.client.instance.kill(`was restarted after ${invalid} invalid fingerprints in a row`);
        }
      },
      (error) => {
        const instance = plugin.client.instance;
        // Worded as the loader's `failed` event is, so one failure gives one health change.
        const description =
          error instanceof PluginLoadError
            ? error.message
            : instance.state === 'failed'
              ? `device plugin failed: ${(instance.lastError ?? error).message}`
              : `fingerprint failed: ${error.message}`;
        this.#update(plugin, { health: 'unhealthy', healthDescription: description });
        plugin.firstFingerprint.open();
      },
    );
  }

  /** Keeps the plugin's stats stream open, once it has sent a valid fingerprint. */
  async #statsLoop(plugin: Plugin): Promise<void> {
    const stop = this.#closing.signal;
    await new Promise<void>((resolve) => {
      void plugin.firstValid.promise.then(resolve);
      stop.addEventListener('abort', () => resolve(), { once: true });
    });
    await this.#follow(
      plugin,
      (signal) => plugin.client.stats(this.#statsIntervalMs, signal),
      (message) => {
        this.#sample(plugin, message);
        plugin.firstStats.open();
      },
      (error) => {
        this.#log.warn({ plugin: plugin.client.name, err: error.message }, `device stats failed: ${error.message}`);
        plugin.firstStats.open();
      },
    );
  }

  /** Follows one of the plugin's streams while the manager runs (see followStream). */
  #follow<T>(
    plugin: Plugin,
    open: (signal: AbortSignal) => AsyncIterable<T>,
    onItem: (item: T) => void | Promise<void>,
    onError: (error: TaskhostError) => void,
  ): Promise<void> {
    return followStream({
      instance: plugin.client.instance,
      requires: deviceMethods,
      signal: this.#closing.signal,
      backoffMs: this.#backoff,
      open,
      onItem,
      onError,
    });
  }

  /** Takes a fingerprint message if it is valid; otherwise withdraws the plugin's devices. */
  #accept(plugin: Plugin, message: unknown): boolean {
    const name = plugin.client.name;
    // Each message is a fresh copy from the plugin's thread: check it without copying it again.
    const checked = validateFingerprint(message, name, (group) => this.#ownerOf(group), { owned: true });
    if (!checked.ok) {
      const detail = formatIssues(checked.issues).join('; ');
      this.#log.warn({ plugin: name, issues: checked.issues }, `invalid device fingerprint: ${detail}`);
      this.#update(plugin, { health: 'unhealthy', healthDescription: `invalid fingerprint: ${detail}`, fingerprinted: true });
      return false;
    }
    plugin.groups = checked.value.groups;
    const ids = plugin.groups.map(groupId).sort();
    for (const id of plugin.samples.keys()) if (!ids.includes(id)) plugin.samples.delete(id);
    this.#update(plugin, {
      health: 'healthy',
      healthDescription: ids.length ? `reports ${ids.join(', ')}` : 'reports no device groups',
      fingerprinted: true,
      groups: ids,
    });
    plugin.firstValid.open();
    return true;
  }

  #sample(plugin: Plugin, message: unknown): void {
    const checked = validateStats(message, { owned: true });
    if (!checked.ok) {
      const detail = formatIssues(checked.issues).join('; ');
      this.#log.warn({ plugin: plugin.client.name, issues: checked.issues }, `invalid device stats ignored: ${detail}`);
      return;
    }
    const now = Date.now();
    const groups: string[] = [];
    for (const group of checked.value.groups) {
      const id = groupId(group);
      // Stats of a group the plugin does not own would describe devices it does not have.
      if (!plugin.health.groups.includes(id)) continue;
      plugin.samples.set(id, { stats: group, sampledAt: now });
      groups.push(id);
    }
    if (this.listenerCount('sampled') > 0) {
      const receivedAt = performance.timeOrigin + performance.now();
      guardedEmit(this, this.#log, 'sampled', { plugin: plugin.client.name, groups, timestamp: checked.value.timestamp, receivedAt });
    }
  }

  /** The plugin that owns a group: the one whose last valid fingerprint has it. */
  #ownerOf(group: string): string | undefined {
    for (const [name, plugin] of this.#plugins) if (plugin.health.groups.includes(group)) return name;
    return undefined;
  }

  readonly #onCrashed = (name: string, error: PluginCrashedError): void => {
    const plugin = this.#plugins.get(name);
    if (plugin) this.#update(plugin, { health: 'unknown', healthDescription: `device plugin crashed; restarting (${error.message})` });
  };

  readonly #onFailed = (name: string, error: TaskhostError): void => {
    const plugin = this.#plugins.get(name);
    if (!plugin) return;
    this.#update(plugin, { health: 'unhealthy', healthDescription: `device plugin failed: ${error.message}` });
    plugin.firstFingerprint.open();
  };

  /** Updates a plugin's health; emits `health` and, when the device set changed, `changed`. */
  #update(plugin: Plugin, patch: Partial<DevicePluginHealth>): void {
    const before = plugin.health;
    const next = { ...before, ...patch };
    const changed =
      next.health !== before.health || next.healthDescription !== before.healthDescription || next.groups.join() !== before.groups.join();
    plugin.health = changed ? { ...next, updatedAt: new Date().toISOString() } : next;
    if (changed) {
      this.#log.info(
        { plugin: plugin.client.name, health: next.health },
        `device plugin health: ${next.health} (${next.healthDescription})`,
      );
      guardedEmit(this, this.#log, 'health', structuredClone(plugin.health));
    }
    this.#refresh(plugin);
  }

  /**
   * Rebuilds the plugin's part of the node's device set; when it differs from before, the set
   * is put together again and `changed` emitted. Only that plugin's devices are looked at, so a
   * node of many plugins and devices pays for one plugin's change, not for all of them.
   */
  #refresh(plugin: Plugin): void {
    const name = plugin.client.name;
    const groups = plugin.groups.map((g) => nodeGroup(plugin, g)).sort(byId);
    const key = JSON.stringify(groups);
    if (this.#nodeParts.get(name)?.key === key) return;
    this.#nodeParts.set(name, { groups, key });
    this.#node = [...this.#nodeParts.values()].flatMap((part) => part.groups).sort(byId);
    if (this.listenerCount('changed') > 0) guardedEmit(this, this.#log, 'changed', structuredClone(this.#node));
  }
}

/** A group as the node shows it: keys in a fixed order, so two equal sets serialise the same. */
function nodeGroup(plugin: Plugin, group: FilledDeviceGroup): NodeDeviceGroup {
  const { health, healthDescription } = plugin.health;
  return {
    id: groupId(group),
    vendor: group.vendor,
    type: group.type,
    name: group.name,
    plugin: plugin.client.name,
    attributes: Object.fromEntries(Object.entries(group.attributes).sort(([a], [b]) => (a < b ? -1 : 1))),
    devices: group.devices
      .map((d): NodeDevice => {
        // A device is only as healthy as the plugin reporting it is.
        const device: NodeDevice =
          health === 'healthy'
            ? {
                id: d.id,
                health: d.healthy ? 'healthy' : 'unhealthy',
                ...(d.healthDescription ? { healthDescription: d.healthDescription } : {}),
              }
            : { id: d.id, health, healthDescription: `withdrawn: ${healthDescription}` };
        if (d.locality) device.locality = { ...d.locality };
        return device;
      })
      .sort((a, b) => (a.id < b.id ? -1 : 1)),
  };
}

function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : 1;
}

function reservedKey(group: string, id: string): string {
  return `${group}\0${id}`;
}

function latch(): Latch {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Waits for every promise, or `ms`, whichever comes first. */
async function within(ms: number, promises: Promise<void>[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  try {
    await Promise.race([Promise.all(promises), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
