/**
 * The GPUs nvidia-smi reports, and the device groups they make. Pure functions over nvidia-smi's
 * output, so every rule (what is unhealthy, how a model becomes a group name) is tested on text.
 */
import type { DeviceGroup } from '../../shared/device.js';
import { inventoryFields } from './nvidia-smi.js';
import { lostGpu, normalizeBusId, notAReading, splitRows, toNumber } from './smi-csv.js';

export interface Gpu {
  /** The GPU's UUID ("GPU-…"): stable across boots, unlike the index. */
  id: string;
  /** nvidia-smi's index: /dev/nvidia<index>. Undefined when it could not be read. */
  index?: number;
  /** The product name as nvidia-smi writes it, e.g. "NVIDIA H200". */
  model: string;
  memoryMiB?: number;
  driverVersion?: string;
  /** As nvidia-smi writes it, e.g. "00000000:18:00.0". */
  pciBusId?: string;
  healthy: boolean;
  healthDescription?: string;
}

export interface Inventory {
  gpus: Gpu[];
  /** What could not be used, worth one log line each (a GPU without a UUID, an unknown lost GPU). */
  notes: string[];
}

const field = Object.fromEntries(inventoryFields.map((f, i) => [f, i])) as Record<(typeof inventoryFields)[number], number>;
const uuidLike = /^(GPU|MIG)-[0-9A-Za-z-]+$/;

/**
 * The GPUs in the output of the inventory query. `previous` is the last inventory: a GPU that
 * nvidia-smi now says it lost, or whose UUID it cannot read, is matched by PCI bus id and kept
 * as unhealthy rather than dropped, so a task's scheduler sees why it is gone.
 */
export function readInventory(stdout: string, stderr: string, previous: readonly Gpu[]): Inventory {
  const { rows, other } = splitRows(stdout, inventoryFields.length, field.name);
  const notes: string[] = [];
  const gpus: Gpu[] = [];
  const byBus = new Map(previous.filter((g) => g.pciBusId).map((g) => [normalizeBusId(g.pciBusId!), g]));
  const stray = [
    ...other,
    ...stderr
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean),
  ];

  for (const row of rows) {
    const value = (f: keyof typeof field) => row[field[f]]!;
    const index = /^\d+$/.test(value('index')) ? Number(value('index')) : undefined;
    if (index === undefined && !uuidLike.test(value('uuid'))) {
      stray.push(row.join(', ')); // not a GPU row: some message that happens to contain ", "
      continue;
    }
    const busId = notAReading(value('pci.bus_id')) === undefined ? value('pci.bus_id') : undefined;
    const before = busId !== undefined ? byBus.get(normalizeBusId(busId)) : undefined;
    const uuid = notAReading(value('uuid')) === undefined ? value('uuid') : before?.id;
    if (uuid === undefined) {
      notes.push(
        `a GPU at index ${value('index')} (PCI ${value('pci.bus_id')}) reports no UUID (${value('uuid')}): it is left out until it does`,
      );
      continue;
    }
    if (gpus.some((g) => g.id === uuid)) {
      notes.push(`nvidia-smi listed GPU ${uuid} twice: the second row is ignored`);
      continue;
    }
    const problems: string[] = [];
    for (const f of inventoryFields) {
      const why = notAReading(value(f));
      if (why !== undefined) problems.push(`${f} is ${why}`);
    }
    const memory = toNumber(value('memory.total'));
    if (memory === undefined && notAReading(value('memory.total')) === undefined)
      problems.push(`memory.total "${value('memory.total')}" is not a number`);
    const gpu: Gpu = {
      id: uuid,
      model: notAReading(value('name')) === undefined ? value('name') : (before?.model ?? 'unknown'),
      healthy: problems.length === 0,
    };
    if (index !== undefined) gpu.index = index;
    else if (before?.index !== undefined) gpu.index = before.index;
    if (memory !== undefined) gpu.memoryMiB = memory;
    if (notAReading(value('driver_version')) === undefined) gpu.driverVersion = value('driver_version');
    if (busId !== undefined) gpu.pciBusId = busId;
    if (problems.length) gpu.healthDescription = `nvidia-smi could not read it: ${problems.join(', ')}`;
    gpus.push(gpu);
  }

  for (const line of stray) {
    const lost = lostGpu(line);
    if (!lost) {
      notes.push(`nvidia-smi said: ${line}`);
      continue;
    }
    const known = byBus.get(normalizeBusId(lost.pciBusId));
    if (known && !gpus.some((g) => g.id === known.id)) gpus.push({ ...known, healthy: false, healthDescription: lost.message });
    else if (!known) notes.push(`nvidia-smi lost a GPU it never listed: ${lost.message}`);
  }
  gpus.sort((a, b) => (a.index ?? Infinity) - (b.index ?? Infinity) || a.id.localeCompare(b.id));
  return { gpus, notes };
}

/**
 * A group name from a product name: the "NVIDIA " prefix dropped (the vendor is already in the
 * group's address) and every run of characters a name may not hold made one "-":
 * "NVIDIA H200" → "H200", "NVIDIA H200 NVL" → "H200-NVL", "Tesla V100-SXM2-16GB" → "Tesla-V100-SXM2-16GB".
 * The product name itself stays in the group's `model` attribute.
 */
export function groupName(model: string): string {
  const bare = model.trim().replace(/^nvidia\s+/i, '');
  const safe = bare
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .replace(/[-_.]+$/, '');
  return safe || 'unknown';
}

/**
 * One group per GPU model (nvidia/gpu/<name>), groups by name and devices by index. Attributes:
 * `model` (the product name), `memory` in MiB (the least of the group's GPUs, so every GPU in it has
 * at least that much), `driver_version`.
 */
export function toGroups(gpus: readonly Gpu[]): DeviceGroup[] {
  const groups = new Map<string, Gpu[]>();
  for (const gpu of gpus) {
    const name = groupName(gpu.model);
    groups.set(name, [...(groups.get(name) ?? []), gpu]);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, members]) => {
      const attributes: DeviceGroup['attributes'] = { model: { value: members[0]!.model } };
      const memory = members.flatMap((g) => (g.memoryMiB === undefined ? [] : [g.memoryMiB]));
      if (memory.length) attributes.memory = { value: Math.min(...memory), unit: 'MiB' };
      const driver = members.find((g) => g.driverVersion !== undefined)?.driverVersion;
      if (driver !== undefined) attributes.driver_version = { value: driver };
      return {
        vendor: 'nvidia',
        type: 'gpu',
        name,
        devices: members.map((g) => ({
          id: g.id,
          healthy: g.healthy,
          ...(g.healthDescription !== undefined ? { healthDescription: g.healthDescription } : {}),
          ...(g.pciBusId !== undefined ? { locality: { pciBusId: g.pciBusId } } : {}),
        })),
        attributes,
      };
    });
}
