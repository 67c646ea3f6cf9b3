// AgentClient, the library's client of a running agent: every task call against a real agent
// over its socket, errors turned back into their classes, and the edges a fake agent on a real
// socket can produce (odd bodies, Retry-After, a connection cut, a cancelled call).
import { writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import path from 'node:path';
import t from 'tap';
import {
  Agent,
  AgentClient,
  AgentUnreachableError,
  CancelledError,
  TaskhostError,
  TaskNotFoundError,
  TaskRunningError,
} from '../../index.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import { fakeAgent, sendError, sendJson } from '../helpers/fake-agent.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';
import { freshDataDir, quiet } from './supervisor-helpers.js';

const builtinDirs = builtinPluginDirs.filter((d) => /raw_exec|mock$/.test(d));

t.test('the task calls against a real agent: submit, list, get, wait, signal, stop, delete', async (t) => {
  const dataDir = freshDataDir(t);
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: { ...fastSupervision, startTimeout: '60s' },
    plugins: { mock: { enabled: true } },
  });
  const agent = await Agent.start({ config, logger: quiet, builtinDirs });
  t.teardown(() => agent.close());
  const client = new AgentClient({ socket: agent.addresses.socket });
  t.teardown(() => client.close());
  const teamA = new AgentClient({ socket: agent.addresses.socket, namespace: 'team-a' });
  t.teardown(() => teamA.close());

  t.same(await client.health(), { status: 'ok' });
  const quick = await client.submit({ name: 'quick', driver: 'mock', config: { exitCode: 2 }, labels: { team: 'a' } });
  t.match(quick, { name: 'quick', state: 'pending', labels: { team: 'a' } });
  t.match(await client.wait(quick.id), { state: 'exited', exitResult: { exitCode: 2 } });
  t.match(await client.get(quick.id), { id: quick.id, state: 'exited' });

  const slow = await teamA.submit({ name: 'slow', driver: 'mock', config: { runFor: '600s' } });
  t.same(
    (await client.list()).map((r) => r.name),
    ['quick'],
    'a client sees its namespace only',
  );
  t.same(
    (await teamA.list(['state==exited', 'name~=^sl'])).map((r) => r.name),
    ['slow'],
  );
  const deadline = Date.now() + 60_000;
  while ((await teamA.get(slow.id)).state !== 'running' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  await t.rejects(teamA.delete(slow.id), TaskRunningError, 'a running task cannot be deleted: its error class');
  t.match(await teamA.signal(slow.id, 'SIGINT'), { id: slow.id });
  t.match(await teamA.wait(slow.id), { state: 'exited', exitResult: { signal: 'SIGINT' } }, 'the mock dies of the signal');
  await client.delete(quick.id);
  const gone = await client.get(quick.id).catch((err: unknown) => err);
  t.ok(gone instanceof TaskNotFoundError, 'an unknown id is TaskNotFoundError');
  t.match(gone, { code: 'TASK_NOT_FOUND', recoverable: false });

  const running = await client.submit({ name: 'nap', driver: 'mock', config: { runFor: '600s' } });
  while ((await client.get(running.id)).state !== 'running' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  t.match(await client.stop(running.id, { timeout: '5s' }), { id: running.id });
  t.match(await client.wait(running.id), { exitResult: { signal: 'SIGTERM' } });
  const invalid = await client.stop(running.id, { timeout: 'soon' }).catch((err: unknown) => err);
  t.match(invalid, { code: 'INVALID_CONFIG', errors: [{ path: '/timeout' }] }, 'invalid input keeps its paths');
});

t.test('an error the agent sends keeps its code, details and Retry-After; an odd body is still an error', async (t) => {
  let answer: (res: ServerResponse) => void = () => undefined;
  const { socket, seen } = await fakeAgent(t, (_req, res) => answer(res));
  const client = new AgentClient({ socket, namespace: 'ns1' });
  t.teardown(() => client.close());

  answer = (res) =>
    sendJson(
      res,
      503,
      { error: { code: 'PLUGIN_CRASHED', message: 'docker restarts', details: { plugin: 'docker' } } },
      { 'retry-after': '3' },
    );
  const crashed = await client.images().catch((err: unknown) => err);
  t.match(crashed, {
    code: 'PLUGIN_CRASHED',
    recoverable: true,
    retryAfterMs: 3000,
    details: { plugin: 'docker' },
    message: 'docker restarts',
  });
  t.equal(seen[0]!.headers['taskhost-namespace'], 'ns1');

  answer = (res) => sendError(res, 418, 'FROM_A_NEWER_AGENT', 'a code this client does not know');
  const unknown = await client.health().catch((err: unknown) => err);
  t.ok(unknown instanceof TaskhostError);
  t.match(unknown, { code: 'FROM_A_NEWER_AGENT', message: 'a code this client does not know' }, 'an unknown code is kept');

  answer = (res) => {
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end('<h1>bad gateway</h1>');
  };
  t.match(await client.health().catch((err: unknown) => err), {
    code: 'TASKHOST_ERROR',
    message: 'the agent answered 502 without an error document: <h1>bad gateway</h1>',
    details: { status: 502 },
  });

  answer = (res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status": ');
  };
  t.match(await client.health().catch((err: unknown) => err), {
    code: 'TASKHOST_ERROR',
    message: /answered GET \/v1\/health with a body that is not JSON/,
  });

  answer = (res) => sendError(res, 404, 'TASK_NOT_FOUND', 'no such task');
  await t.rejects(async () => {
    for await (const chunk of client.logs('a1/x/00000001')) t.fail(`no chunk expected, got ${String(chunk)}`);
  }, TaskNotFoundError);

  answer = (res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"tasks": [');
    setTimeout(() => res.socket!.destroy(), 20);
  };
  t.match(await client.list().catch((err: unknown) => err), {
    code: 'AGENT_UNREACHABLE',
    message: /closed the connection while it answered: it stopped, or it is restarting/,
  });

  answer = (res) => res.socket!.destroy();
  const cut = await client.health().catch((err: unknown) => err);
  t.ok(cut instanceof AgentUnreachableError, 'a connection cut before the answer');
  t.match(cut, { message: /closed the connection before it answered/, details: { socket, cause: 'ECONNRESET' } });
});

t.test('events: objects from NDJSON, a last line without a newline, a line that is not JSON', async (t) => {
  let lines = '';
  const { socket } = await fakeAgent(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.end(lines);
  });
  const client = new AgentClient({ socket });
  t.teardown(() => client.close());
  lines =
    '{"index":1,"topic":"tasks","type":"created","key":"default/a","payload":{}}\n\n{"index":2,"topic":"tasks","type":"deleted","key":"default/a","payload":null}';
  const seen = [];
  for await (const event of client.events({ index: 0 })) seen.push(event.index);
  t.same(seen, [1, 2]);
  lines = '{"index":1}\nnot json\n';
  await t.rejects(
    async () => {
      for await (const event of client.events()) t.equal(event.index, 1);
    },
    { code: 'TASKHOST_ERROR', message: 'the agent sent an event line that is not JSON: not json' },
  );
});

t.test('a cancelled call is CancelledError, before it is sent and while it streams', async (t) => {
  const { socket } = await fakeAgent(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write('first');
    // and nothing more: a followed task that writes no more
  });
  const client = new AgentClient({ socket });
  t.teardown(() => client.close());
  const early = new AbortController();
  early.abort();
  await t.rejects(client.health(early.signal), CancelledError);

  const later = new AbortController();
  const chunks: string[] = [];
  const reading = (async () => {
    for await (const chunk of client.logs('a1/x/00000001', { follow: true, signal: later.signal })) {
      chunks.push(Buffer.from(chunk).toString());
      later.abort();
    }
  })();
  await t.rejects(reading, CancelledError);
  t.same(chunks, ['first']);
});

t.test('no agent: AgentUnreachableError with the socket and the system’s code; a client needs a socket', async (t) => {
  const socket = path.join(freshDataDir(t), 'agent.sock');
  const client = new AgentClient({ socket });
  const err = await client.list().catch((e: unknown) => e);
  t.ok(err instanceof AgentUnreachableError);
  t.match(err, { code: 'AGENT_UNREACHABLE', recoverable: true, details: { socket, cause: 'ENOENT' } });
  t.match((err as Error).message, /start one with `taskhost agent --config <file>`/);
  client.close();
  client.close();
  const notSocket = path.join(path.dirname(socket), 'agent.json');
  writeFileSync(notSocket, '{}');
  const file = new AgentClient({ socket: notSocket });
  t.match(await file.health().catch((e: unknown) => e), {
    details: { cause: 'ECONNREFUSED', reason: 'it is not a socket' },
    message: `no taskhost agent answers on ${notSocket} (it is not a socket): start one with \`taskhost agent --config <file>\``,
  });
  file.close();
  t.throws(() => new AgentClient({ socket: '' }), TypeError);
});
