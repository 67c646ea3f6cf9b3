// The task supervisor against the real store and real mock and raw_exec workers: the record
// before the driver, running, exited, failed, stop, signal, delete, labels, and an agent restart
// that recovers running tasks, reconciles an interrupted start and never runs a task twice.
import { existsSync, readdirSync } from 'node:fs';
import t from 'tap';
import { AgentStore } from '../../agent/store.js';
import { handleDir, interruptedStartMessage } from '../../agent/task-supervisor.js';
import { freshDataDir, openParts, running, until } from './supervisor-helpers.js';

const mock = (name: string, config: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
  name,
  driver: 'mock',
  config,
  ...extra,
});
const sleeper = (name: string, seconds = 300) => ({ name, driver: 'raw_exec', config: { command: 'sleep', args: [String(seconds)] } });

t.test('a task is stored pending before its driver is called, then running, then exited', async (t) => {
  const { supervisor, store } = await openParts(t, freshDataDir(t));
  const seen: string[] = [];
  supervisor.on('changed', (r) => seen.push(r.state));
  const record = await supervisor.submit('default', mock('quick', { runFor: '50ms', exitCode: 3 }, { labels: { team: 'a' } }));
  t.match(record, { namespace: 'default', name: 'quick', driver: 'mock', state: 'pending', labels: { team: 'a' } });
  t.match(record.id, /^[0-9a-f-]+\/quick\/[0-9a-f]{8}$/);
  const done = await supervisor.wait('default', record.id);
  t.match(done, { state: 'exited', exitResult: { exitCode: 3, signal: null, oomKilled: false } });
  t.ok(done.startedAt && done.completedAt, 'startedAt and completedAt are set');
  t.same(seen, ['pending', 'running', 'exited']);
  t.same(store.tasks.get('default', record.id), done, 'the store holds what wait returned');
  t.notOk(done.spec.labels === undefined, 'the spec is kept as submitted, labels included');
});

t.test('bad input is refused before anything is stored, naming its path', async (t) => {
  const { supervisor, store } = await openParts(t, freshDataDir(t));
  await t.rejects(supervisor.submit('default', { name: 'x', driver: 'mock', config: {}, colour: 'red' }), {
    code: 'INVALID_CONFIG',
    errors: [{ path: '/colour' }],
  });
  await t.rejects(supervisor.submit('default', mock('x', { runFor: 'soon' })), {
    code: 'INVALID_CONFIG',
    errors: [{ path: '/config/runFor' }],
  });
  await t.rejects(supervisor.submit('default', mock('x', {}, { labels: { big: 'x'.repeat(5000) } })), {
    code: 'INVALID_CONFIG',
    errors: [{ path: '/labels/big' }],
  });
  await t.rejects(supervisor.submit('default', { name: 'x', driver: 'nope', config: {} }), {
    code: 'INVALID_CONFIG',
    errors: [{ path: '/driver' }],
  });
  await t.rejects(supervisor.submit('no/slash', mock('x')), { code: 'INVALID_CONFIG', errors: [{ path: '/namespace' }] });
  t.same(store.tasks.list(), [], 'no record was written');
});

t.test('a start that fails is recorded failed with its error', async (t) => {
  const { supervisor } = await openParts(t, freshDataDir(t));
  const record = await supervisor.submit('default', mock('broken', { startError: 'no luck' }));
  const done = await supervisor.wait('default', record.id);
  t.match(done, { state: 'failed', error: { message: /no luck/ } });
  t.notOk(done.startedAt);
  await t.rejects(supervisor.stop('default', record.id), { code: 'TASK_NOT_RUNNING' });
});

t.test('stop, signal and delete of a raw_exec task; namespaces isolate', async (t) => {
  const { supervisor, manager } = await openParts(t, freshDataDir(t));
  const record = await supervisor.submit('team-a', sleeper('nap'));
  await t.rejects(supervisor.delete('team-a', record.id), { code: 'TASK_RUNNING' });
  await until(supervisor, 'team-a', record.id, running);
  t.throws(() => supervisor.get('default', record.id), { code: 'TASK_NOT_FOUND' }, 'invisible from another namespace');
  t.same(supervisor.list('default'), []);
  t.equal(supervisor.list('team-a').length, 1);
  await t.rejects(supervisor.delete('team-a', record.id), { code: 'TASK_RUNNING' });
  await t.rejects(supervisor.signal('team-a', record.id, 'SIGNOPE'), { code: 'INVALID_CONFIG' });
  await supervisor.signal('team-a', record.id, 'SIGUSR1');
  const killed = await supervisor.wait('team-a', record.id);
  t.match(killed, { state: 'exited', exitResult: { signal: 'SIGUSR1' } }, 'SIGUSR1 ends sleep');
  const second = await supervisor.submit('team-a', sleeper('nap2'));
  await until(supervisor, 'team-a', second.id, running);
  await supervisor.stop('team-a', second.id, { timeoutMs: 10_000 });
  t.match(await supervisor.wait('team-a', second.id), { state: 'exited', exitResult: { signal: 'SIGTERM' } });
  await supervisor.delete('team-a', record.id);
  await supervisor.delete('team-a', second.id);
  t.same(manager.tasks(), [], 'no handle is left once the records are deleted');
  t.throws(() => supervisor.get('team-a', record.id), { code: 'TASK_NOT_FOUND' });
  await t.rejects(supervisor.delete('team-a', record.id), { code: 'TASK_NOT_FOUND' });
});

t.test('labels are updated with field masks; nothing else is mutable', async (t) => {
  const { supervisor } = await openParts(t, freshDataDir(t));
  const record = await supervisor.submit('default', mock('labelled', {}, { labels: { a: '1', b: '2' } }));
  t.same(
    (await supervisor.updateLabels('default', record.id, { labels: { b: '', c: '3' }, updateMask: ['labels.b', 'labels.c'] })).labels,
    {
      a: '1',
      c: '3',
    },
  );
  await t.rejects(supervisor.updateLabels('default', record.id, { labels: {}, updateMask: ['state'] }), {
    code: 'INVALID_CONFIG',
    errors: [{ path: '/updateMask/0' }],
  });
  await t.rejects(supervisor.updateLabels('default', 'a/b/00000000', { labels: {} }), { code: 'TASK_NOT_FOUND' });
});

t.test('a restart recovers running raw_exec and mock tasks, and never runs a completed task again', async (t) => {
  const dataDir = freshDataDir(t);
  const first = await openParts(t, dataDir);
  const nap = await first.supervisor.submit('default', sleeper('nap'));
  const tick = await first.supervisor.submit('default', mock('tick', { runFor: '600s', exitCode: 7 }));
  const done = await first.supervisor.submit('default', mock('done', { exitCode: 2 }));
  await until(first.supervisor, 'default', nap.id, running);
  await until(first.supervisor, 'default', tick.id, running);
  await first.supervisor.wait('default', done.id);
  await first.close();
  t.equal(readdirSync(handleDir(dataDir)).length, 2, 'the running tasks’ handles outlive the agent');

  const second = await openParts(t, dataDir);
  t.match(second.supervisor.get('default', nap.id), { state: 'running' });
  t.match(second.supervisor.get('default', tick.id), { state: 'running' });
  t.match(second.supervisor.get('default', done.id), { state: 'exited', exitResult: { exitCode: 2 } });
  t.same(
    second.manager
      .tasks()
      .map((h) => h.config.id)
      .sort(),
    [nap.id, tick.id].sort(),
    'both were recovered, the done one was not re-run',
  );
  await second.supervisor.stop('default', nap.id, { timeoutMs: 10_000 });
  await second.supervisor.stop('default', tick.id, { timeoutMs: 10_000 });
  const napDone = await second.supervisor.wait('default', nap.id);
  t.equal(napDone.state, 'exited', 'the recovered raw_exec task’s exit is recorded');
  t.match(await second.supervisor.wait('default', tick.id), { state: 'exited', exitResult: { signal: 'SIGTERM' } });
});

t.test('at start, a pending record is failed (never started twice), a running one without a handle is lost', async (t) => {
  const dataDir = freshDataDir(t);
  const store = await AgentStore.open({ dataDir });
  const spec = { name: 'x', driver: 'mock', config: {}, killTimeout: '5s' };
  const base = { namespace: 'default', name: 'x', driver: 'mock', labels: {}, spec };
  await store.tasks.create({ ...base, id: 'a1/x/00000001', state: 'pending' });
  await store.tasks.create({ ...base, id: 'a2/x/00000002', state: 'running', startedAt: new Date().toISOString() });
  await store.close();
  const { supervisor, manager } = await openParts(t, dataDir);
  t.match(supervisor.get('default', 'a1/x/00000001'), { state: 'failed', error: { code: 'CANCELLED', message: interruptedStartMessage } });
  t.match(supervisor.get('default', 'a2/x/00000002'), { state: 'lost', error: { message: /could not be recovered/ } });
  t.same(manager.tasks(), []);
  t.notOk(existsSync(`${dataDir}/allocs/a1`), 'the interrupted start was not run again');
});

t.test('a pending record whose handle the driver manager has is adopted', async (t) => {
  const dataDir = freshDataDir(t);
  const first = await openParts(t, dataDir);
  const record = await first.supervisor.submit('default', mock('slow', { runFor: '600s' }));
  await until(first.supervisor, 'default', record.id, running);
  await first.close();
  // As if the agent died after the driver started it and before the record said so.
  const store = await AgentStore.open({ dataDir });
  await store.tasks.update('default', record.id, (r) => {
    const { startedAt: _startedAt, ...rest } = r;
    return { ...rest, state: 'pending' };
  });
  await store.close();
  const second = await openParts(t, dataDir);
  const adopted = second.supervisor.get('default', record.id);
  t.match(adopted, { state: 'running' });
  t.ok(adopted.startedAt);
  await second.supervisor.stop('default', record.id, { timeoutMs: 10_000 });
  t.match(await second.supervisor.wait('default', record.id), { state: 'exited' });
});

t.test('at start, a completed record’s leftover handle is released, not run; a handle without a record is left alone', async (t) => {
  const dataDir = freshDataDir(t);
  const first = await openParts(t, dataDir);
  const done = await first.supervisor.submit('default', mock('done', { runFor: '600s' }));
  const orphan = await first.supervisor.submit('default', mock('orphan', { runFor: '600s' }));
  await until(first.supervisor, 'default', done.id, running);
  await until(first.supervisor, 'default', orphan.id, running);
  await first.close();
  // As if the agent died after recording the exit and before releasing the handle.
  const store = await AgentStore.open({ dataDir });
  await store.tasks.update('default', done.id, (r) => ({
    ...r,
    state: 'exited',
    exitResult: { exitCode: 0, signal: null, oomKilled: false },
  }));
  await store.tasks.delete('default', orphan.id);
  await store.close();
  const second = await openParts(t, dataDir);
  t.match(second.supervisor.get('default', done.id), { state: 'exited', exitResult: { exitCode: 0 } });
  t.same(
    second.manager.tasks().map((h) => h.config.id),
    [orphan.id],
    'the completed task’s handle is gone; the unknown one is kept',
  );
});
