/**
 * The nvidia device plugin, built in: NVIDIA GPUs as reported by `nvidia-smi`, one group per
 * model (nvidia/gpu/H200), each GPU a device whose id is its UUID. Reserving GPUs sets
 * NVIDIA_VISIBLE_DEVICES and hands the task their device nodes.
 *
 * No nvidia-smi on this machine means no NVIDIA GPUs ("undetected"): the plugin reports an empty
 * list of groups, says so in one log line, and looks again every fingerprintPeriod. The same goes
 * for an nvidia-smi that fails without listing a GPU (exit code 9: the driver is not loaded; 12: no
 * NVML library; 18: driver/library version mismatch), its output in the log line. GPUs it has
 * listed before stay listed through such a failure, unhealthy with the reason.
 * Log lines are written once per change, never once per poll.
 */
import { existsSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { defineDevicePlugin, type ContainerReservation, type DeviceFingerprint, type DeviceStats } from '../../shared/device.js';
import { Duration, parseDuration } from '../../shared/duration.js';
import { DeviceUnhealthyError, InvalidConfigError, UnknownDeviceError } from '../../shared/errors.js';
import type { SetConfigRequest } from '../../shared/plugin.js';
import { readInventory, toGroups, type Gpu } from './gpu-inventory.js';
import { readStats } from './gpu-stats.js';
import { inventoryFields, queryArgs, runNvidiaSmi, statsFields, type SmiResult } from './nvidia-smi.js';
import { closingController, pause as sleep } from '../../shared/pause.js';

const version = '0.1.0';

export const NvidiaConfig = Type.Object({
  nvidiaSmi: Type.String({
    minLength: 1,
    default: 'nvidia-smi',
    description: 'the nvidia-smi program: an absolute path, or a name looked up on PATH',
  }),
  fingerprintPeriod: Duration({ default: '1m', description: 'how often the GPUs are looked at again; fingerprint() reports only changes' }),
});
export type NvidiaConfig = Static<typeof NvidiaConfig>;

/** What tests replace; the worker calls the factory with none of it. */
export interface NvidiaOptions {
  /** Where log lines go (default: stderr, which the host logs under the plugin's name). */
  log?: (line: string) => void;
  /** Whether a device node exists (default: fs.existsSync). */
  pathExists?: (path: string) => boolean;
  /** How long one nvidia-smi run may take before it is killed (default 10s). */
  queryTimeoutMs?: number;
}

/** Nodes every CUDA task needs besides its GPUs' /dev/nvidia<index>, passed on when present. */
export const controlNodes: readonly string[] = ['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools'];

const minFingerprintPeriodMs = 100;
/** A stats sample may look the GPUs up again for a UUID it does not know, at most this often. */
const rescanForStatsMs = 1_000;

/** A fresh plugin that knows no GPUs yet: the worker calls it once. */
export default function nvidiaDevicePlugin(options: NvidiaOptions = {}) {
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const pathExists = options.pathExists ?? existsSync;
  const timeoutMs = options.queryTimeoutMs ?? 10_000;
  let config: NvidiaConfig = { nvidiaSmi: 'nvidia-smi', fingerprintPeriod: '1m' };
  let periodMs = 60_000;
  let gpus: Gpu[] = [];
  let scannedAt = -Infinity;
  let scanning: Promise<Gpu[]> | undefined;
  // Ends every stream and kills a running nvidia-smi when the plugin shuts down.
  const closing = closingController();

  // The last line logged per topic: a problem is logged when it starts or changes, not on every poll.
  const said = new Map<string, string>();
  const tell = (topic: string, line: string) => {
    if (said.get(topic) === line) return;
    said.set(topic, line);
    log(line);
  };

  const run = (fields: readonly string[]) => runNvidiaSmi(config.nvidiaSmi, queryArgs(fields), { timeoutMs, signal: closing.signal });

  /** The GPUs as nvidia-smi reports them now; concurrent callers share one run. */
  const scan = (): Promise<Gpu[]> => {
    scanning ??= run(inventoryFields)
      .then((result) => {
        gpus = interpret(result);
        scannedAt = performance.now();
        return gpus;
      })
      .finally(() => (scanning = undefined));
    return scanning;
  };

  /**
   * nvidia-smi gave no list. GPUs it listed before stay, unhealthy with the reason ("init failed
   * means every device unhealthy"): a GPU that silently vanished from the node would leave its
   * tasks' operators guessing. Never seen any: there are none to report.
   */
  const noList = (reason: string): Gpu[] => {
    tell('status', `${reason}: ${gpus.length ? `reporting its ${gpus.length} GPU(s) as unhealthy until it answers` : 'reporting no GPUs'}`);
    return gpus.map((g) => ({ ...g, healthy: false, healthDescription: reason }));
  };

  const interpret = (result: SmiResult): Gpu[] => {
    switch (result.kind) {
      case 'cancelled':
        return gpus;
      case 'missing':
        if (gpus.length) return noList(result.message);
        tell('status', missingLine(result.message));
        return [];
      case 'timeout':
        return noList(result.message);
      case 'failed':
      case 'ok': {
        const { stdout, stderr } = result;
        const found = readInventory(stdout, stderr, gpus);
        if (result.kind === 'failed' && found.gpus.length === 0) return noList(result.message);
        for (const note of found.notes) tell(`note:${note}`, note);
        const listed =
          result.kind === 'failed' ? `${config.nvidiaSmi} exited with code ${result.exitCode}, listing` : `${config.nvidiaSmi} lists`;
        tell('status', `${listed} ${summary(found.gpus)}`);
        for (const gpu of found.gpus) {
          if (!gpu.healthy) tell(`gpu:${gpu.id}`, `GPU ${gpu.id} is unhealthy: ${gpu.healthDescription}`);
          else if (said.has(`gpu:${gpu.id}`)) tell(`gpu:${gpu.id}`, `GPU ${gpu.id} is healthy again`);
        }
        return found.gpus;
      }
    }
  };

  const sampleStats = async (): Promise<DeviceStats> => {
    const result = await run(statsFields);
    if (result.kind === 'missing') tell('status', missingLine(result.message));
    if (result.kind === 'timeout') tell('stats', `stats: ${result.message}`);
    if (result.kind !== 'ok' && result.kind !== 'failed') return { timestamp: Date.now(), groups: [] };
    // A failed run may still list the GPUs it could read (one lost GPU makes nvidia-smi exit 15).
    let reading = readStats(result.stdout, gpus, Date.now());
    if (reading.unknown.length && performance.now() - scannedAt > rescanForStatsMs) {
      await scan();
      reading = readStats(result.stdout, gpus, reading.stats.timestamp);
    }
    if (result.kind === 'failed' && reading.stats.groups.length === 0) tell('stats', `stats: ${result.message}`);
    else if (said.has('stats')) tell('stats', 'stats: nvidia-smi answers again');
    return reading.stats;
  };

  return defineDevicePlugin({
    info: () => ({ type: 'device', name: 'nvidia', pluginVersion: version, apiVersions: ['1.0'] }),
    configSchema: () => NvidiaConfig,
    setConfig(request: SetConfigRequest<NvidiaConfig>) {
      const ms = parseDuration(request.config.fingerprintPeriod);
      if (ms < minFingerprintPeriodMs) {
        const message = `fingerprintPeriod must be at least ${minFingerprintPeriodMs}ms, got "${request.config.fingerprintPeriod}"`;
        throw new InvalidConfigError(message, { details: { errors: [{ path: '/fingerprintPeriod', message }] } });
      }
      config = request.config;
      periodMs = ms;
    },

    async *fingerprint(signal: AbortSignal): AsyncGenerator<DeviceFingerprint> {
      const stop = AbortSignal.any([signal, closing.signal]);
      let last: string | undefined;
      while (!stop.aborted) {
        const message: DeviceFingerprint = { groups: toGroups(await scan()) };
        if (stop.aborted) return;
        const key = JSON.stringify(message);
        if (key !== last) {
          last = key;
          yield message;
        }
        await sleep(periodMs, stop);
      }
    },

    async reserve(deviceIds: string[]): Promise<ContainerReservation> {
      if (!Array.isArray(deviceIds) || deviceIds.length === 0) {
        const message = 'reserve() needs the ids of the GPUs to reserve (their UUIDs)';
        throw new InvalidConfigError(message, { details: { errors: [{ path: '', message }] } });
      }
      const ids = [...new Set(deviceIds)];
      // The worker may have restarted since the last fingerprint: look again before saying no.
      const known = ids.every((id) => gpus.some((g) => g.id === id)) ? gpus : await scan();
      const byId = new Map(known.map((g) => [g.id, g]));
      const unknown = ids.filter((id) => !byId.has(id));
      if (unknown.length) {
        const have = known.map((g) => `${g.id} (index ${g.index ?? '?'})`).join(', ');
        throw new UnknownDeviceError(
          `nvidia has no GPU ${unknown.map((id) => `"${id}"`).join(', ')}; it knows ${have || 'none: nvidia-smi lists no GPUs'}`,
          { details: { unknown, known: known.map((g) => g.id) } },
        );
      }
      const chosen = ids.map((id) => byId.get(id)!);
      const sick = chosen.filter((g) => !g.healthy || g.index === undefined);
      if (sick.length) {
        throw new DeviceUnhealthyError(
          sick.map((g) => `GPU ${g.id} is unhealthy: ${g.healthDescription ?? 'its index is unknown'}`).join('; '),
          {
            details: { ids: sick.map((g) => g.id) },
          },
        );
      }
      const nodes = [...chosen.map((g) => `/dev/nvidia${g.index}`), ...controlNodes.filter((p) => pathExists(p))];
      return {
        envs: { NVIDIA_VISIBLE_DEVICES: ids.join(',') },
        mounts: [],
        devices: nodes.map((node) => ({ taskPath: node, hostPath: node, permissions: 'rw' })),
      };
    },

    async *stats(intervalMs: number, signal: AbortSignal): AsyncGenerator<DeviceStats> {
      if (typeof intervalMs !== 'number' || !(intervalMs > 0)) {
        const message = `the stats interval must be a positive number of ms, got ${intervalMs}`;
        throw new InvalidConfigError(message, { details: { errors: [{ path: '', message }] } });
      }
      const stop = AbortSignal.any([signal, closing.signal]);
      let next = performance.now();
      while (!stop.aborted) {
        const sample = await sampleStats();
        if (stop.aborted) return;
        yield sample;
        // On a fixed schedule; ticks a slow nvidia-smi overran are skipped, not made up.
        next += intervalMs;
        const now = performance.now();
        if (next < now) next += Math.ceil((now - next) / intervalMs) * intervalMs;
        await sleep(next - now, stop);
      }
    },

    shutdown(): void {
      closing.abort();
    },
  });
}

function missingLine(message: string): string {
  return `${message}: no NVIDIA GPUs to report (install the NVIDIA driver utilities, or set nvidiaSmi to the program's path)`;
}

/** "2 GPU(s): 2x NVIDIA H200, driver 550.90.07". */
function summary(gpus: readonly Gpu[]): string {
  if (gpus.length === 0) return 'no GPUs';
  const models = new Map<string, number>();
  for (const g of gpus) models.set(g.model, (models.get(g.model) ?? 0) + 1);
  const driver = gpus.find((g) => g.driverVersion)?.driverVersion;
  const unhealthy = gpus.filter((g) => !g.healthy).length;
  return [
    `${gpus.length} GPU(s): ${[...models].map(([m, n]) => `${n}x ${m}`).join(', ')}`,
    driver && `driver ${driver}`,
    unhealthy && `${unhealthy} unhealthy`,
  ]
    .filter(Boolean)
    .join(', ');
}
