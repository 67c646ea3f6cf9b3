/**
 * Nomad's DevicePlugin service (hashicorp.nomad.plugins.device.DevicePlugin) over one taskhost
 * device plugin. Fingerprints come from the DeviceManager, which keeps following the plugin's
 * stream through failures and restarts and withdraws (marks unhealthy) the devices of a plugin
 * that misbehaves: so Nomad's stream never ends (Nomad drops a device plugin for good when it
 * does) and a failing plugin shows as unhealthy devices. Reserve and Stats go to the plugin
 * itself (Nomad picks the device ids; Nomad asks for its own stats interval), every answer
 * validated as the manager validates it.
 *
 * Units: Nomad rejects an attribute whose unit is not in its list (and with it the whole
 * fingerprint), and its list has no B, B/s, Hz or kHz: such values are sent in KiB, KiB/s and
 * MHz. A `C` or `%` attribute is sent as its number without a unit; stats keep `C` and `%`
 * (Nomad shows stats' units as they are, its own nvidia plugin sends both).
 */
import type * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { DeviceClient } from '../../devices/device-client.js';
import { DeviceManager, type NodeDeviceGroup } from '../../devices/device-manager.js';
import { validateReservation, validateStats } from '../../devices/validate-device-messages.js';
import { deviceMethods, groupId, type Attribute, type StatValue } from '../../shared/device.js';
import { InvalidConfigError, UnknownDeviceError } from '../../shared/errors.js';
import { formatIssues } from '../../shared/schema.js';
import type { PluginLoader } from '../../plugin-loader/loader.js';
import { followStream } from '../../plugin-loader/follow-stream.js';
import { closingController } from '../../shared/pause.js';
import { aborted, serverStream, unary } from './grpc-handlers.js';
import { nomadProto } from './nomad-protos.js';
import type { NomadService } from './nomad-service.js';
import { hostedService } from './hosted-service.js';
import type { NomadPluginHost } from './nomad-plugin-host.js';
import { durationMs, timestamp, type ProtoTime } from './nomad-task-config.js';

export interface DeviceServiceOptions {
  manager: DeviceManager;
  loader: PluginLoader;
  /** The taskhost device plugin served. */
  plugin: string;
  logger?: Logger;
  /** First and maximum delay before a failed stats stream is re-opened. */
  statsBackoffMs?: [number, number];
}

/** The DevicePlugin service over a DeviceManager (tests, and the hosted form below). */
export function createDeviceService(options: DeviceServiceOptions): NomadService {
  const { manager, plugin } = options;
  const log = options.logger ?? pino({ level: 'warn' }, pino.destination(2));
  const closing = closingController();
  const client = new DeviceClient(options.loader.get(plugin));
  const mine = () => manager.devices().filter((g) => g.plugin === plugin);

  const implementation: grpc.UntypedServiceImplementation = {
    Fingerprint: serverStream(closing.signal, async (_req: Record<string, never>, write, signal) => {
      await manager.waitForFirstFingerprint();
      let last = '';
      const send = (groups: NodeDeviceGroup[]) => {
        const message = { device_group: groups.map(groupMessage) };
        const text = JSON.stringify(message);
        if (text !== last) write(message);
        last = text;
      };
      send(mine());
      const onChanged = (groups: NodeDeviceGroup[]) => send(groups.filter((g) => g.plugin === plugin));
      manager.on('changed', onChanged);
      try {
        await aborted(signal);
      } finally {
        manager.off('changed', onChanged);
      }
    }),

    Reserve: unary(closing.signal, async (req: { device_ids: string[] }, signal) => {
      const known = new Set(mine().flatMap((g) => g.devices.map((d) => d.id)));
      const unknown = req.device_ids.filter((id) => !known.has(id));
      if (unknown.length || req.device_ids.length === 0) {
        throw new UnknownDeviceError(
          req.device_ids.length === 0
            ? `Reserve needs device ids of plugin "${plugin}"`
            : `device plugin "${plugin}" has no device ${unknown.map((id) => JSON.stringify(id)).join(', ')} (devices: ${[...known].join(', ') || 'none'})`,
        );
      }
      const answer = await client.reserve(req.device_ids, { signal });
      const checked = validateReservation(answer);
      if (!checked.ok) {
        const issues = formatIssues(checked.issues).join('; ');
        throw new InvalidConfigError(`device plugin "${plugin}" returned an invalid reservation: ${issues}`, {
          details: { errors: checked.issues },
        });
      }
      const r = checked.value;
      return {
        container_res: {
          envs: r.envs,
          mounts: r.mounts.map((m) => ({ task_path: m.taskPath, host_path: m.hostPath, read_only: m.readOnly })),
          devices: r.devices.map((d) => ({ task_path: d.taskPath, host_path: d.hostPath, permissions: d.permissions })),
        },
      };
    }),

    Stats: serverStream(closing.signal, async (req: { collection_interval: ProtoTime | null }, write, signal) => {
      const intervalMs = Math.max(10, durationMs(req.collection_interval, 1_000));
      await followStream({
        instance: client.instance,
        requires: deviceMethods,
        signal,
        backoffMs: options.statsBackoffMs ?? [1_000, 30_000],
        open: (s) => client.stats(intervalMs, s),
        onItem: (message) => {
          const checked = validateStats(message, { owned: true });
          if (!checked.ok) {
            log.warn({ plugin, issues: checked.issues }, `invalid device stats ignored: ${formatIssues(checked.issues).join('; ')}`);
            return;
          }
          const owned = new Set(mine().map((g) => g.id));
          const at = timestamp(checked.value.timestamp);
          write({
            groups: checked.value.groups
              .filter((g) => owned.has(groupId(g)))
              .map((g) => ({
                vendor: g.vendor,
                type: g.type,
                name: g.name,
                instance_stats: Object.fromEntries(
                  Object.entries(g.instances).map(([id, s]) => [
                    id,
                    {
                      summary: statValue(s.summary),
                      stats: { nested: {}, attributes: Object.fromEntries(Object.entries(s.stats).map(([k, v]) => [k, statValue(v)])) },
                      timestamp: at,
                    },
                  ]),
                ),
              })),
          });
        },
        onError: (error) => log.warn({ plugin, err: error.message }, `device stats failed: ${error.message}`),
      });
    }),
  };

  return {
    service: (nomadProto() as unknown as DeviceProto).hashicorp.nomad.plugins.device.DevicePlugin.service,
    implementation,
    async close() {
      closing.abort();
    },
  };
}

/** The DevicePlugin service of the device plugin a `taskhost nomad serve` process hosts (nomad-serve.ts loads it). */
export function deviceService(host: NomadPluginHost, logger: Logger): NomadService {
  const service = (nomadProto() as unknown as DeviceProto).hashicorp.nomad.plugins.device.DevicePlugin.service;
  return hostedService(host, service, async (loader) => {
    const manager = new DeviceManager({ loader, logger });
    await manager.start();
    const served = createDeviceService({ manager, loader, plugin: host.name, logger });
    return { served, close: async () => (await served.close(), await manager.close()) };
  });
}

type DeviceProto = { hashicorp: { nomad: { plugins: { device: { DevicePlugin: grpc.ServiceClientConstructor } } } } };

/** Units Nomad has no name for, and what the value is sent in instead. */
const converted: Record<string, { unit: string; divide: number }> = {
  B: { unit: 'KiB', divide: 1024 },
  'B/s': { unit: 'KiB/s', divide: 1024 },
  Hz: { unit: 'MHz', divide: 1e6 },
  kHz: { unit: 'MHz', divide: 1e3 },
};

/** Units an attribute may not carry at all in Nomad (its number is sent without one). */
const attributeUnitless = new Set(['C', '%']);

function inNomadUnits(value: number, unit: string | undefined): { value: number; unit: string } {
  if (unit === undefined) return { value, unit: '' };
  const to = converted[unit];
  return to ? { value: value / to.divide, unit: to.unit } : { value, unit };
}

function attributeMessage(attribute: Attribute): Record<string, unknown> {
  const { value } = attribute;
  if (typeof value === 'boolean') return { bool_val: value };
  if (typeof value === 'string') return { string_val: value };
  const unit = 'unit' in attribute ? attribute.unit : undefined;
  const number = inNomadUnits(value, unit && attributeUnitless.has(unit) ? undefined : unit);
  const kind = Number.isSafeInteger(number.value) ? { int_val: String(number.value) } : { float_val: number.value };
  return { ...kind, unit: number.unit };
}

function statValue(stat: StatValue): Record<string, unknown> {
  const desc = stat.description ?? '';
  if (typeof stat.value === 'string') return { string_val: { value: stat.value }, unit: stat.unit ?? '', desc };
  const number = inNomadUnits(stat.value, stat.unit);
  const kind = Number.isSafeInteger(number.value)
    ? { int_numerator_val: { value: String(number.value) } }
    : { float_numerator_val: { value: number.value } };
  return { ...kind, unit: number.unit, desc };
}

function groupMessage(group: NodeDeviceGroup) {
  return {
    vendor: group.vendor,
    device_type: group.type,
    device_name: group.name,
    devices: group.devices.map((d) => ({
      ID: d.id,
      healthy: d.health === 'healthy',
      health_description: d.healthDescription ?? (d.health === 'healthy' ? '' : `health ${d.health}`),
      hw_locality: d.locality?.pciBusId ? { pci_bus_id: d.locality.pciBusId } : null,
    })),
    attributes: Object.fromEntries(Object.entries(group.attributes).map(([k, v]) => [k, attributeMessage(v)])),
  };
}
