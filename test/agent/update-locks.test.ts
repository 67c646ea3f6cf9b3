// Update locks (after balena) through a real agent on its real socket: each task gets
// TASKHOST_LOCK_FILE in its alloc dir; while that file exists a stop or delete is 423
// TASK_LOCKED naming it, and force removes it and goes ahead. Real raw_exec processes, a real
// busybox container that takes its lock as /alloc/<name>.lock, and the `taskhost stop` CLI.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import t from 'tap';
import { AgentClient } from '../../agent/agent-client.js';
import { Agent } from '../../agent/agent.js';
import type { TaskRecord } from '../../agent/store-records.js';
import { TaskLockedError } from '../../shared/errors.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import { BUSYBOX_NEXT_IMAGE, requireDocker } from '../helpers/docker.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';
import { runCli } from '../helpers/run-cli.js';
import { eventually, request, runningRecord, stopAll, taskPath } from './agent-request.js';
import { freshDataDir, quiet } from './supervisor-helpers.js';

interface ErrorAnswer {
  error: { code: string; message: string; details?: { lockFile?: string; errors?: { path: string }[] } };
}

/** An agent on a fresh data dir with the given built-in plugins; its tasks and containers go at teardown. */
async function startAgent(t: Parameters<typeof freshDataDir>[0], plugins: RegExp, docker?: Dockerode) {
  const dataDir = freshDataDir(t);
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: { ...fastSupervision, startTimeout: '60s' },
    plugins: {
      mock: { enabled: true },
      // No image GC: the container test runs the shared busybox image, which must stay.
      ...(docker ? { docker: { config: { gc: { image: false } } } } : {}),
    },
  });
  const agent = await Agent.start({ config, logger: quiet, builtinDirs: builtinPluginDirs.filter((d) => plugins.test(d)) });
  t.teardown(async () => {
    await stopAll(agent).catch(() => undefined);
    await agent.close();
    if (!docker) return;
    const left = await docker.listContainers({ all: true, filters: { label: [`com.taskhost.agent=${dataDir}`] } });
    for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  });
  const socket = agent.addresses.socket;
  const submit = async (spec: unknown): Promise<TaskRecord> => {
    const answer = await request<TaskRecord>(socket, 'POST', '/v1/tasks', spec);
    if (answer.status !== 201) throw new Error(`POST /v1/tasks: ${answer.status} ${JSON.stringify(answer.json)}`);
    return answer.json;
  };
  /** The task's alloc dir on the host: where the agent looks for its lock. */
  const allocDir = (id: string) => path.join(dataDir, 'allocs', id.split('/')[0]!, 'alloc');
  const lockFile = (record: TaskRecord) => path.join(allocDir(record.id), `${record.name}.lock`);
  const stdout = (record: TaskRecord) => {
    const file = path.join(allocDir(record.id), 'logs', `${record.name}.stdout`);
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  };
  return { agent, socket, submit, lockFile, stdout };
}

const shell = (name: string, script: string) => ({ name, driver: 'raw_exec', config: { command: '/bin/sh', args: ['-c', script] } });

/** Waits a while, so that a stop that went ahead anyway would have had time to show. */
const settle = () => new Promise((r) => setTimeout(r, 1500));

t.test('raw_exec: a stop while the lock file exists is 423 naming it; force removes it and stops the task', async (t) => {
  const { agent, socket, submit, lockFile, stdout } = await startAgent(t, /raw_exec|mock$/);
  const task = await submit(shell('web', 'touch "$TASKHOST_LOCK_FILE"; echo "lock=$TASKHOST_LOCK_FILE"; exec sleep 1000'));
  const lock = lockFile(task);
  await runningRecord(agent, task.id);
  await eventually(() => existsSync(lock), 'the task to take its lock');
  await eventually(() => stdout(task).includes('\n'), 'the task to print its lock file');
  t.equal(stdout(task), `lock=${lock}\n`, 'a task on the host file system gets the host path of its lock file');

  const refused = await request<ErrorAnswer>(socket, 'POST', taskPath(task.id, '/stop'), { timeout: '10s' });
  t.equal(refused.status, 423);
  t.equal(refused.json.error.code, 'TASK_LOCKED');
  t.ok(refused.json.error.message.includes(`(${lock} exists)`), 'the message names the lock file');
  t.match(refused.json.error.message, /--force/, 'and says how to go ahead');
  t.equal(refused.json.error.details?.lockFile, lock);
  await settle();
  t.equal(agent.supervisor.get('default', task.id).state, 'running', 'the task was not stopped');
  t.ok(existsSync(lock), 'nor its lock removed');

  const forced = await request<TaskRecord>(socket, 'POST', taskPath(task.id, '/stop'), { timeout: '10s', force: true });
  t.equal(forced.status, 202);
  t.notOk(existsSync(lock), 'force removed the lock file');
  const waited = await request<TaskRecord>(socket, 'GET', taskPath(task.id, '/wait'));
  t.match(waited.json, { state: 'exited', exitResult: { signal: 'SIGTERM' } }, 'and the task was stopped');
});

t.test('raw_exec: once the task removes its lock file, a plain stop goes ahead', async (t) => {
  const { agent, socket, submit, lockFile } = await startAgent(t, /raw_exec|mock$/);
  const task = await submit(
    shell(
      'db',
      'touch "$TASKHOST_LOCK_FILE"; while [ ! -e "$TASKHOST_ALLOC_DIR/go" ]; do sleep 0.1; done; rm "$TASKHOST_LOCK_FILE"; exec sleep 1000',
    ),
  );
  const lock = lockFile(task);
  await runningRecord(agent, task.id);
  await eventually(() => existsSync(lock), 'the task to take its lock');
  t.equal((await request(socket, 'POST', taskPath(task.id, '/stop'), {})).status, 423, 'locked');

  writeFileSync(path.join(path.dirname(lock), 'go'), '');
  await eventually(() => !existsSync(lock), 'the task to release its lock');
  t.equal((await request(socket, 'POST', taskPath(task.id, '/stop'), { timeout: '10s' })).status, 202, 'released: stopped');
  t.match((await request(socket, 'GET', taskPath(task.id, '/wait'))).json, { state: 'exited', exitResult: { signal: 'SIGTERM' } });
});

t.test('DELETE of a completed task whose lock file remains is 423; force removes file and record', async (t) => {
  const { socket, submit, lockFile } = await startAgent(t, /raw_exec|mock$/);
  const task = await submit(shell('job', 'touch "$TASKHOST_LOCK_FILE"; exit 0'));
  const lock = lockFile(task);
  t.match((await request(socket, 'GET', taskPath(task.id, '/wait'))).json, { state: 'exited', exitResult: { exitCode: 0 } });
  t.ok(existsSync(lock), 'the task exited holding its lock');

  const refused = await request<ErrorAnswer>(socket, 'DELETE', taskPath(task.id));
  t.equal(refused.status, 423);
  t.equal(refused.json.error.code, 'TASK_LOCKED');
  t.ok(refused.json.error.message.includes(`(${lock} exists)`), 'the message names the lock file');
  t.match(refused.json.error.message, /\?force=true/, 'and says how to go ahead');
  t.equal((await request(socket, 'GET', taskPath(task.id))).status, 200, 'the record is kept');

  const bad = await request<ErrorAnswer>(socket, 'DELETE', taskPath(task.id, '?force=yes'));
  t.equal(bad.status, 400);
  t.same(
    bad.json.error.details?.errors?.map((e) => e.path),
    ['/query/force'],
  );

  const client = new AgentClient({ socket });
  t.teardown(() => client.close());
  await t.rejects(client.delete(task.id), TaskLockedError, 'the client gets the error class back');
  await client.delete(task.id, { force: true });
  t.notOk(existsSync(lock), 'force removed the lock file');
  t.equal((await request(socket, 'GET', taskPath(task.id))).status, 404, 'and the record');
});

t.test('taskhost stop of a locked task: one line naming the lock and --force; --force stops it', async (t) => {
  const { agent, socket, submit, lockFile } = await startAgent(t, /raw_exec|mock$/);
  const task = await submit(shell('cli', 'touch "$TASKHOST_LOCK_FILE"; exec sleep 1000'));
  const lock = lockFile(task);
  await runningRecord(agent, task.id);
  await eventually(() => existsSync(lock), 'the task to take its lock');

  const refused = await runCli(['stop', task.id, '--agent', socket]);
  t.equal(refused.code, 1);
  t.equal(refused.stdout, '');
  const lines = refused.stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, 'one line');
  t.match(lines[0], /^error: TASK_LOCKED: task \S+ holds its update lock/);
  t.ok(lines[0]!.includes(lock), 'naming the lock file');
  t.match(lines[0], /--force/);
  t.equal(agent.supervisor.get('default', task.id).state, 'running');

  const forced = await runCli(['stop', '--force', '--timeout', '10s', task.id, '--agent', socket]);
  t.equal(forced.stderr, '');
  t.equal(forced.code, 0);
  t.equal(forced.stdout, `${task.id}: killed by SIGTERM (exit code 143)\n`, 'it waited for the exit');
  t.notOk(existsSync(lock), 'the lock file is gone');
});

t.test('docker: a container takes its lock as /alloc/<name>.lock; the agent sees it on the host', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const { agent, socket, submit, lockFile, stdout } = await startAgent(t, /docker|mock$/, docker);
  const task = await submit({
    name: 'box',
    driver: 'docker',
    config: {
      image: BUSYBOX_NEXT_IMAGE,
      networkMode: 'none',
      pullPolicy: 'never',
      command: 'sh',
      // sh is PID 1: only a trapped SIGTERM ends it; exit 7 says the stop reached it.
      args: ['-c', 'trap "exit 7" TERM; touch "$TASKHOST_LOCK_FILE"; echo "lock=$TASKHOST_LOCK_FILE"; while true; do sleep 1; done'],
    },
  });
  const lock = lockFile(task);
  await runningRecord(agent, task.id);
  await eventually(() => existsSync(lock), 'the container to take its lock');
  await eventually(() => stdout(task).includes('\n'), 'the container to print its lock file');
  t.equal(stdout(task), 'lock=/alloc/box.lock\n', 'inside the container the lock file is under /alloc');

  const refused = await request<ErrorAnswer>(socket, 'POST', taskPath(task.id, '/stop'), { timeout: '20s' });
  t.equal(refused.status, 423);
  t.match(refused.json.error, { code: 'TASK_LOCKED', details: { lockFile: lock } }, 'the host path of the lock');
  await settle();
  t.equal(agent.supervisor.get('default', task.id).state, 'running', 'the container was not stopped');

  const forced = await request(socket, 'POST', taskPath(task.id, '/stop'), { timeout: '20s', force: true });
  t.equal(forced.status, 202);
  t.notOk(existsSync(lock), 'force removed the lock file');
  t.match((await request(socket, 'GET', taskPath(task.id, '/wait'))).json, { state: 'exited', exitResult: { exitCode: 7 } });
});
