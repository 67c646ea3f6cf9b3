/**
 * `taskhost kubelet serve <device-plugin> --resource <domain/name>`: hosts one taskhost device
 * plugin (PluginLoader + DeviceManager, as `taskhost devices` does), picks the device group the
 * resource stands for, and runs a KubeletBridge until SIGTERM or SIGINT. Everything it has to
 * say goes to stderr; it is a server, so there is no --json.
 */
import path from 'node:path';
import { CommanderError } from 'commander';
import type { Logger } from 'pino';
import { DeviceManager, type NodeDeviceGroup } from '../../devices/device-manager.js';
import { PluginLoader } from '../../plugin-loader/loader.js';
import type { AgentConfig } from '../../plugin-loader/agent-config.js';
import { PluginNotFoundError, TaskhostError } from '../../shared/errors.js';
import { closest } from '../../shared/schema.js';
import { KubeletBridge } from './kubelet-bridge.js';
import { resourceNameProblem } from './resource-name.js';
import { ResourceDevices } from './resource-devices.js';

/** Signals that stop the server: a DaemonSet's pod is stopped with SIGTERM, a terminal with Ctrl-C. */
export const serveStopSignals = ['SIGTERM', 'SIGINT'] as const;
export type ServeStopSignal = (typeof serveStopSignals)[number];

export interface ServeKubeletOptions {
  plugin: string;
  resource: string;
  kubeletDir: string;
  /** `vendor/type/name`; needed when the plugin reports several groups. */
  group?: string | undefined;
  config: AgentConfig;
  logger: Logger;
  stderr: { write(text: string): unknown };
  /** Where the stop signals come from: the process, or a test. */
  interrupts: { on(event: ServeStopSignal, fn: () => void): unknown; off(event: ServeStopSignal, fn: () => void): unknown };
  /** How long to wait for the plugin's first fingerprint (default 60 s). */
  fingerprintTimeoutMs?: number;
}

/** Serves until a stop signal; resolves with the exit code. Throws a usage error (exit 2) for a bad resource name or group. */
export async function serveKubelet(options: ServeKubeletOptions): Promise<number> {
  const problem = resourceNameProblem(options.resource);
  if (problem) throw usage(`--resource ${problem}`);
  const { logger: log, plugin } = options;
  const kubeletDir = path.resolve(options.kubeletDir);
  // Listening from the start: a pod stopped while its plugin still loads exits clean too.
  const stop = stopSignal(options.interrupts);
  const loader = new PluginLoader({ config: options.config, logger: log, only: { names: [plugin] } });
  const devices = new DeviceManager({ loader, logger: log });
  let bridge: KubeletBridge | undefined;
  try {
    const startup = (async () => {
      await loader.start();
      checkHosted(plugin, loader.list());
      await devices.waitForFirstFingerprint(options.fingerprintTimeoutMs ?? 60_000);
      return pickGroup(plugin, devices, options.group, log);
    })();
    startup.catch(() => undefined); // awaited below unless a signal came first
    const first = await Promise.race([startup.then((group) => ({ group })), stop.signal.then((signal) => ({ signal }))]);
    if ('signal' in first) {
      options.stderr.write(`taskhost: ${first.signal} while starting: stopping ${plugin}\n`);
      return 0;
    }
    const { group } = first;
    bridge = new KubeletBridge({ devices: new ResourceDevices({ devices, group, resource: options.resource }), kubeletDir, logger: log });
    options.stderr.write(`taskhost: serving ${plugin}'s ${group} as ${options.resource} to the kubelet in ${kubeletDir}\n`);
    bridge.start();
    const signal = await stop.signal;
    options.stderr.write(
      `taskhost: ${signal}: stopping: closing ${bridge.socketPath} (the kubelet then marks the devices of ${options.resource} unhealthy) and stopping ${plugin}\n`,
    );
    return 0;
  } finally {
    stop.dispose();
    await bridge?.close();
    await devices.close();
    await loader.close();
  }
}

/** Throws unless `plugin` is a device plugin the loader hosts and runs, saying what to do about it. */
function checkHosted(plugin: string, rows: { name: string; type: string; state: string; reason?: string | undefined }[]): void {
  const row = rows.find((r) => r.name === plugin);
  const deviceNames = rows.filter((r) => r.type === 'device').map((r) => r.name);
  if (!row) {
    const guess = closest(plugin, deviceNames);
    throw new PluginNotFoundError(
      `no plugin named "${plugin}"${guess ? ` (did you mean "${guess}"?)` : ''}; device plugins found: ${deviceNames.join(', ') || 'none'} (see taskhost plugins)`,
    );
  }
  if (row.type !== 'device') {
    throw new PluginNotFoundError(
      `"${plugin}" is a ${row.type} plugin, not a device plugin; device plugins found: ${deviceNames.join(', ') || 'none'}`,
    );
  }
  if (row.state === 'unconfigured') {
    throw new TaskhostError(`${plugin} ${row.reason ?? 'needs config'}; give it one at plugins.${plugin}.config in the file of --config`);
  }
  if (row.state === 'disabled') throw new TaskhostError(`${plugin} is disabled in the agent config: set plugins.${plugin}.enabled to true`);
  if (row.state === 'failed') throw new TaskhostError(`${plugin} failed to start: ${row.reason ?? 'no reason given'}`);
}

/** The group the resource stands for: `--group`, or the plugin's only one. */
function pickGroup(plugin: string, devices: DeviceManager, wanted: string | undefined, log: Logger): string {
  const groups: NodeDeviceGroup[] = devices.devices().filter((g) => g.plugin === plugin);
  const ids = groups.map((g) => g.id);
  const health = devices.health().find((h) => h.name === plugin);
  if (wanted !== undefined) {
    if (wanted.split('/').length !== 3 || wanted.split('/').includes('')) throw usage(`--group "${wanted}" must be vendor/type/name`);
    if (ids.includes(wanted)) return wanted;
    if (ids.length > 0) {
      const guess = closest(wanted, ids);
      throw usage(
        `--group "${wanted}": ${plugin} has no such group${guess ? ` (did you mean "${guess}"?)` : ''}; its groups: ${ids.join(', ')}`,
      );
    }
    // A plugin that has no devices yet (no GPU found, an empty folder) may get them later.
    log.warn(
      `${plugin} reports no device groups yet (${health?.healthDescription ?? 'no fingerprint'}); serving ${wanted} empty until it appears`,
    );
    return wanted;
  }
  if (ids.length === 1) return ids[0]!;
  if (ids.length > 1) {
    throw usage(
      `${plugin} reports ${ids.length} device groups (${ids.join(', ')}): say which one the resource is with --group vendor/type/name`,
    );
  }
  throw new TaskhostError(
    `${plugin} reports no device groups (${health?.health ?? 'unknown'}: ${health?.healthDescription ?? 'no fingerprint'}); pass --group vendor/type/name to serve one before it appears`,
  );
}

/** The first stop signal; dispose() stops listening (a command run in-process must leave no listener on `process`). */
function stopSignal(interrupts: ServeKubeletOptions['interrupts']): { signal: Promise<ServeStopSignal>; dispose: () => void } {
  let handlers: (readonly [ServeStopSignal, () => void])[] = [];
  const dispose = () => {
    for (const [name, fn] of handlers) interrupts.off(name, fn);
    handlers = [];
  };
  const signal = new Promise<ServeStopSignal>((resolve) => {
    handlers = serveStopSignals.map((s) => {
      const handler = () => {
        dispose();
        resolve(s);
      };
      interrupts.on(s, handler);
      return [s, handler] as const;
    });
  });
  return { signal, dispose };
}

function usage(message: string): CommanderError {
  return new CommanderError(2, 'taskhost.usage', `error: ${message}`);
}
