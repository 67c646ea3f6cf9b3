// The agent's API server: the error shape for every refusal (validation, size, media type,
// unknown routes, handler errors), a real unix-socket round trip with the socket's 0600 mode,
// stale and live sockets, and the bearer token on loopback TCP.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, statSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import t from 'tap';
import { createApiServer, parseLoopbackAddress } from '../../agent/server.js';
import { defineRoute } from '../../agent/server-routes.js';
import { bearerMatches, loadOrCreateToken, tokenFile } from '../../agent/server-token.js';
import { AgentRunningError, InvalidConfigError, TaskLockedError } from '../../shared/errors.js';

const work = mkdtempSync(path.join(tmpdir(), 'taskhost-api-'));
let n = 0;
const socketPath = () => path.join(work, `s${n++}.sock`);

const echo = defineRoute({
  method: 'POST',
  url: '/v1/echo/:id',
  operationId: 'echo',
  summary: 'Echoes the body.',
  schema: {
    params: Type.Object({ id: Type.String({ pattern: '^[a-z]+$' }) }),
    querystring: Type.Object({ n: Type.Optional(Type.String()) }),
    headers: Type.Object({ 'x-mood': Type.Optional(Type.Literal('happy')) }),
    body: Type.Object({ a: Type.Number(), pad: Type.Optional(Type.String()) }),
    response: { 200: Type.Object({ a: Type.Number(), id: Type.String(), namespace: Type.String() }) },
  },
  handler: async (request) => ({ a: request.body.a, id: request.params.id, namespace: request.namespace }),
});
const locked = defineRoute({
  method: 'DELETE',
  url: '/v1/locked',
  operationId: 'locked',
  summary: 'Always locked.',
  schema: { response: { 204: Type.Null() } },
  handler: async () => {
    throw new TaskLockedError('task x holds its update lock: repeat with force: true');
  },
});
const broken = defineRoute({
  method: 'GET',
  url: '/v1/broken',
  operationId: 'broken',
  summary: 'A bug.',
  schema: { response: { 200: Type.Null() } },
  handler: async () => {
    throw new TypeError('cannot read properties of undefined');
  },
});
const routes = [echo, locked, broken];

const json = (body: string) => JSON.parse(body) as { error: { code: string; message: string; details?: { errors?: unknown[] } } };

t.test('GET /v1/health', async (t) => {
  const server = createApiServer();
  const res = await server.inject('/v1/health');
  t.equal(res.statusCode, 200);
  t.same(res.json(), { status: 'ok' });
});

t.test('GET /v1/openapi.json describes every route', async (t) => {
  const server = createApiServer({ routes });
  const doc = (await server.inject('/v1/openapi.json')).json() as {
    paths: Record<string, Record<string, { parameters?: { name: string; in: string }[] }>>;
  };
  t.same(Object.keys(doc.paths), ['/v1/health', '/v1/openapi.json', '/v1/echo/{id}', '/v1/locked', '/v1/broken']);
  t.same(
    doc.paths['/v1/echo/{id}']!.post!.parameters!.map((p) => `${p.in}:${p.name}`),
    ['path:id', 'query:n', 'header:x-mood'],
  );
  t.same(doc, server.openapi);
});

t.test('a valid request reaches the handler, with its namespace', async (t) => {
  const server = createApiServer({ routes });
  const res = await server.inject({ method: 'POST', url: '/v1/echo/abc', payload: { a: 1 } });
  t.same(res.json(), { a: 1, id: 'abc', namespace: 'default' });
  const other = await server.inject({
    method: 'POST',
    url: '/v1/echo/abc',
    payload: { a: 1 },
    headers: { 'taskhost-namespace': 'team-a' },
  });
  t.same(other.json(), { a: 1, id: 'abc', namespace: 'team-a' });
});

t.test('invalid parts are 400 with each JSON path', async (t) => {
  const server = createApiServer({ routes });
  const cases: [Parameters<typeof server.inject>[0], string, unknown[]][] = [
    [
      { method: 'POST', url: '/v1/echo/abc', payload: { a: 'x', zzzz: 1 } },
      'the request body is invalid: /zzzz: unknown key (allowed: a, pad); /a: must be number',
      [
        { path: '/zzzz', message: 'unknown key (allowed: a, pad)' },
        { path: '/a', message: 'must be number' },
      ],
    ],
    [
      { method: 'POST', url: '/v1/echo/ABC', payload: { a: 1 } },
      'the path is invalid: /params/id: must match pattern "^[a-z]+$"',
      [{ path: '/params/id', message: 'must match pattern "^[a-z]+$"' }],
    ],
    [
      { method: 'POST', url: '/v1/echo/abc?zzzz=1', payload: { a: 1 } },
      'the query string is invalid: /query/zzzz: unknown key (allowed: n)',
      [{ path: '/query/zzzz', message: 'unknown key (allowed: n)' }],
    ],
    [
      { method: 'POST', url: '/v1/echo/abc', payload: { a: 1 }, headers: { 'x-mood': 'sad' } },
      'the request headers are invalid: /headers/x-mood: must be equal to constant',
      [{ path: '/headers/x-mood', message: 'must be equal to constant' }],
    ],
    [
      { method: 'POST', url: '/v1/echo/abc' },
      'the request body is invalid: (root): must be object',
      [{ path: '', message: 'must be object' }],
    ],
    [
      { method: 'POST', url: '/v1/echo/abc', payload: { a: 1, pad: 'a\u0000b' } },
      /^the request body is invalid: \/pad: the value contains a NUL/,
      [{ path: '/pad', message: /NUL/ }],
    ],
    [
      { method: 'POST', url: '/v1/echo/abc', payload: { a: 1 }, headers: { 'taskhost-namespace': 'a..b' } },
      /^the Taskhost-Namespace header is invalid/,
      [{ path: '/headers/taskhost-namespace', message: /must be letters and digits/ }],
    ],
  ] as never;
  for (const [request, message, errors] of cases) {
    const res = await server.inject(request);
    t.equal(res.statusCode, 400, JSON.stringify(request));
    t.match(json(res.body), { error: { code: 'INVALID_CONFIG', message, details: { errors } } });
  }
});

t.test('bodies too large, not JSON, or unparsable are 4xx in the error shape', async (t) => {
  const server = createApiServer({ routes, bodyLimit: 100 });
  const big = await server.inject({ method: 'POST', url: '/v1/echo/abc', payload: { a: 1, pad: 'x'.repeat(200) } });
  t.equal(big.statusCode, 413);
  t.same(json(big.body).error, {
    code: 'INVALID_CONFIG',
    message: 'the request body is larger than 100 bytes, the most this agent takes',
    details: { errors: [{ path: '', message: 'the request body is larger than 100 bytes, the most this agent takes' }] },
  });
  const text = await server.inject({ method: 'POST', url: '/v1/echo/abc', payload: 'a=1', headers: { 'content-type': 'text/plain' } });
  t.equal(text.statusCode, 415);
  t.equal(json(text.body).error.message, 'the request body must be JSON (Content-Type: application/json), not "text/plain"');
  const broken = await server.inject({
    method: 'POST',
    url: '/v1/echo/abc',
    payload: '{"a":',
    headers: { 'content-type': 'application/json' },
  });
  t.equal(broken.statusCode, 400);
  t.match(json(broken.body).error, {
    code: 'INVALID_CONFIG',
    message: /^the request body is invalid: /,
    details: { errors: [{ path: '' }] },
  });
  t.throws(() => createApiServer({ bodyLimit: 0 }), InvalidConfigError);
});

t.test('unknown routes are 404 ROUTE_NOT_FOUND listing the routes', async (t) => {
  const server = createApiServer({ routes });
  const res = await server.inject({ method: 'GET', url: '/v1/nothing?x=1' });
  t.equal(res.statusCode, 404);
  t.same(json(res.body).error, {
    code: 'ROUTE_NOT_FOUND',
    message:
      'no route for GET /v1/nothing; the agent serves GET /v1/health, GET /v1/openapi.json, POST /v1/echo/:id, DELETE /v1/locked, GET /v1/broken',
  });
  t.equal((await server.inject({ method: 'DELETE', url: '/v1/health' })).statusCode, 404, 'a known path with another method');
});

t.test("handlers' errors: their code's status; anything else 500", async (t) => {
  const server = createApiServer({ routes });
  const lockedRes = await server.inject({ method: 'DELETE', url: '/v1/locked' });
  t.equal(lockedRes.statusCode, 423);
  t.same(json(lockedRes.body), { error: { code: 'TASK_LOCKED', message: 'task x holds its update lock: repeat with force: true' } });
  const bug = await server.inject('/v1/broken');
  t.equal(bug.statusCode, 500);
  t.same(json(bug.body), { error: { code: 'TASKHOST_ERROR', message: 'the agent failed: cannot read properties of undefined' } });
});

const request = (options: http.RequestOptions) =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });

t.test('a real round trip over the unix socket, mode 0600, removed on close', async (t) => {
  const server = createApiServer({ routes });
  const socket = socketPath();
  const addresses = await server.listen({ socket });
  t.same(addresses, { socket });
  t.equal(statSync(socket).mode & 0o777, 0o600);
  t.ok(statSync(socket).isSocket());
  const res = await request({ socketPath: socket, path: '/v1/health' });
  t.same({ status: res.status, body: JSON.parse(res.body) as unknown }, { status: 200, body: { status: 'ok' } });
  await server.close();
  await server.close();
  t.notOk(existsSync(socket), 'the socket file is gone');
});

t.test('a stale socket file is replaced; a live one or a plain file is refused', async (t) => {
  const stale = socketPath();
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`]);
  await new Promise((resolve) => child.stdout.once('data', resolve));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  t.ok(statSync(stale).isSocket(), 'the dead process left its socket');
  const server = createApiServer();
  await server.listen({ socket: stale });
  t.equal((await request({ socketPath: stale, path: '/v1/health' })).status, 200);

  const second = createApiServer();
  await t.rejects(second.listen({ socket: stale }), AgentRunningError);
  await t.rejects(second.listen({ socket: stale }), {
    message: `another agent answers on ${stale}: stop it first, or give this one another --socket`,
  });
  t.equal((await request({ socketPath: stale, path: '/v1/health' })).status, 200, 'the first agent still answers');
  await server.close();
  await second.close();

  const file = path.join(work, 'plain');
  writeFileSync(file, 'keep me');
  await t.rejects(createApiServer().listen({ socket: file }), {
    code: 'INVALID_CONFIG',
    message: `${file} exists and is not a socket: move it away, or give the agent another --socket`,
  });
  t.ok(existsSync(file), 'a file that is not a socket is never removed');

  const other = net.createServer();
  const live = socketPath();
  await new Promise<void>((resolve) => other.listen(live, resolve));
  await t.rejects(createApiServer().listen({ socket: live }), { code: 'AGENT_RUNNING' });
  await new Promise((resolve) => other.close(resolve));
});

t.test('loopback TCP needs the bearer token; the unix socket does not', async (t) => {
  const dataDir = mkdtempSync(path.join(work, 'data-'));
  const token = await loadOrCreateToken(dataDir);
  const server = createApiServer({ routes, token, tokenFile: tokenFile(dataDir) });
  const socket = socketPath();
  const { tcp } = await server.listen({ socket, tcp: '127.0.0.1:0' });
  t.equal(tcp!.host, '127.0.0.1');
  t.ok(tcp!.port > 0);
  const at = { host: '127.0.0.1', port: tcp!.port, path: '/v1/health' };

  const none = await request(at);
  t.equal(none.status, 401);
  t.equal(none.headers['www-authenticate'], 'Bearer');
  t.same(JSON.parse(none.body), {
    error: {
      code: 'UNAUTHORIZED',
      message: `the TCP listener needs "Authorization: Bearer <token>": the token is in ${tokenFile(dataDir)} (the unix socket needs none)`,
    },
  });
  const wrong = await request({ ...at, headers: { authorization: `Bearer ${token}x` } });
  t.equal(wrong.status, 401);
  t.match(JSON.parse(wrong.body), { error: { code: 'UNAUTHORIZED', message: /^the bearer token is wrong/ } });
  const right = await request({ ...at, headers: { authorization: `Bearer ${token}` } });
  t.same({ status: right.status, body: JSON.parse(right.body) as unknown }, { status: 200, body: { status: 'ok' } });
  const unknownRoute = await request({ ...at, path: '/v1/nothing' });
  t.equal(unknownRoute.status, 401, 'the token is asked before routing');
  t.equal((await request({ ...at, path: '/v1/nothing', headers: { authorization: `bearer ${token}` } })).status, 404);
  t.equal((await request({ socketPath: socket, path: '/v1/health' })).status, 200, 'the socket needs no token');
  await server.close();
});

t.test('TCP only on loopback, and only with a token', async (t) => {
  t.same(parseLoopbackAddress('127.0.0.1:8585'), { host: '127.0.0.1', port: 8585 });
  t.same(parseLoopbackAddress('127.1.2.3:0'), { host: '127.1.2.3', port: 0 });
  t.same(parseLoopbackAddress('[::1]:80'), { host: '::1', port: 80 });
  t.same(parseLoopbackAddress('localhost:80'), { host: '127.0.0.1', port: 80 });
  for (const bad of ['0.0.0.0:80', '10.0.0.1:80', '[::]:80', 'example.com:80', '128.0.0.1:1']) {
    t.throws(() => parseLoopbackAddress(bad), { code: 'INVALID_CONFIG', message: /is not a loopback address/ }, bad);
  }
  t.throws(() => parseLoopbackAddress('127.0.0.1'), { message: '"127.0.0.1" is not HOST:PORT (such as 127.0.0.1:8585 or [::1]:8585)' });
  t.throws(() => parseLoopbackAddress('127.0.0.1:70000'), { message: 'port 70000 is out of range (0 to 65535)' });
  const server = createApiServer();
  await t.rejects(server.listen({ socket: socketPath(), tcp: '127.0.0.1:0' }), {
    code: 'INVALID_CONFIG',
    message: 'a TCP listener needs a token: pass createApiServer({ token }) (see loadOrCreateToken)',
  });
  await t.rejects(createApiServer({ token: 'x'.repeat(20) }).listen({ socket: socketPath(), tcp: '0.0.0.0:0' }), {
    code: 'INVALID_CONFIG',
    errors: [{ path: '/listen' }],
  });
});

t.test('the token file: made once with mode 0600, refused when others may read it', async (t) => {
  const dataDir = mkdtempSync(path.join(work, 'token-'));
  const token = await loadOrCreateToken(dataDir);
  t.match(token, /^[A-Za-z0-9_-]{43}$/);
  t.equal(statSync(tokenFile(dataDir)).mode & 0o777, 0o600);
  t.equal(await loadOrCreateToken(dataDir), token, 'the next start reads the same token');
  chmodSync(tokenFile(dataDir), 0o644);
  await t.rejects(loadOrCreateToken(dataDir), { code: 'INVALID_CONFIG', message: /may be read by others \(mode 0644\): run chmod 600/ });
  writeFileSync(tokenFile(dataDir), 'short\n', { mode: 0o600 });
  chmodSync(tokenFile(dataDir), 0o600);
  await t.rejects(loadOrCreateToken(dataDir), { message: /holds no token \(fewer than 16 characters\): delete it/ });
  await t.rejects(loadOrCreateToken(path.join(dataDir, 'missing', 'dir')), { code: 'INVALID_CONFIG', message: /^cannot write / });
});

t.test('bearerMatches', async (t) => {
  const token = 'abcdefghijklmnopqrstuvwxyz';
  t.ok(bearerMatches(`Bearer ${token}`, token));
  t.ok(bearerMatches(`bearer  ${token} `, token));
  t.notOk(bearerMatches(undefined, token));
  t.notOk(bearerMatches(token, token), 'the scheme is needed');
  t.notOk(bearerMatches(`Basic ${token}`, token));
  t.notOk(bearerMatches(`Bearer ${token.slice(1)}`, token));
  t.notOk(bearerMatches('Bearer ', ''), 'an empty token never matches');
});
