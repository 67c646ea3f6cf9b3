// GET /v1/tasks/{id}/logs on a real agent with real raw_exec tasks: what the file holds now, a
// follower that gets every byte and ends when the task has completed, offsets, stderr, bad
// input, and `taskhost logs` against the agent itself.
import path from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { Agent } from '../../agent/agent.js';
import type { TaskRecord } from '../../agent/store-records.js';
import { taskHostPaths } from '../../drivers/prepare-task.js';
import { main } from '../../cli/main.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';
import { eventually, openStream, request, runningRecord, stopAll, taskPath } from './agent-request.js';
import { freshDataDir, quiet } from './supervisor-helpers.js';

const builtinDirs = builtinPluginDirs.filter((d) => /raw_exec|mock$/.test(d));

async function startAgent(t: Test): Promise<Agent> {
  const dataDir = freshDataDir(t);
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: { ...fastSupervision, startTimeout: '60s' },
  });
  const agent = await Agent.start({ config, logger: quiet, builtinDirs });
  t.teardown(async () => {
    await stopAll(agent);
    await agent.close();
  });
  return agent;
}

const shTask = (name: string, script: string) => ({ name, driver: 'raw_exec', config: { command: '/bin/sh', args: ['-c', script] } });

async function submit(agent: Agent, spec: object): Promise<TaskRecord> {
  const answer = await request<TaskRecord>(agent.addresses.socket, 'POST', '/v1/tasks', spec);
  if (answer.status !== 201) throw new Error(`submit: ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json;
}

/** The whole body of a GET, as bytes. */
async function body(socket: string, url: string): Promise<{ status: number; bytes: Buffer; type: string | undefined }> {
  const { status, headers, res } = await openStream(socket, url);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return { status, bytes: Buffer.concat(chunks), type: headers['content-type'] };
}

t.test('a follower gets every byte the task writes, and the stream ends once the task has exited', async (t) => {
  const agent = await startAgent(t);
  const socket = agent.addresses.socket;
  // It waits for a file before writing more: the follower is reading while the task still runs.
  const gate = path.join(path.dirname(agent.store.path), 'go-on');
  const task = await submit(
    agent,
    shTask('talker', `echo one; echo oops >&2; while [ ! -e '${gate}' ]; do sleep 0.05; done; printf 'two\\nthree'`),
  );
  await runningRecord(agent, task.id);
  const follow = openStream(socket, taskPath(task.id, '/logs?follow=true'));
  const { status, headers, res } = await follow;
  t.equal(status, 200);
  t.equal(headers['content-type'], 'application/octet-stream');
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise((resolve) => res.on('end', resolve));
  await eventually(() => Buffer.concat(chunks).toString() === 'one\n', 'the first line, while the task runs');
  writeFileSync(gate, '');
  await ended;
  t.equal(Buffer.concat(chunks).toString(), 'one\ntwo\nthree', 'every byte, the last line without its newline too');
  t.equal(agent.supervisor.get('default', task.id).state, 'exited', 'it ended because the task exited');

  const stderr = await body(socket, taskPath(task.id, '/logs?type=stderr'));
  t.equal(stderr.bytes.toString(), 'oops\n');
  const from = await body(socket, taskPath(task.id, '/logs?offset=4'));
  t.equal(from.bytes.toString(), 'two\nthree', 'from byte 4');
  const past = await body(socket, taskPath(task.id, '/logs?offset=1000&follow=true'));
  t.same([past.status, past.bytes.length], [200, 0], 'an offset past the end of a completed task: nothing, at once');
});

t.test('without follow, what the file holds now, though the task runs on; a follower ends when the task is stopped', async (t) => {
  const agent = await startAgent(t);
  const socket = agent.addresses.socket;
  const task = await submit(agent, shTask('sleeper', 'echo ready; exec sleep 300'));
  const record = await runningRecord(agent, task.id);
  const { stdoutPath } = taskHostPaths(path.dirname(agent.store.path), record.id);
  await eventually(() => readFileSync(stdoutPath, 'utf8') === 'ready\n', 'ready in the file');
  const now = await body(socket, taskPath(task.id, '/logs'));
  t.equal(now.bytes.toString(), 'ready\n', 'the stream ends though the task still runs');

  const follow = body(socket, taskPath(task.id, '/logs?follow=true'));
  await new Promise((r) => setTimeout(r, 300));
  t.equal((await request(socket, 'POST', taskPath(task.id, '/stop'), { timeout: '5s' })).status, 202);
  t.equal((await follow).bytes.toString(), 'ready\n', 'the follower ends once the stopped task is recorded');
});

t.test('logs of an unknown task are a 404; a bad query a 400 naming it', async (t) => {
  const agent = await startAgent(t);
  const socket = agent.addresses.socket;
  const unknown = await request<{ error: { code: string } }>(socket, 'GET', taskPath('a1/web/0123abcd', '/logs'));
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.code, 'TASK_NOT_FOUND');
  const task = await submit(agent, { name: 'quick', driver: 'raw_exec', config: { command: '/bin/true' } });
  for (const [query, where] of [
    ['type=stdin', '/query/type'],
    ['offset=-1', '/query/offset'],
    ['follow=yes', '/query/follow'],
  ] as const) {
    const answer = await request<{ error: { details: { errors: { path: string }[] } } }>(
      socket,
      'GET',
      taskPath(task.id, `/logs?${query}`),
    );
    t.equal(answer.status, 400, query);
    t.equal(answer.json.error.details.errors[0]!.path, where);
  }
});

t.test('`taskhost logs` prints a real agent’s task output; `-f` returns when the task exits', async (t) => {
  const agent = await startAgent(t);
  const socket = agent.addresses.socket;
  const task = await submit(agent, shTask('printer', 'echo out; echo err >&2; sleep 0.3; echo done'));
  const out: Buffer[] = [];
  let stderr = '';
  const io = {
    stdout: { write: (s: string | Uint8Array) => out.push(Buffer.from(s)) },
    stderr: { write: (s: string | Uint8Array) => (stderr += s.toString()) },
  };
  t.equal(await main(['logs', task.id, '-f', '--agent', socket], io), 0);
  t.equal(Buffer.concat(out).toString(), 'out\ndone\n');
  t.equal(stderr, '');
  out.length = 0;
  t.equal(await main(['logs', task.id, '--stderr', '--agent', socket], io), 0);
  t.equal(Buffer.concat(out).toString(), 'err\n');
});
