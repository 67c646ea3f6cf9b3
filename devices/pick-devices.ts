/**
 * Which devices a task gets: each request names a group as Nomad does (`vendor/type/name`,
 * `vendor/type` or `type`) and is met from ONE matching group, the first in id order with enough
 * free healthy devices, taking the lowest device ids. Deterministic, so the same node state
 * always gives the same answer.
 */
import { DeviceUnhealthyError, InvalidConfigError, NoFreeDeviceError, UnknownDeviceError } from '../shared/errors.js';
import { closest } from '../shared/schema.js';
import type { NodeDeviceGroup } from './device-manager.js';

export interface DeviceRequest {
  /** `vendor/type/name`, `vendor/type` or `type`. */
  name: string;
  count: number;
}

/** The devices picked from one group, for every request that landed on it. */
export interface DevicePick {
  group: NodeDeviceGroup;
  ids: string[];
}

/**
 * Picks devices for every request, or throws: UnknownDeviceError when a name matches no group,
 * NoFreeDeviceError when a matching group has enough healthy devices but too many are reserved,
 * DeviceUnhealthyError when none has enough healthy ones, InvalidConfigError for a count that is
 * not a positive integer.
 */
export function pickDevices(
  requests: readonly DeviceRequest[],
  groups: readonly NodeDeviceGroup[],
  isReserved: (group: string, id: string) => boolean,
): DevicePick[] {
  const picks = new Map<string, DevicePick>();
  const taken = (group: string, id: string) => isReserved(group, id) || Boolean(picks.get(group)?.ids.includes(id));
  for (const request of requests) {
    if (!Number.isInteger(request.count) || request.count < 1) {
      const message = `device request "${request.name}": count must be a whole number of at least 1, got ${request.count}`;
      throw new InvalidConfigError(message, { details: { errors: [{ path: '/count', message }] } });
    }
    const matching = matchGroups(request.name, groups);
    const free = (g: NodeDeviceGroup) => healthyIds(g).filter((id) => !taken(g.id, id));
    const group = matching.find((g) => free(g).length >= request.count);
    if (!group) {
      const counts = matching.map((g) => describeShortage(g, taken)).join('; ');
      const asked = `${request.count} device${request.count === 1 ? '' : 's'} of "${request.name}"`;
      const details = { name: request.name, count: request.count };
      // Healthy enough but held by others is a conflict to wait out, not a sick node.
      if (matching.some((g) => healthyIds(g).length >= request.count)) {
        throw new NoFreeDeviceError(`no free device: cannot reserve ${asked}: ${counts}`, { details });
      }
      throw new DeviceUnhealthyError(`cannot reserve ${asked}: ${counts}`, { details });
    }
    const pick = picks.get(group.id) ?? { group, ids: [] };
    pick.ids.push(...free(group).slice(0, request.count));
    picks.set(group.id, pick);
  }
  return [...picks.values()].map((p) => ({ ...p, ids: p.ids.sort() }));
}

/** Groups a name addresses, in id order; throws UnknownDeviceError (with a did-you-mean) for none. */
function matchGroups(name: string, groups: readonly NodeDeviceGroup[]): NodeDeviceGroup[] {
  const parts = name.split('/');
  const matches = (g: NodeDeviceGroup) =>
    parts.length === 3 ? g.id === name : parts.length === 2 ? `${g.vendor}/${g.type}` === name : g.type === name;
  const found = groups.filter(matches).sort((a, b) => (a.id < b.id ? -1 : 1));
  if (found.length) return found;
  const names = [...new Set(groups.flatMap((g) => [g.id, `${g.vendor}/${g.type}`, g.type]))];
  const guess = closest(name, names);
  const known = groups.map((g) => g.id);
  const hint = guess ? ` (did you mean "${guess}"?)` : '';
  const form = parts.length > 3 || parts.includes('') ? '; a device name is vendor/type/name, vendor/type or type' : '';
  throw new UnknownDeviceError(`no device group matches "${name}"${hint}${form}; groups on this node: ${known.join(', ') || 'none'}`, {
    details: { name, groups: known },
  });
}

function healthyIds(group: NodeDeviceGroup): string[] {
  return group.devices
    .filter((d) => d.health === 'healthy')
    .map((d) => d.id)
    .sort();
}

/** "example/file/mock has 1 healthy of 3 (2 reserved); b: world-writable" style. */
function describeShortage(group: NodeDeviceGroup, taken: (group: string, id: string) => boolean): string {
  const healthy = healthyIds(group);
  const reserved = healthy.filter((id) => taken(group.id, id)).length;
  const sick = group.devices.find((d) => d.health !== 'healthy');
  const why = sick ? ` (${sick.id}: ${sick.health}${sick.healthDescription ? `, ${sick.healthDescription}` : ''})` : '';
  return `${group.id} has ${healthy.length} healthy of ${group.devices.length}${reserved ? `, ${reserved} of them reserved` : ''}${why}`;
}
