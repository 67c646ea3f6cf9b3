// The host's view of a driver: what startTask() returns is what the host stores, so a handle
// that would not survive JSON, or a reply that cannot cross the thread, fails the start, names
// the path of the bad value, and the task it started is destroyed, not left running untracked.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { DriverClient } from '../../drivers/driver-client.js';
import { fillSupervision } from '../../plugin-loader/agent-config.js';
import { PluginInstance } from '../../plugin-loader/plugin-instance.js';
import type { TaskConfig } from '../../shared/driver.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';

async function handlesDriver(t: { teardown(fn: () => unknown): void }): Promise<DriverClient> {
  const instance = new PluginInstance({
    manifest: { type: 'driver', name: 'handles', apiVersions: ['1.0'] },
    entry: new URL('../fixtures/modules/handles.js', import.meta.url).href,
    apiVersion: '1.0',
    config: undefined,
    dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-driver-client-')),
    supervision: fillSupervision(fastSupervision),
  });
  t.teardown(() => instance.close());
  await instance.start();
  return new DriverClient(instance);
}

const task = (id: string, handle: string) => ({ id, config: { handle } }) as unknown as TaskConfig;

t.test('the handle a start returns is the JSON copy the host stores', async (t) => {
  const driver = await handlesDriver(t);
  const { handle } = await driver.startTask(task('a/ok/1', 'ok'));
  t.same(handle.driverState, { pid: 100 });
  t.notOk('note' in (handle.driverState as object), 'an undefined property is gone, as after a restart');
});

t.test('a handle that JSON would change fails the start, naming its path, and the task is destroyed', async (t) => {
  const driver = await handlesDriver(t);
  await t.rejects(driver.startTask(task('a/nan/1', 'nan')), {
    code: 'PLUGIN_CONTRACT',
    message:
      'startTask() returned a handle that does not survive JSON: /driverState/ratio is NaN, which JSON turns into null: keep driverState plain objects, arrays, strings, finite numbers and booleans (the host stores handles as JSON and gives them back to recoverTask() after a restart)',
    details: { method: 'startTask', path: '/driverState/ratio' },
  });
  await t.rejects(driver.startTask(task('a/hole/1', 'hole')), {
    message: /\/driverState\/pids\/1 is undefined, which JSON turns into null/,
  });
  await t.rejects(driver.startTask(task('a/none/1', 'none')), { message: /^startTask\(\) returned \{"started":true\}, not \{ handle \}/ });
  t.same(await driver.instance.call('destroyed'), ['a/nan/1', 'a/hole/1', 'a/none/1']);
});

t.test('a reply that cannot cross fails that start alone; the plugin keeps running and the task is destroyed', async (t) => {
  const driver = await handlesDriver(t);
  await t.rejects(driver.startTask(task('a/map/1', 'map')), {
    code: 'PLUGIN_CONTRACT',
    message: /^startTask\(\) returned a value that cannot cross to the host: \/handle\/driverState\/pids is a Map: send a plain object/,
  });
  await t.rejects(driver.startTask(task('a/fn/1', 'fn')), { message: /\/handle\/driverState\/onExit is a function \(onExit\)/ });
  t.same(await driver.instance.call('destroyed'), ['a/map/1', 'a/fn/1']);
  t.equal(driver.instance.state, 'running');
  t.equal(driver.instance.restarts, 0, 'no crash, no restart');
  t.match((await driver.startTask(task('a/ok/2', 'ok'))).handle, { config: { id: 'a/ok/2' } });
});
