/**
 * The two arms of bench/devices.ts. Both host the same N device plugins (device-bench-plugin.ts)
 * and check every message they send with the same validators; they differ in transport and host:
 *
 * - ours: taskhost itself, a PluginLoader (one worker thread per plugin) and a DeviceManager;
 * - peer: Nomad's model, each plugin in its own process serving gRPC on a unix socket, the host
 *   reading its Fingerprint and Stats server streams (grpc-js) and keeping the latest sample of
 *   every group, as Nomad's device manager does.
 *
 * An arm runs in three steps: start (timed to every plugin's first valid fingerprint), wait for
 * every plugin's first stats, then a measured window charged with all CPU the host process and
 * the plugin processes use.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { DeviceManager } from '../devices/device-manager.js';
import { validateFingerprint, validateStats } from '../devices/validate-device-messages.js';
import { parseAgentConfig } from '../plugin-loader/agent-config.js';
import { PluginLoader } from '../plugin-loader/loader.js';
import { groupId } from '../shared/device.js';
import { closingController } from '../shared/pause.js';
import { preciseNow, type DeviceBenchConfig } from './device-bench-plugin.js';
import { GrpcPluginClient } from './grpc-plugin-client.js';
import { siblingFile } from './paths.js';
import { ownCpuMs, processCpuMs } from './process-cpu.js';
import { SampleRecorder, type WindowFigures } from './sample-recorder.js';

export interface ArmSettings {
  plugins: number;
  groups: number;
  devicesPerGroup: number;
  intervalMs: number;
  fingerprintMs: number;
  warmupMs: number;
  windowMs: number;
}

export interface ArmRun extends WindowFigures {
  /** From starting the arm to every plugin's first valid fingerprint, ms. */
  firstFingerprintMs: number;
  /** CPU used in the window by the host and every plugin, ms. */
  cpuMs: number;
  windowMs: number;
}

export type ArmKey = 'ours' | 'peer';

interface BenchPlugin {
  name: string;
  /** file: URL of its entry module. */
  entry: string;
  config: DeviceBenchConfig;
}

/**
 * Writes one plugin folder per plugin into `pluginDir`: a manifest and an entry that builds the
 * compiled bench plugin under the folder's name, as a third-party plugin would ship.
 */
async function writePlugins(pluginDir: string, settings: ArmSettings): Promise<BenchPlugin[]> {
  const source = pathToFileURL(siblingFile('device-bench-plugin')).href;
  const plugins: BenchPlugin[] = [];
  for (let index = 0; index < settings.plugins; index++) {
    const name = `device-bench-${index}`;
    const dir = path.join(pluginDir, name);
    await mkdir(dir, { recursive: true });
    const manifest = { name: `taskhost-${name}`, version: '1.0.0', private: true, type: 'module', main: 'index.js' };
    const taskhost = { type: 'device', name, apiVersions: ['1.0'] };
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ ...manifest, taskhost }, null, 2));
    await writeFile(
      path.join(dir, 'index.js'),
      `import { createDeviceBenchPlugin } from ${JSON.stringify(source)};\nexport default createDeviceBenchPlugin(${JSON.stringify(name)});\n`,
    );
    const config = { index, groups: settings.groups, devicesPerGroup: settings.devicesPerGroup, fingerprintMs: settings.fingerprintMs };
    plugins.push({ name, entry: pathToFileURL(path.join(dir, 'index.js')).href, config });
  }
  return plugins;
}

/** Runs one arm once, in a fresh temporary folder that is removed afterwards. */
export async function runArm(arm: ArmKey, settings: ArmSettings): Promise<ArmRun> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `taskhost-bench-devices-${arm}-`));
  try {
    const plugins = await writePlugins(path.join(dataDir, 'plugins'), settings);
    return await (arm === 'ours' ? runOurs(plugins, dataDir, settings) : runPeer(plugins, dataDir, settings));
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** The measured window: CPU of this process (all threads) plus `otherPids`, and what arrived. */
async function measureWindow(recorder: SampleRecorder, names: string[], settings: ArmSettings, otherPids: number[]) {
  const cpuOthers = async () => (await Promise.all(otherPids.map(processCpuMs))).reduce((a, b) => a + b, 0);
  await sleep(settings.warmupMs);
  const othersBefore = await cpuOthers();
  const ownBefore = ownCpuMs();
  const openedAt = preciseNow();
  recorder.open(openedAt, names);
  await sleep(settings.windowMs);
  const closedAt = preciseNow();
  recorder.close(closedAt);
  const ownAfter = ownCpuMs();
  const othersAfter = await cpuOthers();
  return { cpuMs: ownAfter - ownBefore + (othersAfter - othersBefore), windowMs: closedAt - openedAt, ...recorder.figures() };
}

async function runOurs(plugins: BenchPlugin[], dataDir: string, settings: ArmSettings): Promise<ArmRun> {
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'plugins'),
    dataDir,
    plugins: Object.fromEntries(plugins.map((p) => [p.name, { config: p.config }])),
  });
  const logger = pino({ level: 'error' }, pino.destination(2));
  const started = preciseNow();
  // Built-ins left out: only the bench plugins run.
  const loader = new PluginLoader({ config, logger, builtinDirs: [] });
  const manager = new DeviceManager({ loader, logger, statsIntervalMs: settings.intervalMs });
  const recorder = new SampleRecorder(settings.intervalMs);
  manager.on('sampled', (s) => recorder.record(s.plugin, s.timestamp, s.receivedAt));
  try {
    await manager.waitForFirstFingerprint(60_000);
    const unhealthy = manager.health().filter((h) => h.health !== 'healthy');
    if (manager.health().length !== plugins.length || unhealthy.length) {
      throw new Error(`not every bench plugin is healthy: ${JSON.stringify(manager.health())}`);
    }
    const firstFingerprintMs = preciseNow() - started;
    await manager.waitForFirstStats(60_000);
    const window = await measureWindow(
      recorder,
      plugins.map((p) => p.name),
      settings,
      [],
    );
    return { firstFingerprintMs, ...window };
  } finally {
    await manager.close();
    await loader.close();
  }
}

async function runPeer(plugins: BenchPlugin[], dataDir: string, settings: ArmSettings): Promise<ArmRun> {
  const started = preciseNow();
  const host = new PeerHost(settings.intervalMs);
  try {
    // Settle every launch before failing, so close() stops every process that did start.
    const launched = await Promise.allSettled(plugins.map((plugin) => host.launch(plugin, dataDir)));
    const failed = launched.find((l) => l.status === 'rejected');
    if (failed) throw failed.reason;
    const firstFingerprintMs = preciseNow() - started;
    await host.firstStats();
    const window = await measureWindow(
      host.recorder,
      plugins.map((p) => p.name),
      settings,
      host.pids(),
    );
    return { firstFingerprintMs, ...window };
  } finally {
    await host.close();
  }
}

/**
 * The peer's host: Nomad's device manager reduced to what the benchmark exercises. It validates
 * each fingerprint and stats message with taskhost's own validators (so both arms do the same
 * checking) and keeps the latest sample of every group it owns.
 */
class PeerHost {
  readonly recorder: SampleRecorder;
  readonly #intervalMs: number;
  readonly #clients: GrpcPluginClient[] = [];
  readonly #stop = closingController();
  readonly #owners = new Map<string, string>();
  readonly #samples = new Map<string, { stats: unknown; sampledAt: number }>();
  readonly #loops: Promise<void>[] = [];
  readonly #firstStats: Promise<void>[] = [];

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
    this.recorder = new SampleRecorder(intervalMs);
  }

  pids(): number[] {
    return this.#clients.map((c) => c.child.pid!);
  }

  /** Starts the plugin's process, configures it, and resolves at its first valid fingerprint. */
  async launch(plugin: BenchPlugin, dataDir: string): Promise<void> {
    const client = await GrpcPluginClient.launch({
      entry: plugin.entry,
      methods: ['setConfig', 'fingerprint', 'reserve', 'stats'],
      streams: ['fingerprint', 'stats'],
    });
    this.#clients.push(client);
    const pluginDataDir = path.join(dataDir, 'plugin-data', plugin.name);
    await client.call('setConfig', [{ apiVersion: '1.0', config: plugin.config, agent: { dataDir, pluginDataDir } }]);
    let firstFingerprint!: () => void;
    const fingerprinted = new Promise<void>((resolve) => (firstFingerprint = resolve));
    let firstStats!: () => void;
    this.#firstStats.push(new Promise<void>((resolve) => (firstStats = resolve)));
    const follow = async (method: string, args: unknown[], onItem: (item: unknown) => void) => {
      try {
        for await (const item of client.stream(method, args, this.#stop.signal)) onItem(item);
      } catch (err) {
        if (!this.#stop.signal.aborted) throw err;
      }
    };
    this.#loops.push(
      follow('fingerprint', [], (message) => {
        const checked = validateFingerprint(message, plugin.name, (group) => this.#owners.get(group), { owned: true });
        if (!checked.ok) throw new Error(`${plugin.name} sent an invalid fingerprint: ${JSON.stringify(checked.issues)}`);
        for (const group of checked.value.groups) this.#owners.set(groupId(group), plugin.name);
        firstFingerprint();
      }),
    );
    await fingerprinted;
    this.#loops.push(
      follow('stats', [this.#intervalMs], (message) => {
        const checked = validateStats(message, { owned: true });
        if (!checked.ok) throw new Error(`${plugin.name} sent invalid stats: ${JSON.stringify(checked.issues)}`);
        const now = Date.now();
        for (const group of checked.value.groups) {
          const id = groupId(group);
          if (this.#owners.get(id) === plugin.name) this.#samples.set(id, { stats: group, sampledAt: now });
        }
        this.recorder.record(plugin.name, checked.value.timestamp, preciseNow());
        firstStats();
      }),
    );
  }

  async firstStats(): Promise<void> {
    await Promise.all(this.#firstStats);
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await Promise.allSettled(this.#loops);
    await Promise.all(this.#clients.map((c) => c.close()));
  }
}
