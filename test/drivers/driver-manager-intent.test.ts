// The driver manager's intent handles: stored before the driver is asked to start a task, replaced
// by the driver's handle, removed when the start fails, and at the next start handed to the
// driver's recoverTask, which finds the task from its config or reports it not found (lost).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { DriverManager } from '../../drivers/driver-manager.js';
import { FileHandleStore, intentHandle, isIntentHandle, MemoryHandleStore } from '../../drivers/handle-store.js';
import { parseTaskSpec } from '../../drivers/prepare-task.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import { PluginLoader } from '../../plugin-loader/loader.js';
import type { TaskHandle } from '../../shared/driver.js';
import { TaskExistsError } from '../../shared/errors.js';
import { fastSupervision, next } from '../helpers/fixture-plugins.js';

const quiet = pino({ level: 'silent' });
const builtinDirs = builtinPluginDirs.filter((d) => d.endsWith('mock'));

/** A memory store that remembers every put, in order. */
class RecordingStore extends MemoryHandleStore {
  readonly puts: TaskHandle[] = [];
  override async put(handle: TaskHandle): Promise<void> {
    this.puts.push(structuredClone(handle));
    await super.put(handle);
  }
}

function setup(t: Test, store: MemoryHandleStore | FileHandleStore, dataDir?: string) {
  const dir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'taskhost-intent-'));
  if (!dataDir) t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = parseAgentConfig({
    pluginDir: path.join(dir, 'no-plugins'),
    dataDir: dir,
    supervision: fastSupervision,
    plugins: { mock: { enabled: true } },
  });
  const loader = new PluginLoader({ config, logger: quiet, builtinDirs });
  const manager = new DriverManager({ loader, store, logger: quiet, streamBackoffMs: [20, 200] });
  t.teardown(async () => (await manager.close(), await loader.close()));
  return { dir, manager };
}

const spec = (name: string, config: Record<string, unknown>) => parseTaskSpec({ name, driver: 'mock', config });

t.test('the intent handle is stored before the driver is called, then replaced by the driver’s', async (t) => {
  const store = new RecordingStore();
  const { manager } = setup(t, store);
  const task = await manager.prepare(spec('web', { runFor: '60s' }));
  const handle = await manager.startTask(task);
  t.same(store.puts, [intentHandle(task), handle], 'first the intent, then the driver’s handle');
  t.ok(isIntentHandle(store.puts[0]!));
  t.notOk(isIntentHandle(handle));
  t.same(await store.list(), [handle]);

  await t.rejects(manager.startTask(task), TaskExistsError, 'a live id is refused before anything is written');
  t.same(await store.list(), [handle], 'its handle is left as it was');

  const failing = await manager.prepare(spec('bad', { startError: 'no such thing' }));
  await t.rejects(manager.startTask(failing), /no such thing/);
  t.same(
    (await store.list()).map((h) => h.config.id),
    [task.id],
    'a failed start leaves no intent behind',
  );
  await manager.destroyTask(task.id);
});

t.test('an intent left by a host that died mid-start is recovered through the driver; not found, it is lost', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'taskhost-intent-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const store = new FileHandleStore(path.join(dataDir, 'handles'));
  const first = setup(t, store, dataDir);
  const task = await first.manager.prepare(spec('web', { runFor: '60s' }));
  // As if the host died after storing the intent, before (or while) the driver started it.
  await store.put(intentHandle(task));
  const { manager } = setup(t, new FileHandleStore(path.join(dataDir, 'handles')), dataDir);
  const lost = next<[string, string, Error]>(manager, 'lost');
  await manager.start();
  const [driver, id, error] = await lost;
  t.equal(driver, 'mock');
  t.equal(id, task.id);
  t.match(error, { code: 'TASK_NOT_FOUND', message: /its start did not complete/ });
  t.same(manager.tasks(), []);
  t.same(await store.list(), [], 'the intent is removed');
});
