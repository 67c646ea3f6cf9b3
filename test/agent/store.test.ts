import t, { type Test } from 'tap';
import { AgentStore } from '../../agent/store.js';
import { CancelledError, EventIndexError, InvalidConfigError, TaskExistsError } from '../../shared/errors.js';
import type { StoreEvent } from '../../agent/store-records.js';
import { dataDir, task } from './store-helpers.js';

async function openStore(t: Test, options: { eventHistory?: number; dir?: string; now?: () => Date } = {}): Promise<AgentStore> {
  const { dir, ...rest } = options;
  const store = await AgentStore.open({ dataDir: dir ?? dataDir(t), ...rest });
  t.teardown(() => store.close());
  return store;
}

t.test('task records round-trip, get stamped, list by namespace and prefix, and delete', async (t) => {
  let clock = Date.parse('2025-01-01T00:00:00.000Z');
  const store = await openStore(t, { now: () => new Date(clock) });
  const created = await store.tasks.create(task('a1', { labels: { team: 'a' } }));
  t.equal(created.createdAt, '2025-01-01T00:00:00.000Z');
  t.equal(created.updatedAt, created.createdAt);
  t.same(store.tasks.get('default', 'a1'), created);
  await store.tasks.create(task('a2'));
  await store.tasks.create(task('b1', { namespace: 'other' }));

  t.same(
    store.tasks.list({ namespace: 'default' }).map((r) => r.id),
    ['a1', 'a2'],
  );
  t.same(
    store.tasks.list().map((r) => `${r.namespace}/${r.id}`),
    ['default/a1', 'default/a2', 'other/b1'],
  );
  t.same(
    store.tasks.list({ namespace: 'default', prefix: 'a2' }).map((r) => r.id),
    ['a2'],
  );
  t.equal(store.tasks.get('other', 'a1'), undefined, 'namespaces are separate');

  clock += 1000;
  const updated = await store.tasks.update('default', 'a1', (r) => ({ ...r, state: 'running', startedAt: new Date(clock).toISOString() }));
  t.equal(updated?.state, 'running');
  t.equal(updated?.createdAt, '2025-01-01T00:00:00.000Z', 'an update keeps createdAt');
  t.equal(updated?.updatedAt, '2025-01-01T00:00:01.000Z');
  t.equal(await store.tasks.update('default', 'nope', (r) => r), undefined, 'updating a missing record writes nothing');

  await t.rejects(store.tasks.create(task('a1')), TaskExistsError);
  t.equal(await store.tasks.delete('default', 'a2'), true);
  t.equal(await store.tasks.delete('default', 'a2'), false);
  t.same(
    store.tasks.list({ namespace: 'default' }).map((r) => r.id),
    ['a1'],
  );
});

t.test('images and reservations have their own keys', async (t) => {
  const store = await openStore(t);
  const ref = 'docker.io/library/busybox:1.35@sha256:' + 'a'.repeat(64);
  await store.images.put({
    ref,
    namespace: 'default',
    name: 'busybox:1.35',
    id: 'sha256:' + 'b'.repeat(64),
    sizeBytes: 4096,
    users: ['a1'],
    labels: {},
  });
  await store.reservations.put({
    id: 'r1',
    namespace: 'default',
    taskId: 'a1',
    devices: [{ name: 'example/file/mock', ids: ['d0'] }],
    labels: {},
  });
  t.equal(store.images.get('default', ref)?.sizeBytes, 4096, 'a ref with / : and @ is one key');
  t.same(
    store.images.list({ namespace: 'default' }).map((r) => r.ref),
    [ref],
  );
  t.same(
    store.reservations.list().map((r) => r.id),
    ['r1'],
  );
  t.same(store.tasks.list(), [], 'no kind leaks into another');
});

t.test('invalid records and namespaces are refused with the path', async (t) => {
  const store = await openStore(t);
  await t.rejects(store.tasks.put({ ...task('x'), state: 'sleeping' as 'pending' }), { code: 'INVALID_CONFIG', message: /\/state/ });
  await t.rejects(store.tasks.put(task('x', { namespace: 'no/slash' })), InvalidConfigError);
  t.throws(() => store.tasks.get('a/b', 'x'), { code: 'INVALID_CONFIG', message: /namespace "a\/b" is invalid/ });
  await t.rejects(store.tasks.put(task('x', { labels: { k: 'v'.repeat(5000) } })), {
    message: /\/labels\/k: key and value must be at most 4096 bytes/,
  });
  t.same(store.tasks.list(), []);
  t.equal(store.lastEventIndex, 0, 'a refused write appends no event');
});

t.test('a transaction writes all its keys and events, or none when it throws', async (t) => {
  const store = await openStore(t);
  await store.tasks.create(task('a1'));
  const before = store.lastEventIndex;
  await t.rejects(
    store.transaction((tx) => {
      tx.tasks.update('default', 'a1', (r) => ({ ...r, state: 'running' }), { event: { type: 'state' } });
      tx.reservations.put({ id: 'r1', namespace: 'default', taskId: 'a1', devices: [], labels: {} });
      throw new Error('device plugin said no');
    }),
    /device plugin said no/,
  );
  t.equal(store.tasks.get('default', 'a1')?.state, 'pending');
  t.same(store.reservations.list(), []);
  t.equal(store.lastEventIndex, before);

  const result = await store.transaction((tx) => {
    tx.tasks.update('default', 'a1', (r) => ({ ...r, state: 'running' }), { event: { type: 'state', payload: { state: 'running' } } });
    tx.reservations.put({ id: 'r1', namespace: 'default', taskId: 'a1', devices: [], labels: {} }, { event: false });
    t.equal(tx.tasks.get('default', 'a1')?.state, 'running', 'reads inside see the writes');
    t.equal(tx.reservations.list().length, 1);
    return 'done';
  });
  t.equal(result, 'done');
  t.equal(store.tasks.get('default', 'a1')?.state, 'running');
  t.equal(store.lastEventIndex, before + 1, 'one event: the reservation asked for none');
  t.match(store.eventsSince(before), [
    { index: before + 1, topic: 'tasks', type: 'state', key: 'default/a1', payload: { state: 'running' } },
  ]);
});

t.test('transactions queued together stay apart: one that throws does not undo the others', async (t) => {
  const store = await openStore(t);
  const results = await Promise.allSettled([
    store.tasks.create(task('a1')),
    store.transaction((tx) => {
      tx.tasks.put(task('a2'));
      throw new Error('no');
    }),
    store.tasks.create(task('a3')),
  ]);
  t.same(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  t.same(
    store.tasks.list().map((r) => r.id),
    ['a1', 'a3'],
  );
  t.same(
    store.eventsSince(0).map((e) => e.index),
    [1, 2],
    'indexes stay dense',
  );
});

t.test('each write appends an event with a strictly increasing index', async (t) => {
  const store = await openStore(t);
  await store.tasks.create(task('a1'));
  await store.tasks.update('default', 'a1', (r) => ({ ...r, labels: { x: 'y' } }));
  await store.tasks.delete('default', 'a1');
  const events = store.eventsSince(0);
  t.same(
    events.map((e) => [e.index, e.topic, e.type, e.key]),
    [
      [1, 'tasks', 'created', 'default/a1'],
      [2, 'tasks', 'updated', 'default/a1'],
      [3, 'tasks', 'deleted', 'default/a1'],
    ],
  );
  t.match(events[1]!.payload, { id: 'a1', labels: { x: 'y' } });
  t.same(
    store.eventsSince(2).map((e) => e.index),
    [3],
  );
  t.same(store.eventsSince(3), []);
  t.same(
    store.eventsSince(0, { limit: 2 }).map((e) => e.index),
    [1, 2],
  );
});

t.test('the event index keeps increasing across reopen', async (t) => {
  const dir = dataDir(t);
  const first = await AgentStore.open({ dataDir: dir });
  await first.tasks.create(task('a1'));
  await first.tasks.create(task('a2'));
  await first.close();
  const second = await openStore(t, { dir });
  t.equal(second.lastEventIndex, 2);
  await second.tasks.create(task('a3'));
  t.same(
    second.eventsSince(0).map((e) => e.index),
    [1, 2, 3],
  );
});

t.test('the history is bounded: the oldest events are dropped, and asking for them says so', async (t) => {
  const dir = dataDir(t);
  const store = await AgentStore.open({ dataDir: dir, eventHistory: 3 });
  for (let i = 1; i <= 5; i++) await store.tasks.create(task(`a${i}`));
  t.equal(store.oldestEventIndex, 3);
  t.same(
    store.eventsSince(2).map((e) => e.index),
    [3, 4, 5],
    'from just before the oldest is fine',
  );
  t.throws(() => store.eventsSince(1), {
    code: 'EVENT_INDEX_UNAVAILABLE',
    message:
      'events after index 1 are no longer kept (the history holds 3; the oldest is 3): list the records again and follow events from 5',
    details: { reason: 'expired', requested: 1, oldestIndex: 3, lastIndex: 5 },
  });
  t.throws(() => store.eventsSince(0), EventIndexError);
  t.throws(() => store.eventsSince(9), {
    details: { reason: 'ahead', lastIndex: 5 },
    message: /event index 9 is past the last event \(5\)/,
  });
  await store.close();

  // A smaller history at the next start trims at the next write.
  const smaller = await openStore(t, { dir, eventHistory: 2 });
  await smaller.tasks.create(task('a6'));
  t.same(
    smaller.eventsSince(4).map((e) => e.index),
    [5, 6],
  );
});

t.test('watchEvents yields the backlog, then new events as they commit, and stops on abort', async (t) => {
  const store = await openStore(t);
  await store.tasks.create(task('a1'));
  const controller = new AbortController();
  const seen: StoreEvent[] = [];
  let wake: (() => void) | undefined;
  const following = (async () => {
    for await (const event of store.watchEvents(0, { signal: controller.signal })) {
      seen.push(event);
      wake?.();
    }
  })();
  const until = (n: number) =>
    new Promise<void>((resolve) => {
      wake = () => seen.length >= n && resolve();
      wake();
    });
  await until(1);
  await store.tasks.create(task('a2'));
  await store.tasks.update('default', 'a2', (r) => ({ ...r, state: 'running' }));
  await until(3);
  t.same(
    seen.map((e) => [e.index, e.type]),
    [
      [1, 'created'],
      [2, 'created'],
      [3, 'updated'],
    ],
  );
  controller.abort();
  await t.rejects(following, CancelledError);
});

t.test('watchEvents ends when the store closes, and refuses an expired index', async (t) => {
  const store = await AgentStore.open({ dataDir: dataDir(t), eventHistory: 1 });
  await store.tasks.create(task('a1'));
  await store.tasks.create(task('a2'));
  await t.rejects(store.watchEvents(0).next(), { code: 'EVENT_INDEX_UNAVAILABLE' });
  const iterator = store.watchEvents(2);
  const next = iterator.next();
  await store.close();
  t.same(await next, { done: true, value: undefined });
  t.throws(() => store.tasks.get('default', 'a1'), { code: 'STORE_INVALID', message: /is closed/ });
  await store.close();
});
