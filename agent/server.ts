/**
 * The agent's HTTP/1.1 JSON API server: fastify behind a unix socket (mode 0600, no auth: the
 * file's mode is the access control) and, optionally, loopback TCP that needs the bearer token.
 * Every request part is validated with the project's ajv (errors: 400 with `details.errors`,
 * JSON Pointers as everywhere else), every error leaves in the one shape of http-errors.ts.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { isMainThread } from 'node:worker_threads';
import Fastify, { type FastifyError, type FastifyInstance, type InjectOptions, type LightMyRequestResponse } from 'fastify';
import {
  AgentRunningError,
  InvalidConfigError,
  RouteNotFoundError,
  TaskhostError,
  UnauthorizedError,
  type SchemaIssue,
} from '../shared/errors.js';
import { guardInput, inputLimits } from '../shared/input-guard.js';
import { compileSchema, formatIssues } from '../shared/schema.js';
import { toHttpError, type HttpError } from './http-errors.js';
import { namespaceFromHeader, namespaceHeader } from './names.js';
import { openApiDocument } from './server-openapi.js';
import { builtinRoutes, type ApiRoute, type ApiRouteDefinition } from './server-routes.js';
import { bearerMatches } from './server-token.js';

export interface ApiServerOptions {
  /** The routes besides `GET /v1/health` and `GET /v1/openapi.json`. */
  routes?: readonly ApiRoute[];
  /** The largest request body, in bytes (default 1 MiB, as for files; see inputLimits). */
  bodyLimit?: number;
  /** The bearer token the TCP listener requires (loadOrCreateToken); without one there is no TCP. */
  token?: string;
  /** Where the token is, for the message of a 401. */
  tokenFile?: string;
}

export interface ListenOptions {
  /** The unix socket's path (`<dataDir>/agent.sock`). */
  socket: string;
  /** `HOST:PORT` on loopback (`127.0.0.1:8585`, `[::1]:0`); needs `token`. */
  tcp?: string;
}

export interface ListeningAddresses {
  socket: string;
  tcp?: { host: string; port: number };
}

export interface ApiServer {
  /** Validates, prepares and listens: the socket first (a stale file is removed), then TCP. */
  listen(options: ListenOptions): Promise<ListeningAddresses>;
  /** A request without a socket, as through the unix socket (no token asked). */
  inject(options: InjectOptions | string): Promise<LightMyRequestResponse>;
  /** Stops listening and removes the socket file. Idempotent. */
  close(): Promise<void>;
  /** The OpenAPI document of the routes this server serves. */
  readonly openapi: Record<string, unknown>;
}

const partNames: Record<string, string> = { body: 'body', querystring: 'query', params: 'params', headers: 'headers' };

/** A server for the agent's API; nothing listens until listen(). */
export function createApiServer(options: ApiServerOptions = {}): ApiServer {
  const routes = options.routes ?? [];
  const bodyLimit = options.bodyLimit ?? inputLimits.maxFileBytes;
  if (!Number.isInteger(bodyLimit) || bodyLimit <= 0)
    throw invalid('/bodyLimit', `bodyLimit must be a positive integer of bytes, not ${String(bodyLimit)}`);
  const definitions: ApiRouteDefinition[] = [...builtinRoutes, ...routes];
  const openapi = openApiDocument(definitions);
  const tcpSockets = new WeakSet<object>();
  let handler: http.RequestListener | undefined;
  const unixServer = http.createServer();
  const app: FastifyInstance = Fastify({
    bodyLimit,
    logger: false,
    return503OnClosing: false,
    serverFactory: (h) => {
      handler = h;
      unixServer.on('request', h);
      return unixServer;
    },
  });
  let tcpServer: http.Server | undefined;
  let socketPath: string | undefined;
  const closingServer = new AbortController();

  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(({ schema, httpPart, method, url }) => {
    const part = partNames[httpPart ?? 'body'] ?? 'body';
    // Requests carry many headers a route never names: a headers schema is open.
    const open = part === 'headers' ? { additionalProperties: true, ...schema } : schema;
    const validate = compileSchema(open, `the ${part} schema of ${method} ${url}`);
    const coerce = part === 'query' ? queryCoercion(schema) : (data: unknown) => data;
    return (data: unknown) => {
      const result = validate.inPlace(coerce(data ?? (part === 'body' ? undefined : {})));
      if (result.ok) return { value: result.value };
      const prefix = part === 'body' ? '' : `/${part}`;
      const issues = result.issues.map((i) => ({ path: prefix + i.path, message: i.message }));
      return { error: invalidRequest(part, issues) };
    };
  });
  app.setErrorHandler((err: FastifyError | TaskhostError, request, reply) =>
    send(reply, fromError(err, bodyLimit, request.headers['content-type'])),
  );
  app.setNotFoundHandler((request, reply) => {
    const served = definitions.map((r) => `${r.method} ${r.url}`).join(', ');
    const path = request.url.split('?')[0]!.slice(0, 200);
    send(reply, toHttpError(new RouteNotFoundError(`no route for ${request.method} ${path}; the agent serves ${served}`)));
  });
  app.addHook('onRequest', async (request) => {
    if (!tcpSockets.has(request.raw.socket)) return;
    if (bearerMatches(request.headers.authorization, options.token ?? '')) return;
    const where = options.tokenFile ?? '<dataDir>/agent.token';
    const message =
      request.headers.authorization === undefined
        ? `the TCP listener needs "Authorization: Bearer <token>": the token is in ${where} (the unix socket needs none)`
        : `the bearer token is wrong: use the one in ${where}`;
    throw new UnauthorizedError(message);
  });
  app.addHook('preValidation', async (request) => {
    if (request.body !== undefined) guardInput(request.body, 'the request body');
  });

  app.get('/v1/health', { schema: builtinRoutes[0]!.schema }, async () => ({ status: 'ok' }));
  app.get('/v1/openapi.json', { schema: builtinRoutes[1]!.schema }, async () => openapi);
  for (const route of routes) {
    app.route({
      method: route.method,
      url: route.url,
      schema: route.schema,
      handler: async (request, reply) => {
        const namespace = namespaceFromHeader(request.headers[namespaceHeader]);
        const hungUp = new AbortController();
        const onClose = () => hungUp.abort();
        // The response's close: the request's own fires once its body was read, long before.
        reply.raw.once('close', onClose);
        const gone = AbortSignal.any([hungUp.signal, closingServer.signal]);
        try {
          const parts = { params: request.params, query: request.query, body: request.body, namespace, raw: request, gone };
          return await route.handler(parts as never, reply);
        } finally {
          reply.raw.off('close', onClose);
        }
      },
    });
  }

  let closing: Promise<void> | undefined;
  return {
    openapi,
    inject: (injected) => app.inject(injected),
    async listen(listen) {
      const tcp = listen.tcp === undefined ? undefined : parseLoopbackAddress(listen.tcp);
      if (tcp && options.token === undefined)
        throw invalid('/listen', 'a TCP listener needs a token: pass createApiServer({ token }) (see loadOrCreateToken)');
      await app.ready();
      await prepareSocketPath(listen.socket);
      await listenOnSocket(unixServer, listen.socket);
      socketPath = listen.socket;
      const addresses: ListeningAddresses = { socket: listen.socket };
      if (tcp) {
        tcpServer = http.createServer(handler);
        tcpServer.on('connection', (socket) => tcpSockets.add(socket));
        await listenOn(tcpServer, () => tcpServer!.listen(tcp.port, tcp.host));
        const bound = tcpServer.address() as net.AddressInfo;
        addresses.tcp = { host: bound.address, port: bound.port };
      }
      return addresses;
    },
    close() {
      closing ??= (async () => {
        closingServer.abort();
        await app.close();
        const listening = [unixServer, tcpServer].filter((s): s is http.Server => s?.listening === true);
        await Promise.all(listening.map(closeServer));
        if (socketPath !== undefined) await removeSocket(socketPath);
      })();
      return closing;
    },
  };
}

/**
 * A query string is text: `?index=3&follow=true` reads `index` as the integer and `follow` as
 * the boolean its schema says. A value that is not one (`index=abc`) stays text, so the
 * validator names it (`/query/index: must be integer`).
 */
function queryCoercion(schema: object): (data: unknown) => unknown {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  const typed = Object.entries(properties).filter(([, s]) => s.type === 'integer' || s.type === 'boolean');
  return (data) => {
    if (typeof data !== 'object' || data === null) return data;
    const query = data as Record<string, unknown>;
    for (const [name, { type }] of typed) {
      const value = query[name];
      if (typeof value !== 'string') continue;
      if (type === 'integer' && /^-?\d{1,15}$/.test(value)) query[name] = Number(value);
      else if (type === 'boolean' && (value === 'true' || value === 'false')) query[name] = value === 'true';
    }
    return query;
  };
}

/**
 * `HOST:PORT` with a loopback host (127.0.0.0/8, ::1 or localhost, which becomes 127.0.0.1).
 * Anything else is an InvalidConfigError at `/listen`: the TCP listener is for this node only.
 */
export function parseLoopbackAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  if (!match) throw invalid('/listen', `${JSON.stringify(text)} is not HOST:PORT (such as 127.0.0.1:8585 or [::1]:8585)`);
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  if (port > 65535) throw invalid('/listen', `port ${port} is out of range (0 to 65535)`);
  if (host === 'localhost') return { host: '127.0.0.1', port };
  const loopback = (net.isIPv4(host) && host.startsWith('127.')) || (net.isIPv6(host) && /^(0*:)*:?0*1$|^::1$/.test(host));
  if (!loopback) {
    throw invalid(
      '/listen',
      `${host} is not a loopback address: the agent's TCP listener takes 127.0.0.1, ::1 or localhost only (other hosts use the unix socket through a tunnel of their own)`,
    );
  }
  return { host, port };
}

function fromError(err: FastifyError | TaskhostError, bodyLimit: number, contentType: string | undefined): HttpError {
  if (err instanceof TaskhostError) return toHttpError(err);
  const status = (err as { statusCode?: unknown }).statusCode;
  if (typeof status !== 'number' || status < 400 || status >= 500) return toHttpError(err);
  // fastify's own refusals (body too large, not JSON, unparsable): bad input, so a 4xx in our shape.
  const message =
    err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
      ? `the request body is larger than ${bodyLimit} bytes, the most this agent takes`
      : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? `the request body must be JSON (Content-Type: application/json), not ${JSON.stringify(contentType ?? '')}`
        : `the request body is invalid: ${err.message}`;
  return toHttpError(new InvalidConfigError(message, { details: { errors: [{ path: '', message }] } }), status);
}

function send(
  reply: { code(n: number): unknown; headers(h: Record<string, string>): unknown; send(b: unknown): unknown },
  error: HttpError,
): void {
  reply.code(error.status);
  reply.headers({ ...error.headers, ...(error.status === 401 ? { 'www-authenticate': 'Bearer' } : {}) });
  reply.send(error.body);
}

const partPhrases: Record<string, string> = {
  body: 'the request body is',
  query: 'the query string is',
  params: 'the path is',
  headers: 'the request headers are',
};

function invalidRequest(part: string, issues: SchemaIssue[]): InvalidConfigError {
  return new InvalidConfigError(`${partPhrases[part]} invalid: ${formatIssues(issues).join('; ')}`, { details: { errors: issues } });
}

function invalid(path: string, message: string): InvalidConfigError {
  return new InvalidConfigError(message, { details: { errors: [{ path, message }] } });
}

/** Removes a stale socket file; refuses a live one (another agent) and anything not a socket. */
async function prepareSocketPath(file: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!stats.isSocket()) throw invalid('/socket', `${file} exists and is not a socket: move it away, or give the agent another --socket`);
  if (await answers(file))
    throw new AgentRunningError(`another agent answers on ${file}: stop it first, or give this one another --socket`, {
      details: { socket: file },
    });
  await unlink(file);
}

/** libuv removes the socket file when it closes the server; this is for when it did not. */
async function removeSocket(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(file);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Binds with a umask that leaves the socket 0600 from its first moment (bind is synchronous), then makes sure. */
async function listenOnSocket(server: http.Server, file: string): Promise<void> {
  await listenOn(server, () => {
    const previous = isMainThread ? process.umask(0o177) : undefined;
    try {
      server.listen(file);
    } finally {
      if (previous !== undefined) process.umask(previous);
    }
  });
  await chmod(file, 0o600);
}

function listenOn(server: http.Server, start: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve();
    });
    start();
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
