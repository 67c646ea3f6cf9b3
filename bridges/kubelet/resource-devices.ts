/**
 * One device group of a taskhost device plugin, as the kubelet sees one extended resource: its
 * device list in the API's terms, the reservation for the ids the kubelet picked, and the
 * preferred pick. Everything goes through the DeviceManager, so health, validation and the pick
 * are the ones `taskhost devices` and the agent use.
 */
import type { DeviceManager, NodeDeviceGroup } from '../../devices/device-manager.js';
import { pickDevices } from '../../devices/pick-devices.js';
import { DeviceUnhealthyError, UnknownDeviceError } from '../../shared/errors.js';
import type { ContainerAllocateResponse, ContainerPreferredAllocationRequest, Device } from './device-plugin-messages.js';
import { healthy, unhealthy } from './device-plugin-messages.js';
import { numaNode } from './numa-node.js';

export interface ResourceDevicesOptions {
  devices: DeviceManager;
  /** The group served, `vendor/type/name`. */
  group: string;
  /** The extended resource name, for messages. */
  resource: string;
  /** Where sysfs is mounted, for a device's NUMA node (default /sys). */
  sysfsRoot?: string;
}

export class ResourceDevices {
  readonly group: string;
  readonly resource: string;
  readonly #devices: DeviceManager;
  readonly #sysfsRoot: string;
  /** NUMA node per PCI bus id: it does not change while the machine runs. */
  readonly #numa = new Map<string, Promise<number | undefined>>();

  constructor(options: ResourceDevicesOptions) {
    this.#devices = options.devices;
    this.group = options.group;
    this.resource = options.resource;
    this.#sysfsRoot = options.sysfsRoot ?? '/sys';
  }

  /** The group's devices, sorted by id; unknown health (its plugin down) is Unhealthy. */
  async list(): Promise<Device[]> {
    const devices = this.#group()?.devices ?? [];
    return Promise.all(
      devices.map(async (d): Promise<Device> => {
        const bus = d.locality?.pciBusId;
        const node = bus === undefined ? undefined : await this.#numaOf(bus);
        return {
          ID: d.id,
          health: d.health === 'healthy' ? healthy : unhealthy,
          topology: node === undefined ? null : { nodes: [{ ID: node }] },
        };
      }),
    );
  }

  /** Calls `fn` on every change of the node's device set; returns how to stop. */
  onChange(fn: () => void): () => void {
    this.#devices.on('changed', fn);
    return () => this.#devices.off('changed', fn);
  }

  /**
   * What a container needs to use exactly these devices: the device manager reserves them (so
   * the plugin's answer is validated and an unhealthy device refused), and releases them again
   * at once, because the kubelet keeps its own account of who holds what and never says when a
   * container is done.
   */
  async allocate(ids: readonly string[], signal?: AbortSignal): Promise<ContainerAllocateResponse> {
    const wanted = [...new Set(ids)];
    const known = new Map((this.#group()?.devices ?? []).map((d) => [d.id, d]));
    const unknown = wanted.filter((id) => !known.has(id));
    if (wanted.length === 0 || unknown.length > 0) {
      const what = wanted.length === 0 ? 'no device ids' : `no device ${unknown.map((id) => JSON.stringify(id)).join(', ')}`;
      throw new UnknownDeviceError(`${this.resource} (${this.group}) has ${what}; its devices: ${[...known.keys()].join(', ') || 'none'}`, {
        details: { resource: this.resource, group: this.group, unknown },
      });
    }
    // The kubelet offers only devices it saw Healthy; one may have turned since.
    const sick = wanted.map((id) => known.get(id)!).filter((d) => d.health !== 'healthy');
    if (sick.length > 0) {
      const why = sick.map((d) => `"${d.id}" is ${d.health}${d.healthDescription ? ` (${d.healthDescription})` : ''}`).join('; ');
      throw new DeviceUnhealthyError(`${this.resource}: ${why}`, {
        details: { resource: this.resource, group: this.group, unhealthy: sick.map((d) => d.id) },
      });
    }
    const held = await this.#devices.reserve([{ name: this.group, count: wanted.length }], {
      owner: `kubelet:${this.resource}`,
      // Everything but the kubelet's choice counts as taken, so the pick is exactly that choice.
      isReserved: (group, id) => group !== this.group || !wanted.includes(id),
      ...(signal ? { signal } : {}),
    });
    this.#devices.release(held.id);
    const r = held.reservation;
    return {
      envs: r.envs,
      mounts: r.mounts.map((m) => ({ container_path: m.taskPath, host_path: m.hostPath, read_only: m.readOnly })),
      devices: r.devices.map((d) => ({ container_path: d.taskPath, host_path: d.hostPath, permissions: d.permissions })),
      annotations: {},
      cdi_devices: [],
    };
  }

  /**
   * The device manager's pick among what the kubelet offers: every must-include id, then the
   * lowest healthy free ids. Advice only (the kubelet fails the pod when this call fails), so
   * when the manager sees too few healthy ones it falls back to the lowest offered ids.
   */
  preferred(request: ContainerPreferredAllocationRequest): string[] {
    const available = new Set(request.available_deviceIDs);
    const must = [...new Set(request.must_include_deviceIDs)];
    const need = request.allocation_size - must.length;
    if (need <= 0) return must;
    let rest: string[];
    try {
      const [pick] = pickDevices([{ name: this.group, count: need }], this.#devices.devices(), (group, id) => {
        return group !== this.group || !available.has(id) || must.includes(id);
      });
      rest = pick?.ids ?? [];
    } catch {
      rest = [...available]
        .filter((id) => !must.includes(id))
        .sort()
        .slice(0, need);
    }
    return [...must, ...rest];
  }

  #group(): NodeDeviceGroup | undefined {
    return this.#devices.devices().find((g) => g.id === this.group);
  }

  #numaOf(bus: string): Promise<number | undefined> {
    let node = this.#numa.get(bus);
    if (!node) this.#numa.set(bus, (node = numaNode(bus, this.#sysfsRoot)));
    return node;
  }
}
