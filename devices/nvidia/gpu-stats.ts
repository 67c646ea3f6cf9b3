/** Device statistics from the stats query, grouped like the fingerprint. */
import type { DeviceGroupStats, DeviceStats, StatValue, Unit } from '../../shared/device.js';
import { groupName, type Gpu } from './gpu-inventory.js';
import { statsFields } from './nvidia-smi.js';
import { notAReading, splitRows, toNumber } from './smi-csv.js';

export interface StatsReading {
  stats: DeviceStats;
  /** UUIDs in the output that the inventory does not know (a GPU that appeared since the last scan). */
  unknown: string[];
}

/**
 * Per GPU: summary = utilization.gpu in %, and stats `memory.used` (MiB), `temperature.gpu` (C),
 * `power.draw` (W). A value nvidia-smi cannot read is the string it gave: "[N/A]" becomes "N/A".
 */
export function readStats(stdout: string, gpus: readonly Gpu[], timestamp: number): StatsReading {
  const byId = new Map(gpus.map((g) => [g.id, g]));
  const groups = new Map<string, DeviceGroupStats>();
  const unknown: string[] = [];
  for (const [uuid, utilization, memoryUsed, temperature, power] of splitRows(stdout, statsFields.length).rows) {
    const gpu = byId.get(uuid!);
    if (!gpu) {
      unknown.push(uuid!);
      continue;
    }
    const name = groupName(gpu.model);
    let group = groups.get(name);
    if (!group) groups.set(name, (group = { vendor: 'nvidia', type: 'gpu', name, instances: {} }));
    group.instances[gpu.id] = {
      summary: stat(utilization!, '%', 'GPU utilization'),
      stats: {
        'memory.used': stat(memoryUsed!, 'MiB', 'memory in use'),
        'temperature.gpu': stat(temperature!, 'C', 'GPU core temperature'),
        'power.draw': stat(power!, 'W', 'board power draw'),
      },
    };
  }
  const sorted = [...groups.values()].sort((a, b) => a.name.localeCompare(b.name));
  return { stats: { timestamp, groups: sorted }, unknown };
}

function stat(raw: string, unit: Unit, description: string): StatValue {
  const n = toNumber(raw);
  if (n !== undefined) return { value: n, unit, description };
  return { value: notAReading(raw) ?? raw, description };
}
