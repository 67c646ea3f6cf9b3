// An agent's parts for the supervisor and task route tests: a store, a loader with the built-in
// mock and raw_exec drivers, a driver manager whose handles live under the data dir, a supervisor.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { AgentStore } from '../../agent/store.js';
import { handleDir, TaskSupervisor, isTerminal } from '../../agent/task-supervisor.js';
import type { TaskRecord } from '../../agent/store-records.js';
import { DriverManager } from '../../drivers/driver-manager.js';
import { FileHandleStore } from '../../drivers/handle-store.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import { PluginLoader } from '../../plugin-loader/loader.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';

export const quiet = pino({ level: 'silent' });
const builtins = builtinPluginDirs.filter((d) => /raw_exec|mock$/.test(d));

interface Teardown {
  teardown(fn: () => unknown): void;
}

export function freshDataDir(t: Teardown): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-sup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * `<dataDir>/devices` with one file per name (mode 0644: example-file counts a world-writable
 * file unhealthy): the devices of the example-file device plugin configured with `dir` there.
 */
export function deviceFolder(dataDir: string, names: readonly string[]): string {
  const dir = path.join(dataDir, 'devices');
  mkdirSync(dir, { recursive: true });
  for (const name of names) addDeviceFile(dir, name);
  return dir;
}

/** One more device file in a device folder. */
export function addDeviceFile(dir: string, name: string): void {
  writeFileSync(path.join(dir, name), `device ${name}\n`);
  chmodSync(path.join(dir, name), 0o644);
}

export interface Parts {
  dataDir: string;
  store: AgentStore;
  loader: PluginLoader;
  manager: DriverManager;
  supervisor: TaskSupervisor;
  /** Closes them all, leaving the tasks running (as the agent does on SIGTERM). */
  close(): Promise<void>;
}

/** Opens the parts on `dataDir` and starts the supervisor; closed at teardown unless closed before. */
export async function openParts(t: Teardown, dataDir: string): Promise<Parts> {
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: { ...fastSupervision, startTimeout: '60s' },
    plugins: { mock: { enabled: true } },
  });
  const store = await AgentStore.open({ dataDir });
  const loader = new PluginLoader({ config, logger: quiet, builtinDirs: builtins });
  const manager = new DriverManager({ loader, store: new FileHandleStore(handleDir(dataDir)), logger: quiet, streamBackoffMs: [20, 200] });
  const supervisor = new TaskSupervisor({ store, manager, logger: quiet });
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await supervisor.close();
      await manager.close();
      await loader.close();
      await store.close();
    })());
  t.teardown(close);
  await supervisor.start();
  return { dataDir, store, loader, manager, supervisor, close };
}

/** Resolves with the record once `ok` holds for it (checked on every change the supervisor writes). */
export function until(supervisor: TaskSupervisor, namespace: string, id: string, ok: (r: TaskRecord) => boolean): Promise<TaskRecord> {
  return new Promise((resolve, reject) => {
    const check = (r: TaskRecord) => {
      if (r.namespace !== namespace || r.id !== id) return;
      if (ok(r)) {
        supervisor.off('changed', check);
        resolve(r);
      } else if (isTerminal(r.state)) {
        supervisor.off('changed', check);
        reject(new Error(`task ${id} ended ${r.state} (${JSON.stringify(r.error ?? r.exitResult)}) before the condition held`));
      }
    };
    supervisor.on('changed', check);
    check(supervisor.get(namespace, id));
  });
}

export const running = (r: TaskRecord) => r.state === 'running';
