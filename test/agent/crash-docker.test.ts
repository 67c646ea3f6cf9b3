// kill -9 of the real agent at each step of a docker task's start (the test-only crash points of
// shared/crash-points.ts), then a restart on the same data dir: the Engine created at most one
// container for the task, ever (its events say so), the task ran at most once (its line in a file
// of its alloc dir), a start that never reached the driver is failed CANCELLED, one that did is
// found (by its label, from the intent handle, when its handle was not stored yet) and its real
// exit code recorded, also when it exited while the agent was down; nothing is left behind.
import { writeFileSync } from 'node:fs';
import type Docker from 'dockerode';
import t, { type Test } from 'tap';
import type { CrashPoint } from '../../shared/crash-points.js';
import { requireDocker } from '../helpers/docker.js';
import {
  createDockerHome,
  dockerTask,
  homeContainers,
  lines,
  listTasks,
  request,
  startAgent,
  storedHandles,
  until,
  untilState,
  type DockerHome,
  type Home,
} from './crash-helpers.js';

/** Starts an agent that dies at `point`, submits the task to it, and waits for the crash. */
async function crashAt(t: Test, home: Home, point: CrashPoint, spec: object): Promise<void> {
  const agent = await startAgent(home, { crashAt: point });
  // At `after-pending` the agent dies before it answers: the request fails, the record is there.
  await request(home.socket, 'POST', '/v1/tasks', spec).catch(() => undefined);
  t.equal((await agent.ended()).signal, 'SIGKILL', `the agent died ${point}`);
}

/** Once its record is final: one container ever, none left, no handle left. */
async function leftNothing(t: Test, docker: Docker, home: DockerHome, id: string, created: number): Promise<void> {
  t.equal(home.created(id), created, `the Engine created ${created} container(s) for it, ever`);
  await until('its container to be removed', async () => (await homeContainers(docker, home.id, id)).length === 0);
  await until('its handle to be released', () => storedHandles(home).length === 0);
  t.pass('no container and no handle left');
}

for (const point of ['after-pending', 'after-intent'] as const) {
  t.test(`${point}: the start never reached the driver; after the restart it is failed, never run`, async (t) => {
    const docker = await requireDocker(t);
    if (!docker) return;
    const home = await createDockerHome(t, docker);
    await crashAt(t, home, point, dockerTask('never').spec);
    await startAgent(home);
    const tasks = await listTasks(home);
    t.equal(tasks.length, 1, 'the record was stored before the driver was called');
    t.match(tasks[0], { state: 'failed', error: { code: 'CANCELLED', message: /was not started again/ } });
    await leftNothing(t, docker, home, tasks[0]!.id, 0);
  });
}

t.test('after-driver-start: found by its label from the intent handle; its exit while the agent was down is recorded', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const home = await createDockerHome(t, docker);
  const task = dockerTask('inflight');
  await crashAt(t, home, 'after-driver-start', task.spec);
  t.same(storedHandles(home).length, 1, 'only the intent handle was stored');
  const [container] = await homeContainers(docker, home.id);
  t.ok(container, 'the container was started');
  const id = container!.Labels['com.taskhost.task_id']!;
  await until('the task to run', () => lines(task.ran(home, id)).length === 1);
  writeFileSync(task.go(home, id), '');
  await until('the container to exit', async () => (await docker.getContainer(container!.Id).inspect()).State.Status === 'exited');

  await startAgent(home);
  const record = await untilState(home, id, 'terminal');
  t.match(record, { state: 'exited', exitResult: { exitCode: 5, signal: null, oomKilled: false } }, 'the Engine’s exit code');
  t.same(lines(task.ran(home, id)), ['ran'], 'it ran exactly once');
  await leftNothing(t, docker, home, id, 1);
});

t.test('after-handle: recovered running after the restart, its exit recorded once it exits', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const home = await createDockerHome(t, docker);
  const task = dockerTask('started');
  await crashAt(t, home, 'after-handle', task.spec);
  await startAgent(home);
  const [listed] = await listTasks(home);
  const id = listed!.id;
  t.match(await untilState(home, id, ['running']), { state: 'running' }, 'adopted: pending with a handle is running');
  await until('the task to run', () => lines(task.ran(home, id)).length === 1);
  writeFileSync(task.go(home, id), '');
  t.match(await untilState(home, id, 'terminal'), { state: 'exited', exitResult: { exitCode: 5 } });
  t.same(lines(task.ran(home, id)), ['ran'], 'it ran exactly once');
  await leftNothing(t, docker, home, id, 1);
});

t.test('after-exit-recorded: the exit stays as recorded; the leftover handle and container are released', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const home = await createDockerHome(t, docker);
  const task = dockerTask('quick', { waits: false });
  await crashAt(t, home, 'after-exit-recorded', task.spec);
  t.equal((await homeContainers(docker, home.id)).length, 1, 'the crash left the container behind');
  await startAgent(home);
  const [record] = await listTasks(home);
  t.match(record, { state: 'exited', exitResult: { exitCode: 5, signal: null } });
  t.same(lines(task.ran(home, record!.id)), ['ran'], 'it ran exactly once');
  await leftNothing(t, docker, home, record!.id, 1);
});
