// kill -9 of the real agent at each step of a raw_exec task's start (the test-only crash points
// of shared/crash-points.ts), then a restart on the same data dir: the task ran at most once (its
// line in a file), a start that never reached the driver is failed CANCELLED, one that did is
// recovered and its exit recorded, and nothing is left running.
// raw_exec's executor (drivers/raw_exec/executor.ts) is what makes this work: it outlives the
// agent, keeps a pid file the driver finds from the task's config alone, and records the exit.
import { writeFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import type { CrashPoint } from '../../shared/crash-points.js';
import {
  createHome,
  lines,
  listTasks,
  patience,
  rawExecTask,
  request,
  startAgent,
  storedHandles,
  taskProcesses,
  until,
  untilState,
  type Home,
} from './crash-helpers.js';

/** Starts an agent that dies at `point`, submits the task to it, and waits for the crash. */
async function crashAt(t: Test, home: Home, point: CrashPoint, spec: object): Promise<void> {
  const agent = await startAgent(home, { crashAt: point });
  // At `after-pending` the agent dies before it answers: the request fails, the record is there.
  await request(home.socket, 'POST', '/v1/tasks', spec).catch(() => undefined);
  t.equal((await agent.ended()).signal, 'SIGKILL', `the agent died ${point}`);
}

for (const point of ['after-pending', 'after-intent'] as const) {
  t.test(`${point}: the start never reached the driver; after the restart it is failed, never run`, async (t) => {
    const home = createHome(t);
    const task = rawExecTask(home, 'never');
    await crashAt(t, home, point, task.spec);
    await startAgent(home);
    const tasks = await listTasks(home);
    t.equal(tasks.length, 1, 'the record was stored before the driver was called');
    t.match(tasks[0], { state: 'failed', error: { code: 'CANCELLED', message: /was not started again/ } });
    t.same(lines(task.ran), [], 'it never ran');
    t.same(storedHandles(home), [], 'no handle is left');
  });
}

t.test('after-driver-start: the task runs, exits while the agent is down, and is found from its intent handle', async (t) => {
  const home = createHome(t);
  const task = rawExecTask(home, 'inflight');
  await crashAt(t, home, 'after-driver-start', task.spec);
  t.same(lines(task.ran), ['ran'], 'it ran once before the crash');
  // It exits while no agent runs.
  writeFileSync(task.go, '');
  await until('the task to exit', () => taskProcesses(home.work).length === 0);
  await startAgent(home);
  const [listed] = await listTasks(home);
  const record = await untilState(home, listed!.id, 'terminal');
  t.equal(record.state, 'exited', 'found from its intent handle');
  t.equal(record.exitResult?.exitCode, 5, 'its real exit code');
  t.same(lines(task.ran), ['ran'], 'never run again');
  // The handle goes once the exit is recorded, a moment after the record says exited.
  await until('its handle to be released', () => storedHandles(home).length === 0, patience);
  t.pass('its handle is released');
});

t.test('after-handle: the task is recovered running, its exit recorded once it exits', async (t) => {
  const home = createHome(t);
  const task = rawExecTask(home, 'started');
  await crashAt(t, home, 'after-handle', task.spec);
  await startAgent(home);
  const [listed] = await listTasks(home);
  t.match(await untilState(home, listed!.id, ['running']), { state: 'running' }, 'adopted: pending with a handle is running');
  t.ok(taskProcesses(home.work).length > 0, 'it still runs');
  writeFileSync(task.go, '');
  const record = await untilState(home, listed!.id, 'terminal');
  t.equal(record.state, 'exited');
  t.equal(record.exitResult?.exitCode, 5, 'its real exit code');
  t.same(lines(task.ran), ['ran'], 'it ran exactly once');
  await until('the handle to be released', () => storedHandles(home).length === 0, patience);
  await until('nothing to be left running', () => taskProcesses(home.work).length === 0);
  t.pass('nothing left running');
});

t.test('after-exit-recorded: the exit stays as recorded, the leftover handle is released, nothing runs again', async (t) => {
  const home = createHome(t);
  const task = rawExecTask(home, 'quick', { waits: false });
  await crashAt(t, home, 'after-exit-recorded', task.spec);
  t.equal(storedHandles(home).length, 1, 'the crash left the handle behind');
  await startAgent(home);
  const [record] = await listTasks(home);
  t.match(record, { state: 'exited', exitResult: { exitCode: 5, signal: null } });
  await until('the handle to be released', () => storedHandles(home).length === 0);
  t.same(lines(task.ran), ['ran'], 'it ran exactly once');
  await until('nothing to be left running', () => taskProcesses(home.work).length === 0);
  t.pass('nothing left running');
});
