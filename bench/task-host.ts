/**
 * A throwaway taskhost for the driver benchmark: a PluginLoader hosting only the built-in drivers
 * asked for, a DriverManager over it, and a fresh data directory, all gone after close().
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { DriverManager } from '../drivers/driver-manager.js';
import { parseAgentConfig, type AgentConfig, type Supervision } from '../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../plugin-loader/discovery.js';
import { PluginLoader } from '../plugin-loader/loader.js';

/** Built-in drivers the benchmark uses; each lives in a folder named after it. */
export type BuiltinDriver = 'mock' | 'raw_exec';

export interface TaskHostOptions {
  drivers: readonly BuiltinDriver[];
  /** Agent-wide supervision; omitted keys keep their defaults. */
  supervision?: Supervision;
}

export interface TaskHost {
  readonly config: AgentConfig;
  readonly loader: PluginLoader;
  readonly manager: DriverManager;
  readonly dataDir: string;
  close(): Promise<void>;
}

/** Starts the loader and the manager and waits for every driver's first fingerprint. */
export async function startTaskHost(options: TaskHostOptions): Promise<TaskHost> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'taskhost-bench-drivers-'));
  // Only the drivers asked for are hosted, so no other plugin's thread adds noise.
  const builtinDirs = builtinPluginDirs.filter((dir) => options.drivers.some((d) => path.basename(dir) === d));
  if (builtinDirs.length !== options.drivers.length) throw new Error(`not all of ${options.drivers.join(', ')} are built in`);
  const config = parseAgentConfig({
    // A folder that does not exist: only the built-ins are hosted.
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    ...(options.supervision ? { supervision: options.supervision } : {}),
  });
  // Errors only: a lost task or a failed plugin must show; the drill's own crash warnings need not.
  const logger = pino({ level: 'error' }, pino.destination(2));
  const loader = new PluginLoader({ config, logger, builtinDirs });
  const manager = new DriverManager({ loader, logger });
  const close = async () => {
    await manager.close();
    await loader.close();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    await manager.waitForFirstFingerprint(30_000);
    for (const name of options.drivers) {
      const health = manager.health().find((h) => h.name === name);
      if (health?.health !== 'healthy') throw new Error(`driver "${name}" is not healthy: ${health?.healthDescription ?? 'not hosted'}`);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { config, loader, manager, dataDir, close };
}
