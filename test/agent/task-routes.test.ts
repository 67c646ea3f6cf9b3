// The task routes through inject() against a real supervisor (store, mock and raw_exec workers):
// each route's success, bad input as 400 naming its path, unknown ids as 404, conflicts as 409,
// a task's update lock as 423.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createApiServer } from '../../agent/server.js';
import { taskRoutes } from '../../agent/task-routes.js';
import type { TaskRecord } from '../../agent/store-records.js';
import { freshDataDir, openParts, running, until } from './supervisor-helpers.js';

interface ErrorJson {
  error: { code: string; message: string; details?: { errors?: { path: string; message: string }[] } };
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const parts = await openParts(t, freshDataDir(t));
  const server = createApiServer({ routes: taskRoutes(parts.supervisor) });
  t.teardown(() => server.close());
  const call = async (method: string, url: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await server.inject({ method: method as 'GET', url, headers, ...(body === undefined ? {} : { payload: body as object }) });
    return { status: res.statusCode, json: res.body ? (JSON.parse(res.body) as unknown) : undefined };
  };
  return { ...parts, server, call };
}

const path = (id: string, rest = '') => `/v1/tasks/${encodeURIComponent(id)}${rest}`;
const spec = (name: string, config: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
  name,
  driver: 'mock',
  config,
  ...extra,
});
const errorsOf = (json: unknown) => (json as ErrorJson).error.details?.errors?.map((e) => e.path);

t.test('POST, GET, wait, list with filters, PATCH and DELETE', async (t) => {
  const { call, supervisor } = await setup(t);
  const created = await call('POST', '/v1/tasks', spec('web', { runFor: '20ms', exitCode: 5 }, { labels: { team: 'a' } }));
  t.equal(created.status, 201);
  const record = created.json as TaskRecord;
  t.match(record, { name: 'web', state: 'pending', labels: { team: 'a' }, spec: { name: 'web', config: { runFor: '20ms' } } });
  const other = (await call('POST', '/v1/tasks', spec('db', { runFor: '600s' }, { labels: { team: 'b' } }))).json as TaskRecord;
  await until(supervisor, 'default', other.id, running);

  const waited = await call('GET', path(record.id, '/wait'));
  t.equal(waited.status, 200);
  t.match(waited.json, { id: record.id, state: 'exited', exitResult: { exitCode: 5 } });
  t.match((await call('GET', path(record.id))).json, { id: record.id, state: 'exited' });

  const names = async (query: string) =>
    ((await call('GET', `/v1/tasks${query}`)).json as { tasks: TaskRecord[] }).tasks.map((r) => r.name).sort();
  t.same(await names(''), ['db', 'web']);
  t.same(await names('?filter=labels.team==a'), ['web']);
  t.same(await names('?filter=state!=exited'), ['db']);
  t.same(await names('?filter=labels.team==a&filter=name~=^d'), ['db', 'web'], 'several filters are OR-ed');
  t.same(await names('?filter=labels.team==a,state==running'), [], 'a comma is AND');
  const badFilter = await call('GET', '/v1/tasks?filter=labels.team==a&filter=state%3D%3D');
  t.equal(badFilter.status, 400);
  t.same(errorsOf(badFilter.json), ['/query/filter/1']);
  t.same(await names(''), ['db', 'web']);
  t.same(((await call('GET', '/v1/tasks', undefined, { 'taskhost-namespace': 'other' })).json as { tasks: unknown[] }).tasks, []);
  t.equal((await call('GET', path(record.id), undefined, { 'taskhost-namespace': 'other' })).status, 404, 'namespaces isolate');

  const patched = await call('PATCH', path(record.id), { labels: { team: '', tier: 'front' }, updateMask: ['labels.team', 'labels.tier'] });
  t.equal(patched.status, 200);
  t.same((patched.json as TaskRecord).labels, { tier: 'front' });
  const badPatch = await call('PATCH', path(record.id), { labels: {}, updateMask: ['name'] });
  t.equal(badPatch.status, 400);
  t.same(errorsOf(badPatch.json), ['/updateMask/0']);

  const conflict = await call('DELETE', path(other.id));
  t.equal(conflict.status, 409);
  t.match(conflict.json, { error: { code: 'TASK_RUNNING' } });
  t.equal((await call('DELETE', path(record.id))).status, 204);
  t.equal((await call('GET', path(record.id))).status, 404);
});

t.test('stop and signal answer 202; a task that is not running is 409', async (t) => {
  const { call, supervisor } = await setup(t);
  const nap = (await call('POST', '/v1/tasks', { name: 'nap', driver: 'raw_exec', config: { command: 'sleep', args: ['300'] } }))
    .json as TaskRecord;
  await until(supervisor, 'default', nap.id, running);
  const signalled = await call('POST', path(nap.id, '/signal'), { signal: 'SIGHUP' });
  t.equal(signalled.status, 202);
  t.match((await call('GET', path(nap.id, '/wait'))).json, { state: 'exited', exitResult: { signal: 'SIGHUP' } });
  t.match((await call('POST', path(nap.id, '/signal'), { signal: 'SIGHUP' })).json, { error: { code: 'TASK_NOT_RUNNING' } });

  const slow = (await call('POST', '/v1/tasks', spec('slow', { runFor: '600s' }))).json as TaskRecord;
  await until(supervisor, 'default', slow.id, running);
  const stopped = await call('POST', path(slow.id, '/stop'), { timeout: '10s' });
  t.equal(stopped.status, 202);
  t.match((await call('GET', path(slow.id, '/wait'))).json, { state: 'exited', exitResult: { signal: 'SIGTERM' } });
  const again = await call('POST', path(slow.id, '/stop'), {});
  t.equal(again.status, 409);
  t.match(again.json, { error: { code: 'TASK_NOT_RUNNING' } });
});

t.test('stop and delete while the lock file exists are 423 TASK_LOCKED; force removes it and goes ahead', async (t) => {
  const { call, supervisor, dataDir } = await setup(t);
  const slow = (await call('POST', '/v1/tasks', spec('slow', { runFor: '600s' }))).json as TaskRecord;
  await until(supervisor, 'default', slow.id, running);
  const allocDir = join(dataDir, 'allocs', slow.id.split('/')[0]!, 'alloc');
  const lock = join(allocDir, 'slow.lock');
  mkdirSync(allocDir, { recursive: true });
  writeFileSync(lock, '');
  const locked = await call('POST', path(slow.id, '/stop'), {});
  t.equal(locked.status, 423);
  t.match(locked.json, { error: { code: 'TASK_LOCKED', details: { lockFile: lock } } });
  t.equal(supervisor.get('default', slow.id).state, 'running');
  t.equal((await call('POST', path(slow.id, '/stop'), { force: true })).status, 202);
  t.notOk(existsSync(lock), 'force removed it');
  t.match((await call('GET', path(slow.id, '/wait'))).json, { state: 'exited' });

  writeFileSync(lock, '');
  t.equal((await call('DELETE', path(slow.id))).status, 423, 'a completed task with its lock file left');
  t.equal((await call('DELETE', path(slow.id, '?force=false'))).status, 423, 'force=false is no force');
  t.equal((await call('DELETE', path(slow.id, '?force=true'))).status, 204);
  t.notOk(existsSync(lock), 'force removed it');
  t.equal((await call('GET', path(slow.id))).status, 404);
});

t.test('bad input is 400 naming its path; unknown ids are 404', async (t) => {
  const { call, store } = await setup(t);
  const cases: [string, string, unknown, string[]][] = [
    ['POST', '/v1/tasks', { name: 'x', driver: 'mock', config: {}, colour: 'red' }, ['/colour']],
    ['POST', '/v1/tasks', spec('x', { runFor: 'soon' }), ['/config/runFor']],
    ['POST', '/v1/tasks', spec('x', {}, { labels: { big: 'x'.repeat(5000) } }), ['/labels/big']],
    ['POST', '/v1/tasks', { name: 'x', driver: 'nope', config: {} }, ['/driver']],
    ['GET', '/v1/tasks/not-an-id', undefined, ['/params/id']],
    ['GET', '/v1/tasks?colour=red', undefined, ['/query/colour']],
    ['POST', path('a1/x/00000001', '/stop'), { timeout: 'soon' }, ['/timeout']],
    ['POST', path('a1/x/00000001', '/signal'), { signal: 'hup' }, ['/signal']],
    ['PATCH', path('a1/x/00000001'), { labels: { a: 1 } }, ['/labels/a']],
    ['POST', path('a1/x/00000001', '/stop'), { force: 'yes' }, ['/force']],
    ['DELETE', path('a1/x/00000001', '?force=yes'), undefined, ['/query/force']],
  ];
  for (const [method, url, body, paths] of cases) {
    const res = await call(method, url, body);
    t.equal(res.status, 400, `${method} ${url}`);
    t.same(errorsOf(res.json), paths, `${method} ${url} names ${paths.join(', ')}`);
  }
  const badNamespace = await call('GET', '/v1/tasks', undefined, { 'taskhost-namespace': 'a/b' });
  t.equal(badNamespace.status, 400);
  t.same(errorsOf(badNamespace.json), ['/headers/taskhost-namespace']);
  t.same(store.tasks.list(), [], 'nothing was stored');
  const unknown = 'a1/x/00000001';
  for (const [method, url, body] of [
    ['GET', path(unknown)],
    ['GET', path(unknown, '/wait')],
    ['PATCH', path(unknown), { labels: {} }],
    ['POST', path(unknown, '/stop'), {}],
    ['POST', path(unknown, '/signal'), { signal: 'SIGHUP' }],
    ['DELETE', path(unknown)],
    ['DELETE', path(unknown, '?force=true')],
  ] as [string, string, unknown][]) {
    const res = await call(method, url, body);
    t.equal(res.status, 404, `${method} ${url}`);
    t.match(res.json, { error: { code: 'TASK_NOT_FOUND' } });
  }
});
