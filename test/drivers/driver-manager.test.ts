// The driver manager against real workers: health from fingerprints, task lifecycle, and no
// task lost when the driver's worker is killed under running tasks.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import t from 'tap';
import { DriverManager, type DriverHealthInfo } from '../../drivers/driver-manager.js';
import { FileHandleStore, MemoryHandleStore } from '../../drivers/handle-store.js';
import { parseTaskSpec } from '../../drivers/prepare-task.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { PluginLoader } from '../../plugin-loader/loader.js';
import type { TaskHandle } from '../../shared/driver.js';
import { fastSupervision, next } from '../helpers/fixture-plugins.js';

const examples = fileURLToPath(new URL('../../examples/plugins', import.meta.url));
const quiet = pino({ level: 'silent' });

function setup(options: { dataDir?: string; store?: 'memory' | 'file'; plugins?: Record<string, unknown> } = {}) {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'taskhost-dm-'));
  const config = parseAgentConfig({
    pluginDir: examples,
    dataDir,
    supervision: fastSupervision,
    plugins: { broken: { enabled: false }, countdown: { config: { tickMs: 50 } }, ...options.plugins },
  });
  const loader = new PluginLoader({ config, logger: quiet, builtinDirs: [] });
  const store = options.store === 'file' ? new FileHandleStore(path.join(dataDir, 'tasks')) : new MemoryHandleStore();
  const manager = new DriverManager({ loader, store, logger: quiet, streamBackoffMs: [20, 200] });
  return { dataDir, loader, manager, store };
}

const spec = (name: string, config: Record<string, unknown>) => parseTaskSpec({ name, driver: 'countdown', config });

t.test('health comes from the fingerprint stream and is re-reported after a restart', async (t) => {
  const { loader, manager } = setup();
  t.teardown(async () => (await manager.close(), await loader.close()));
  await manager.waitForFirstFingerprint(5_000);
  const [health] = manager.health();
  t.match(health, { name: 'countdown', health: 'healthy', healthDescription: 'ready to count', fingerprinted: true });
  t.same(health!.attributes, { 'driver.countdown.tickMs': 50 });
  const changes: DriverHealthInfo[] = [];
  manager.on('health', (h) => changes.push(h));
  const back = new Promise<void>((resolve) => manager.on('health', (h) => h.health === 'healthy' && resolve()));
  await loader.get('countdown').kill();
  await back;
  t.match(
    changes.map((c) => c.health),
    ['unhealthy', 'healthy'],
    'unhealthy while it restarts, healthy again after',
  );
});

t.test('a task runs to completion: prepare, start, wait, destroy', async (t) => {
  const { loader, manager } = setup();
  t.teardown(async () => (await manager.close(), await loader.close()));
  const task = await manager.prepare(spec('quick', { seconds: 0.1, exitCode: 4, message: 'bye ${TASKHOST_TASK_NAME}' }));
  t.match(task.id, /^[0-9a-f-]+\/quick\/[0-9a-f]{8}$/);
  t.equal(task.config.message, 'bye quick', 'driver config strings are interpolated');
  t.equal(task.env.TASKHOST_DRIVER, 'countdown');
  const exitEvent = new Promise<string>((resolve) =>
    manager.on('taskEvent', (_d, e) => e.taskId === task.id && e.message.startsWith('exited') && resolve(e.message)),
  );
  await manager.startTask(task);
  t.equal(manager.tasks().length, 1);
  t.same(await manager.waitTask(task.id), { exitCode: 4, signal: null, oomKilled: false });
  t.match(readFileSync(task.stdoutPath, 'utf8'), /bye quick\n$/);
  await manager.destroyTask(task.id);
  t.equal(manager.tasks().length, 0);
  await t.rejects(manager.waitTask(task.id), { code: 'TASK_NOT_FOUND' });
  // Events travel apart from call results: the exit event may come just after waitTask returns.
  t.equal(await exitEvent, 'exited with code 4');
});

t.test('a bad driver config fails with the path; an unknown driver is named', async (t) => {
  const { loader, manager } = setup();
  t.teardown(async () => (await manager.close(), await loader.close()));
  await t.rejects(manager.prepare(spec('bad', { seconds: 1, secnds: 2 })), {
    code: 'INVALID_CONFIG',
    message: /\/config\/secnds: unknown key \(did you mean "seconds"\?\)/,
  });
  await t.rejects(manager.prepare(parseTaskSpec({ name: 'x', driver: 'countdwn', config: {} })), {
    code: 'INVALID_CONFIG',
    errors: [{ path: '/driver', message: 'no driver named "countdwn" (did you mean "countdown"?); drivers: countdown' }],
  });
});

t.test('killing the driver worker under running tasks loses none of them', async (t) => {
  const { loader, manager } = setup();
  t.teardown(async () => (await manager.close(), await loader.close()));
  const tasks = await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const task = await manager.prepare(spec(`t${i}`, { seconds: 0.6 + i * 0.02, exitCode: i % 7 }));
      await manager.startTask(task);
      return task;
    }),
  );
  const waits = tasks.map((task) => manager.waitTask(task.id));
  const recovered: string[] = [];
  manager.on('recovered', (_d, id) => recovered.push(id));
  const lost: string[] = [];
  manager.on('lost', (_d, id) => lost.push(id));
  await new Promise((r) => setTimeout(r, 100));
  await loader.get('countdown').kill('killed by the crash drill');
  const results = await Promise.all(waits);
  t.same(
    results.map((r) => r.exitCode),
    tasks.map((_, i) => i % 7),
    'every waiter got its own task’s exit code',
  );
  t.equal(recovered.length, 20, 'recoverTask was called for each task');
  t.same(lost, []);
  const status = await manager.inspectTask(tasks[0]!.id);
  t.equal(status.state, 'exited');
});

t.test('a task the driver refuses to recover is reported lost and dropped', async (t) => {
  const { loader, manager } = setup();
  t.teardown(async () => (await manager.close(), await loader.close()));
  const task = await manager.prepare(spec('doomed', { seconds: 30 }));
  const handle: TaskHandle = await manager.startTask(task);
  t.equal(handle.state, 'running');
  // Corrupt what the driver needs to re-attach, as a driver bug or a bad disk would.
  (manager.tasks()[0] as { driverState: unknown }).driverState = null;
  const lost = next<[string, string, Error]>(manager, 'lost');
  await loader.get('countdown').kill();
  const [driver, id, error] = await lost;
  t.equal(driver, 'countdown');
  t.equal(id, task.id);
  t.match(error.message, /.+/);
  t.equal(manager.tasks().length, 0);
});

t.test('with a file store, a new host recovers the tasks of the old one', async (t) => {
  const first = setup({ store: 'file' });
  const task = await first.manager.prepare(spec('survivor', { seconds: 0.8, exitCode: 9 }));
  await first.manager.startTask(task);
  await first.manager.close();
  await first.loader.close();
  const stored = await first.store.list();
  t.equal(stored.length, 1, 'the handle is on disk');
  const second = setup({ dataDir: first.dataDir, store: 'file' });
  t.teardown(async () => (await second.manager.close(), await second.loader.close()));
  await second.manager.start();
  t.same(
    second.manager.tasks().map((h) => h.config.id),
    [task.id],
  );
  t.same(await second.manager.waitTask(task.id), { exitCode: 9, signal: null, oomKilled: false });
  await second.manager.destroyTask(task.id);
  t.same(await second.store.list(), []);
});

t.test('handle stores: files are written whole, unreadable files are skipped', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-store-'));
  const store = new FileHandleStore(dir);
  const handle = { version: 1, state: 'running', driverState: { pid: 1 }, config: { id: 'a/b/0000000a' } } as unknown as TaskHandle;
  await store.put(handle);
  writeFileSync(path.join(dir, 'garbage.json'), '{ not json');
  t.same(await store.list(), [handle]);
  await store.delete('a/b/0000000a');
  t.same(await store.list(), []);
  t.same(await new FileHandleStore(path.join(dir, 'missing')).list(), []);
  const memory = new MemoryHandleStore();
  await memory.put(handle);
  t.same(await memory.list(), [handle]);
});
