/**
 * The NUMA node of a PCI device, from sysfs, for ListAndWatch's topology. taskhost's device
 * locality is a PCI bus id (shared/device.ts); the kernel says which node that bus hangs off.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * The NUMA node of the device at `pciBusId` (`0000:17:00.0`, or nvidia-smi's `00000000:17:00.0`),
 * read from `<sysfs>/bus/pci/devices/<id>/numa_node`; undefined when the kernel does not know
 * (-1: a machine without NUMA) or the device is not there.
 */
export async function numaNode(pciBusId: string, sysfsRoot = '/sys'): Promise<number | undefined> {
  const id = sysfsBusId(pciBusId);
  if (!id) return undefined;
  const text = await readFile(path.join(sysfsRoot, 'bus/pci/devices', id, 'numa_node'), 'utf8').catch(() => undefined);
  const node = text === undefined ? NaN : Number(text.trim());
  return Number.isInteger(node) && node >= 0 ? node : undefined;
}

/** sysfs spells a bus id with a 4-digit domain in lower case; nvidia-smi with 8 digits in upper case. */
function sysfsBusId(pciBusId: string): string | undefined {
  const m = /^(?:([0-9a-f]{4,8}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7])$/i.exec(pciBusId.trim());
  if (!m) return undefined;
  const domain = (m[1] ?? '0000').slice(-4);
  return `${domain}:${m[2]}`.toLowerCase();
}
