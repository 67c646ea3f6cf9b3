// Device reservations through the agent: real store on disk, the real socket, the example-file
// device plugin (files in a folder are devices). Two submits at once for one device: one gets it,
// the other is told there is no free device; a restart keeps the reservation; the task's end
// (exited, failed, lost) releases it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Agent } from '../../agent/agent.js';
import { DeviceReservations } from '../../agent/reservations.js';
import { AgentStore } from '../../agent/store.js';
import type { ReservationRecord, TaskRecord } from '../../agent/store-records.js';
import { DeviceManager } from '../../devices/device-manager.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import { PluginLoader } from '../../plugin-loader/loader.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';
import { eventually, request, runningRecord, stopAll, taskPath } from './agent-request.js';
import { deviceFolder, freshDataDir, openParts, quiet } from './supervisor-helpers.js';

const builtinDirs = builtinPluginDirs.filter((d) => /raw_exec|mock|example-file$/.test(d));
const group = 'example/file/mock';

/** A data dir with a folder of `count` device files (d0, d1, ...) for example-file. */
function setup(t: { teardown(fn: () => unknown): void }, count = 1) {
  const dataDir = freshDataDir(t);
  const deviceDir = deviceFolder(
    dataDir,
    Array.from({ length: count }, (_, i) => `d${i}`),
  );
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: { ...fastSupervision, startTimeout: '60s' },
    plugins: { mock: { enabled: true }, 'example-file': { config: { dir: deviceDir, listPeriod: '200ms' } } },
  });
  let current: Agent | undefined;
  const start = async () => (current = await Agent.start({ config, logger: quiet, builtinDirs }));
  t.teardown(async () => {
    if (!current) return;
    await stopAll(current).catch(() => undefined);
    await current.close();
  });
  return { dataDir, start };
}

const oneDevice = [{ name: group, count: 1 }];
const sleeper = (name: string) => ({
  name,
  driver: 'raw_exec',
  config: { command: '/bin/sh', args: ['-c', 'echo "devices=$EXAMPLE_FILE_DEVICES"; exec sleep 300'] },
  devices: oneDevice,
});

type ErrorAnswer = { error: { code: string; message: string; details?: Record<string, unknown> } };

const reservationsOf = (agent: Agent, taskId: string): ReservationRecord[] => agent.reservations.list().filter((r) => r.taskId === taskId);

t.test('two submits at once for one device: one task gets it, the other a 409 no free device', async (t) => {
  const { dataDir, start } = setup(t);
  let agent = await start();
  const socket = agent.addresses.socket;
  const answers = await Promise.all([
    request<TaskRecord | ErrorAnswer>(socket, 'POST', '/v1/tasks', sleeper('first')),
    request<TaskRecord | ErrorAnswer>(socket, 'POST', '/v1/tasks', sleeper('second')),
  ]);
  t.same(answers.map((a) => a.status).sort(), [201, 409], 'one stored, one refused');
  const won = answers.find((a) => a.status === 201)!.json as TaskRecord;
  const lost = answers.find((a) => a.status === 409)!.json as ErrorAnswer;
  t.equal(lost.error.code, 'NO_FREE_DEVICE');
  t.match(lost.error.message, /^\/devices\/0: no free device: cannot reserve 1 device of "example\/file\/mock"/);
  t.match(lost.error.message, /1 of them reserved/);
  t.match(lost.error.details, { name: group, count: 1, path: '/devices/0' }, 'it names what was asked');
  t.equal(agent.store.tasks.list().length, 1, 'the refused task has no record');

  const held = reservationsOf(agent, won.id);
  t.match(held, [{ namespace: 'default', taskId: won.id, devices: [{ name: group, ids: ['d0'] }] }], 'the reservation is stored');
  const created = agent.store.eventsSince(0).filter((e) => e.topic === 'reservations');
  t.match(created, [{ type: 'created', key: `default/${held[0]!.id}` }], 'and is an event');
  const taskEvents = agent.store.eventsSince(0).filter((e) => e.topic === 'tasks' && e.type === 'created');
  t.equal(taskEvents[0]!.index + 1, created[0]!.index, 'written with the pending task record, in one transaction');

  await runningRecord(agent, won.id);
  const stdout = path.join(dataDir, 'allocs', won.id.split('/')[0]!, 'alloc', 'logs', 'first.stdout');
  await eventually(() => readFileSync(stdout, 'utf8').includes('devices=d0'), "the device's env in the task");

  // A restart keeps the reservation: the device is still not free.
  await agent.close();
  agent = await start();
  t.match(reservationsOf(agent, won.id), held, 'still held after the restart');
  const third = await request<ErrorAnswer>(socket, 'POST', '/v1/tasks', sleeper('third'));
  t.equal(third.status, 409, 'a restarted agent does not hand the device out again');
  t.equal(third.json.error.code, 'NO_FREE_DEVICE');

  // The task's exit releases it.
  t.equal((await request(socket, 'POST', taskPath(won.id, '/stop'), { timeout: '10s' })).status, 202);
  t.match((await request(socket, 'GET', taskPath(won.id, '/wait'))).json, { state: 'exited' });
  await eventually(() => reservationsOf(agent, won.id).length === 0, 'the reservation released');
  t.match(
    agent.store.eventsSince(0).filter((e) => e.topic === 'reservations' && e.type === 'deleted'),
    [{ key: `default/${held[0]!.id}` }],
    'the release is an event',
  );
  const fourth = await request<TaskRecord>(socket, 'POST', '/v1/tasks', sleeper('fourth'));
  t.equal(fourth.status, 201, 'the device is free again');
  t.match(reservationsOf(agent, fourth.json.id), [{ devices: [{ name: group, ids: ['d0'] }] }]);
});

t.test('devices are released when the task exits, fails to start, or is lost', async (t) => {
  const { start } = setup(t, 3);
  let agent = await start();
  const socket = agent.addresses.socket;
  const submit = async (name: string, config: Record<string, unknown>) => {
    const answer = await request<TaskRecord>(socket, 'POST', '/v1/tasks', { name, driver: 'mock', config, devices: oneDevice });
    t.equal(answer.status, 201, `${name} stored`);
    return answer.json;
  };
  const quick = await submit('quick', { runFor: '200ms' });
  const broken = await submit('broken', { startError: 'no luck' });
  const fragile = await submit('fragile', { runFor: '300s', recoverError: 'cannot find it again' });
  t.match(await agent.supervisor.wait('default', quick.id), { state: 'exited' });
  t.match(await agent.supervisor.wait('default', broken.id), { state: 'failed' });
  await eventually(() => agent.reservations.list().length === 1, 'the exited and the failed task released theirs');
  t.match(agent.reservations.list(), [{ taskId: fragile.id }]);
  await runningRecord(agent, fragile.id);

  await agent.close();
  agent = await start();
  t.match(agent.supervisor.get('default', fragile.id), { state: 'lost' }, 'recovery failed');
  await eventually(() => agent.reservations.list().length === 0, 'the lost task released its device');
});

t.test('at start, reservations of tasks that are gone or ended are released', async (t) => {
  const { dataDir, start } = setup(t);
  const store = await AgentStore.open({ dataDir });
  await store.tasks.create({
    id: 'done',
    namespace: 'default',
    name: 'done',
    driver: 'mock',
    state: 'exited',
    labels: {},
    spec: {} as never,
  });
  await store.reservations.put({
    id: 'r-ghost',
    namespace: 'default',
    taskId: 'ghost',
    devices: [{ name: group, ids: ['d0'] }],
    labels: {},
  });
  await store.reservations.put({ id: 'r-done', namespace: 'default', taskId: 'done', devices: [{ name: group, ids: ['d0'] }], labels: {} });
  await store.close();
  const agent = await start();
  t.same(agent.reservations.list(), [], 'both released');
  const answer = await request(agent.addresses.socket, 'POST', '/v1/tasks', {
    name: 'next',
    driver: 'mock',
    config: { runFor: '300s' },
    devices: oneDevice,
  });
  t.equal(answer.status, 201, 'so the device is free');
});

t.test('a device a stored reservation holds is refused at commit, in the task transaction', async (t) => {
  const dataDir = freshDataDir(t);
  const deviceDir = deviceFolder(dataDir, ['d0']);
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: fastSupervision,
    plugins: { 'example-file': { config: { dir: deviceDir } } },
  });
  const store = await AgentStore.open({ dataDir });
  const loader = new PluginLoader({ config, logger: quiet, builtinDirs: builtinPluginDirs.filter((d) => d.endsWith('example-file')) });
  const devices = new DeviceManager({ loader, logger: quiet });
  const reservations = new DeviceReservations({ store, devices, logger: quiet });
  t.teardown(async () => {
    await reservations.close();
    await devices.close();
    await loader.close();
    await store.close();
  });
  const held = await reservations.hold(oneDevice);
  t.same(held.devices, [{ group, ids: ['d0'] }]);
  t.same(held.reservation.envs, { EXAMPLE_FILE_DEVICES: 'd0' });
  // A record that got in first: hold() alone never picks a stored one, so this is the last line of defence.
  await store.reservations.put({ id: 'other', namespace: 'default', taskId: 'other', devices: [{ name: group, ids: ['d0'] }], labels: {} });
  await t.rejects(
    store.transaction((tx) => held.commit(tx, { namespace: 'default', id: 'mine' })),
    { code: 'NO_FREE_DEVICE', message: /example\/file\/mock \(d0\) is reserved by another task/ },
  );
  held.cancel();
  held.cancel();
  t.same(
    store.reservations.list().map((r) => r.id),
    ['other'],
    'nothing of the refused one was written',
  );
  await t.rejects(reservations.hold([{ name: 'exmaple/file/mock', count: 1 }]), {
    code: 'UNKNOWN_DEVICE',
    details: { path: '/devices/0' },
  });
  t.equal(await reservations.release('default', 'other'), 1);
  t.equal(await reservations.release('default', 'other'), 0, 'idempotent');
  const again = await reservations.hold(oneDevice);
  t.same(again.devices, [{ group, ids: ['d0'] }], 'free again');
  again.cancel();
});

t.test('a supervisor without a device reserver refuses specs with devices, naming /devices', async (t) => {
  const parts = await openParts(t, freshDataDir(t));
  await t.rejects(parts.supervisor.submit('default', { name: 'x', driver: 'mock', devices: oneDevice }), {
    code: 'INVALID_CONFIG',
    details: { errors: [{ path: '/devices' }] },
  });
});
