// The real agent with several tasks running, docker and raw_exec: kill -9 of it, some tasks exit
// while it is down, a restart recovers them all (none lost, none run again, exits recorded);
// SIGTERM stops it and leaves its tasks running for the next start; a second agent on the same
// data dir is refused while the first runs.
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { requireDocker } from '../helpers/docker.js';
import {
  createDockerHome,
  createHome,
  dockerTask,
  getTask,
  homeContainers,
  lines,
  rawExecTask,
  request,
  startAgent,
  storedHandles,
  submit,
  taskPath,
  taskProcesses,
  until,
  untilState,
} from './crash-helpers.js';

t.test('kill -9 with docker and raw_exec tasks running: a restart recovers every one, exits while down included', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  // A short grace: the dangling-container reconciler must not take the containers of tasks that
  // are about to be recovered, however long the agent was down.
  const home = await createDockerHome(t, docker, { gc: { danglingGrace: '1s' } });
  const agent = await startAgent(home);
  const raw = ['raw-a', 'raw-b'].map((name) => rawExecTask(home, name));
  const boxes = ['box-a', 'box-b'].map((name) => dockerTask(name));
  const rawIds = await Promise.all(raw.map(async (task) => (await submit(home, task.spec)).id));
  const boxIds = await Promise.all(boxes.map(async (task) => (await submit(home, task.spec)).id));
  for (const id of [...rawIds, ...boxIds]) await untilState(home, id, ['running']);
  await until('every task to run', () => raw.every((r) => lines(r.ran).length === 1));
  await until('every container to run', () => boxes.every((b, i) => lines(b.ran(home, boxIds[i]!)).length === 1));

  agent.kill('SIGKILL');
  await agent.ended();
  // One of each exits while no agent runs.
  writeFileSync(raw[0]!.go, '');
  writeFileSync(boxes[0]!.go(home, boxIds[0]!), '');
  await until('the raw_exec task to exit', () => taskProcesses(raw[0]!.ran).length === 0);
  await until('the container to exit', async () => (await homeContainers(docker, home.id, boxIds[0]))[0]?.State === 'exited');
  // Older than the grace: only the recovery keeps them from the reconciler.
  await new Promise((r) => setTimeout(r, 1_500));

  await startAgent(home);
  t.match(
    await untilState(home, boxIds[0]!, 'terminal'),
    { state: 'exited', exitResult: { exitCode: 5 } },
    'exited while down: the real code',
  );
  const rawDone = await untilState(home, rawIds[0]!, 'terminal');
  t.equal(rawDone.state, 'exited', 'the raw_exec task that exited while down is exited');
  t.equal(rawDone.exitResult?.exitCode, 5, 'with its real exit code');
  for (const id of [rawIds[1]!, boxIds[1]!]) t.equal((await getTask(home, id)).state, 'running', `${id} is recovered running`);
  t.equal((await homeContainers(docker, home.id, boxIds[1])).length, 1, 'the running container is still there');

  writeFileSync(raw[1]!.go, '');
  writeFileSync(boxes[1]!.go(home, boxIds[1]!), '');
  t.match(await untilState(home, boxIds[1]!, 'terminal'), { state: 'exited', exitResult: { exitCode: 5 } });
  const rawLater = await untilState(home, rawIds[1]!, 'terminal');
  t.equal(rawLater.state, 'exited');
  t.equal(rawLater.exitResult?.exitCode, 5, 'a recovered raw_exec task’s real exit code');

  for (const r of raw) t.same(lines(r.ran), ['ran'], `${r.spec.name} ran exactly once`);
  for (const [i, b] of boxes.entries()) t.same(lines(b.ran(home, boxIds[i]!)), ['ran'], `${b.spec.name} ran exactly once`);
  for (const id of boxIds) t.equal(home.created(id), 1, 'one container for it, ever');
  await until('every container to be removed', async () => (await homeContainers(docker, home.id)).length === 0);
  await until('every handle to be released', () => storedHandles(home).length === 0);
  await until('no task process to be left', () => taskProcesses(home.work).length === 0);
  t.pass('no task process left');
});

t.test('SIGTERM stops the agent and leaves its tasks running; the next start recovers them', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const home = createHome(t, docker);
  const agent = await startAgent(home);
  const raw = rawExecTask(home, 'raw');
  const box = dockerTask('box');
  const rawId = (await submit(home, raw.spec)).id;
  const boxId = (await submit(home, box.spec)).id;
  for (const id of [rawId, boxId]) await untilState(home, id, ['running']);

  agent.kill('SIGTERM');
  t.same(await agent.ended(), { code: 0, signal: null }, 'the agent exits 0');
  t.match(agent.stderr(), /SIGTERM: stopping the agent \(its tasks keep running\)/);
  t.ok(taskProcesses(raw.ran).length > 0, 'the raw_exec task still runs');
  t.equal((await homeContainers(docker, home.id, boxId))[0]?.State, 'running', 'the container still runs');

  await startAgent(home);
  for (const id of [rawId, boxId]) t.equal((await getTask(home, id)).state, 'running', 'recovered running');
  for (const id of [rawId, boxId]) t.equal((await request(home.socket, 'POST', taskPath(id, '/stop'), { timeout: '10s' })).status, 202);
  // sh as a container's pid 1 ignores SIGTERM: the stop's SIGKILL ends it.
  t.match(await untilState(home, boxId, 'terminal'), { state: 'exited', exitResult: { signal: 'SIGKILL' } });
  t.match(await untilState(home, rawId, 'terminal'), { state: 'exited' });
  t.same(lines(raw.ran), ['ran'], 'never run again');
  await until('nothing left', async () => (await homeContainers(docker, home.id)).length === 0 && taskProcesses(home.work).length === 0);
  t.pass('no container and no process left');
});

t.test('a second `taskhost agent` on the same data dir is refused while the first runs', async (t) => {
  const home = createHome(t);
  const first = await startAgent(home);
  await t.rejects(startAgent(home), /exited \(\{"code":1,"signal":null\}\) before it listened: error: data dir .* is locked by pid \d+/);
  t.match(home.agents[1]!.stderr(), `is locked by pid ${first.pid}`, 'it names the agent that holds it');
  t.same((await request(home.socket, 'GET', '/v1/health')).json, { status: 'ok' }, 'the first one still serves');
});
