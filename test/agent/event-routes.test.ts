// GET /v1/events on a real agent and a real store: every state change of a task as NDJSON with
// increasing indexes, resumed after a disconnect and after the agent's restart with nothing
// missed or repeated; namespaces and topics filter; device changes are events too; an index the
// history cannot serve is a 410 before the stream and an error line during it; heartbeats.
import path from 'node:path';
import t, { type Test } from 'tap';
import { Agent } from '../../agent/agent.js';
import { AgentClient } from '../../agent/agent-client.js';
import { eventRoutes } from '../../agent/event-routes.js';
import { createApiServer } from '../../agent/server.js';
import { AgentStore } from '../../agent/store.js';
import type { StoreEvent, TaskRecord } from '../../agent/store-records.js';
import { EventIndexError } from '../../shared/errors.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';
import { openStream, readLines, request } from './agent-request.js';
import { addDeviceFile, deviceFolder, freshDataDir, quiet } from './supervisor-helpers.js';

const builtinDirs = builtinPluginDirs.filter((d) => /raw_exec|mock|example-file$/.test(d));

function setup(t: Test) {
  const dataDir = freshDataDir(t);
  const deviceDir = deviceFolder(dataDir, ['d0']);
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: { ...fastSupervision, startTimeout: '60s' },
    plugins: { mock: { enabled: true }, 'example-file': { config: { dir: deviceDir, listPeriod: '200ms' } } },
  });
  let current: Agent | undefined;
  const start = async () => (current = await Agent.start({ config, logger: quiet, builtinDirs }));
  t.teardown(() => current?.close());
  return { dataDir, deviceDir, start };
}

type Event = StoreEvent & { payload: TaskRecord };
const ofTask = (id: string) => (e: Event) => e.topic === 'tasks' && e.key === `default/${id}`;
const stateOf = (e: Event) => e.payload.state;

t.test('a task’s every state change is an event with an increasing index, and a stream resumes after a restart', async (t) => {
  const home = setup(t);
  const agent = await home.start();
  const socket = agent.addresses.socket;
  const first = (await request<TaskRecord>(socket, 'POST', '/v1/tasks', { name: 'one', driver: 'mock', config: { exitCode: 3 } })).json;
  const stream = await openStream(socket, '/v1/events?index=0&topic=tasks');
  t.equal(stream.status, 200);
  t.match(stream.headers['content-type'], /^application\/x-ndjson/);
  const seen = await readLines<Event>(stream.res, (lines) => lines.some((e) => ofTask(first.id)(e) && stateOf(e) === 'exited'));
  const mine = seen.filter(ofTask(first.id));
  t.same(mine.map(stateOf), ['pending', 'running', 'exited'], 'pending, running, exited: one event each');
  t.equal(mine[0]!.type, 'created');
  t.match(mine.at(-1)!.payload, { exitResult: { exitCode: 3 } }, 'the payload is the record as written');
  const indexes = seen.map((e) => e.index);
  t.same(
    indexes,
    [...indexes].sort((a, b) => a - b),
    'in index order',
  );
  t.equal(new Set(indexes).size, indexes.length, 'each index once');
  const resumeFrom = mine.at(-1)!.index;

  // Disconnected; the agent restarts; a second task runs meanwhile.
  await agent.close();
  await home.start();
  const second = (await request<TaskRecord>(socket, 'POST', '/v1/tasks', { name: 'two', driver: 'mock', config: { exitCode: 0 } })).json;
  const resumed = await openStream(socket, `/v1/events?index=${resumeFrom}`);
  const after = await readLines<Event>(resumed.res, (lines) => lines.some((e) => ofTask(second.id)(e) && stateOf(e) === 'exited'));
  t.ok(
    after.every((e) => e.index > resumeFrom),
    'nothing at or before the index asked for',
  );
  t.notOk(
    after.some((e) => ofTask(first.id)(e)),
    'the first task’s events are not sent again',
  );
  t.same(after.filter(ofTask(second.id)).map(stateOf), ['pending', 'running', 'exited']);
  t.same(
    after.map((e) => e.index),
    after.map((_, i) => resumeFrom + 1 + i),
    'every index after the one asked for, none skipped, across the restart',
  );
});

t.test('a namespace sees its own tasks’ events and the node’s device events; topics filter', async (t) => {
  const home = setup(t);
  const agent = await home.start();
  const socket = agent.addresses.socket;
  const theirs = (
    await request<TaskRecord>(
      socket,
      'POST',
      '/v1/tasks',
      { name: 'theirs', driver: 'mock', config: {} },
      { 'taskhost-namespace': 'team-b' },
    )
  ).json;
  const ours = (await request<TaskRecord>(socket, 'POST', '/v1/tasks', { name: 'ours', driver: 'mock', config: {} })).json;
  const stream = await openStream(socket, '/v1/events');
  const seen = await readLines<Event>(stream.res, (lines) => lines.some((e) => ofTask(ours.id)(e) && stateOf(e) === 'exited'));
  t.notOk(
    seen.some((e) => e.key.endsWith(theirs.id)),
    'another namespace’s task is invisible',
  );
  t.ok(
    seen.some((e) => e.topic === 'devices' && e.type === 'changed'),
    'the first fingerprint of the device plugin is an event every namespace sees',
  );

  const other = await openStream(socket, '/v1/events?topic=tasks', { 'taskhost-namespace': 'team-b' });
  const theirLines = await readLines<Event>(other.res, (lines) =>
    lines.some((e) => e.key === `team-b/${theirs.id}` && stateOf(e) === 'exited'),
  );
  t.ok(
    theirLines.every((e) => e.key.startsWith('team-b/')),
    'team-b sees only its own',
  );

  // A new device file: the node's device set changes, and a stream of devices alone says so.
  const devices = await openStream(socket, `/v1/events?index=${agent.store.lastEventIndex}&topic=devices`);
  addDeviceFile(home.deviceDir, 'd1');
  const changed = await readLines<StoreEvent & { payload: { groups: { devices: { id: string }[] }[] } }>(devices.res, (lines) =>
    lines.some((e) => e.type === 'changed' && e.payload.groups.some((g) => g.devices.length === 2)),
  );
  t.ok(
    changed.every((e) => e.topic === 'devices'),
    'only devices',
  );
  t.equal(changed.at(-1)!.key, 'node');
});

t.test('bad event queries are 400s naming the parameter; an index the store never had is a 410', async (t) => {
  const home = setup(t);
  const agent = await home.start();
  const socket = agent.addresses.socket;
  for (const [query, path] of [
    ['index=-1', '/query/index'],
    ['index=abc', '/query/index'],
    ['topic=nope', '/query/topic'],
    ['since=3', '/query'],
  ] as const) {
    const answer = await request<{ error: { code: string; details: { errors: { path: string }[] } } }>(
      socket,
      'GET',
      `/v1/events?${query}`,
    );
    t.equal(answer.status, 400, query);
    t.equal(answer.json.error.code, 'INVALID_CONFIG');
    t.ok(
      answer.json.error.details.errors.some((e) => e.path.startsWith(path)),
      `${query}: names ${path}`,
    );
  }
  const ahead = await request<{ error: { code: string; message: string; details: { reason: string } } }>(
    socket,
    'GET',
    `/v1/events?index=${agent.store.lastEventIndex + 100}`,
  );
  t.equal(ahead.status, 410);
  t.match(ahead.json.error, { code: 'EVENT_INDEX_UNAVAILABLE', details: { reason: 'ahead' }, message: /list the records again/ });
});

/** A store with a short history behind the event route alone, on its own socket. */
async function smallHistory(t: Test, heartbeatMs?: number) {
  const dataDir = freshDataDir(t);
  const store = await AgentStore.open({ dataDir, eventHistory: 4 });
  const server = createApiServer({ routes: eventRoutes(store, heartbeatMs === undefined ? {} : { heartbeatMs }) });
  const { socket } = await server.listen({ socket: path.join(dataDir, 'agent.sock') });
  t.teardown(async () => {
    await server.close();
    await store.close();
  });
  const append = (payload: unknown) =>
    store.transaction((tx) => tx.appendEvent({ topic: 'tasks', type: 'note', key: 'default/x', payload }));
  return { store, socket, append };
}

t.test('an index older than the history is a 410; a reader that falls that far behind gets an error line, then the end', async (t) => {
  const { socket, append } = await smallHistory(t);
  for (let i = 0; i < 8; i++) await append({ i });
  const expired = await request<{ error: { code: string; details: { reason: string; oldestIndex: number } } }>(
    socket,
    'GET',
    '/v1/events?index=1',
  );
  t.equal(expired.status, 410);
  t.match(expired.json.error, { code: 'EVENT_INDEX_UNAVAILABLE', details: { reason: 'expired', oldestIndex: 5 } });
  const kept = await openStream(socket, '/v1/events?index=4');
  t.same(
    (await readLines<StoreEvent>(kept.res, (lines) => lines.length >= 4)).map((e) => e.index),
    [5, 6, 7, 8],
    'from an index the history holds: every event after it',
  );

  // A reader that does not read while big events pour in falls out of the history.
  const big = 'x'.repeat(1 << 20);
  const client = new AgentClient({ socket });
  t.teardown(() => client.close());
  const events = client.events({ index: 8 });
  await append({ big });
  const firstOne = await events.next();
  t.equal((firstOne.value as StoreEvent).index, 9);
  for (let i = 0; i < 8; i++) await append({ big, i });
  const rest: number[] = [];
  await t.rejects(
    (async () => {
      for await (const event of events) rest.push(event.index);
    })(),
    EventIndexError,
    'the client throws the error the line carries',
  );
  t.ok(rest.length < 8, `it had fallen behind: ${rest.length} of 8 more events read before the error`);
});

t.test('an idle stream sends a `{}` heartbeat, which the client skips', async (t) => {
  const { socket, append } = await smallHistory(t, 50);
  const stream = await openStream(socket, '/v1/events');
  const lines = await readLines(stream.res, (l) => l.length >= 1);
  t.same(lines, [{}], 'a heartbeat while nothing happens');

  const client = new AgentClient({ socket });
  t.teardown(() => client.close());
  const events = client.events();
  const next = events.next();
  await new Promise((r) => setTimeout(r, 200));
  await append({ hello: 1 });
  t.match((await next).value, { index: 1, payload: { hello: 1 } }, 'the first event after heartbeats');
  await events.return(undefined);
});
