/**
 * A client of a running agent's API (design.md section 10) over its unix socket, for the
 * `taskhost` commands that drive an agent and for programs that embed taskhost. node:http speaks
 * to a unix socket on its own (`socketPath`), so this needs no HTTP library. Errors the agent
 * sends (`{ error: { code, message, details } }`) become their taskhost error classes again; an
 * agent that does not answer is AgentUnreachableError. Logs and events are async iterables.
 */
import { lstatSync } from 'node:fs';
import http from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { AgentUnreachableError, CancelledError, errorCodes, fromErrorData, TaskhostError, type ErrorData } from '../shared/errors.js';
import type { DevicePluginHealth, DeviceStatsSnapshot, NodeDeviceGroup } from '../devices/device-manager.js';
import type { DriverHealthInfo } from '../drivers/driver-manager.js';
import type { StoreEvent, TaskRecord } from './store-records.js';

export interface AgentClientOptions {
  /** The agent's unix socket: `<dataDir>/agent.sock` (agentSocket), or its `--socket`. */
  socket: string;
  /** The namespace of every request (the `Taskhost-Namespace` header); default the agent's `default`. */
  namespace?: string;
}

export interface StopTaskOptions {
  /** How long the task has after its kill signal before SIGKILL (a duration: `10s`); default its killTimeout. */
  timeout?: string;
  /** Go ahead while the task holds its update lock (its TASKHOST_LOCK_FILE is removed). */
  force?: boolean;
}

export interface DeleteTaskOptions {
  /** Go ahead while the task's update lock file is still in its alloc dir (it is removed). */
  force?: boolean;
}

export interface LogsOptions {
  /** Which stream (default stdout). */
  type?: 'stdout' | 'stderr';
  /** Keep reading as the task writes, until it has completed. */
  follow?: boolean;
  /** The byte to start from (default 0). */
  offset?: number;
  signal?: AbortSignal;
}

export interface EventsOptions {
  /** The events after this index (the last one seen, to resume); without one every event the agent still keeps. */
  index?: number;
  /** Only these topics: `tasks`, `images`, `reservations`, `devices`. */
  topics?: readonly string[];
  signal?: AbortSignal;
}

/** The node as `GET /v1/node` describes it. */
export interface NodeInfo {
  attributes: Record<string, string>;
  drivers: DriverHealthInfo[];
  devices: { groups: NodeDeviceGroup[]; plugins: DevicePluginHealth[] };
}

/** An image the agent's Docker driver uses, as `GET /v1/images` lists it. */
export interface ImageListing {
  /** `name:tag`. */
  name: string;
  /** The engine's image id (`sha256:...`). */
  id: string;
  digest?: string;
  sizeBytes: number;
  /** The ids of the tasks that use it. */
  users: string[];
  lastUsedAt?: string;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** The client of one agent; `close()` drops its idle connections. */
export class AgentClient {
  readonly socket: string;
  readonly namespace: string | undefined;
  readonly #http = new http.Agent({ keepAlive: true });

  constructor(options: AgentClientOptions) {
    if (typeof options.socket !== 'string' || options.socket.length === 0)
      throw new TypeError('options.socket must be the path of the agent’s unix socket');
    this.socket = options.socket;
    this.namespace = options.namespace;
  }

  /** `{ status: 'ok' }` when the agent answers. */
  health(signal?: AbortSignal): Promise<{ status: string }> {
    return this.#json('GET', '/v1/health', { signal });
  }

  /** Stores the task `pending` and starts it; the record as stored. */
  submit(spec: unknown, signal?: AbortSignal): Promise<TaskRecord> {
    return this.#json('POST', '/v1/tasks', { body: spec, signal });
  }

  /** The namespace's tasks that match any of `filters` (containerd's syntax), all without one. */
  async list(filters: readonly string[] = [], signal?: AbortSignal): Promise<TaskRecord[]> {
    const query = filters.map((f) => `filter=${encodeURIComponent(f)}`).join('&');
    const reply = await this.#json<{ tasks: TaskRecord[] }>('GET', `/v1/tasks${query ? `?${query}` : ''}`, { signal });
    return reply.tasks;
  }

  /** The task's record. */
  get(id: string, signal?: AbortSignal): Promise<TaskRecord> {
    return this.#json('GET', taskPath(id), { signal });
  }

  /** Resolves with the record once the task has exited, failed or was lost. */
  wait(id: string, signal?: AbortSignal): Promise<TaskRecord> {
    return this.#json('GET', taskPath(id, '/wait'), { signal });
  }

  /** Asks the driver to stop the task; the record as it was when the agent asked. */
  stop(id: string, options: StopTaskOptions = {}, signal?: AbortSignal): Promise<TaskRecord> {
    return this.#json('POST', taskPath(id, '/stop'), { body: options, signal });
  }

  /** Sends the task a signal (`SIGHUP`). */
  signal(id: string, signalName: string, signal?: AbortSignal): Promise<TaskRecord> {
    return this.#json('POST', taskPath(id, '/signal'), { body: { signal: signalName }, signal });
  }

  /** Deletes a completed task's record; `force` goes ahead while its update lock file is there (and removes it). */
  async delete(id: string, options: DeleteTaskOptions = {}, signal?: AbortSignal): Promise<void> {
    await this.#json('DELETE', taskPath(id, options.force ? '?force=true' : ''), { signal });
  }

  /** The images the agent keeps records of. */
  async images(signal?: AbortSignal): Promise<ImageListing[]> {
    return (await this.#json<{ images: ImageListing[] }>('GET', '/v1/images', { signal })).images;
  }

  /** The task's output, chunk by chunk; with `follow`, until the task has completed. */
  async *logs(id: string, options: LogsOptions = {}): AsyncGenerator<Uint8Array> {
    const query = new URLSearchParams({ type: options.type ?? 'stdout' });
    if (options.follow) query.set('follow', 'true');
    if (options.offset !== undefined) query.set('offset', String(options.offset));
    yield* this.#stream(taskPath(id, `/logs?${query}`), 'the logs', options.signal);
  }

  /** The agent's events, one object per NDJSON line, as long as the agent sends them. */
  async *events(options: EventsOptions = {}): AsyncGenerator<StoreEvent> {
    const query = new URLSearchParams();
    if (options.index !== undefined) query.set('index', String(options.index));
    for (const topic of options.topics ?? []) query.append('topic', topic);
    const url = `/v1/events${query.size ? `?${query}` : ''}`;
    const decoder = new StringDecoder('utf8');
    let pending = '';
    const lines = async function* (stream: AsyncGenerator<Uint8Array>) {
      for await (const chunk of stream) {
        pending += decoder.write(chunk as Buffer);
        const complete = pending.split('\n');
        pending = complete.pop()!;
        yield* complete;
      }
      yield pending + decoder.end();
    };
    for await (const line of lines(this.#stream(url, 'the events', options.signal))) {
      if (!line.trim()) continue;
      const event = parseEventLine(line);
      if (event) yield event;
    }
  }

  /** The node's attributes, each driver's health, and the devices (`GET /v1/node`). */
  node(signal?: AbortSignal): Promise<NodeInfo> {
    return this.#json('GET', '/v1/node', { signal });
  }

  /** The device groups and device plugins, as `taskhost devices --json` prints them. */
  devices(signal?: AbortSignal): Promise<NodeInfo['devices']> {
    return this.#json('GET', '/v1/devices', { signal });
  }

  /** The latest stats of every device group, as `taskhost devices stats --json` prints them. */
  deviceStats(signal?: AbortSignal): Promise<DeviceStatsSnapshot> {
    return this.#json('GET', '/v1/devices/stats', { signal });
  }

  /** Closes idle connections; requests in flight finish. Idempotent. */
  close(): void {
    this.#http.destroy();
  }

  async #json<T>(method: string, path: string, options: { body?: unknown; signal?: AbortSignal | undefined }): Promise<T> {
    const res = await this.#request(method, path, options);
    const reply = await this.#read(res, options.signal);
    if (reply.status >= 400) throw agentError(reply);
    if (reply.status === 204 || reply.body === '') return undefined as T;
    try {
      return JSON.parse(reply.body) as T;
    } catch {
      throw new TaskhostError(`the agent on ${this.socket} answered ${method} ${path} with a body that is not JSON`);
    }
  }

  async *#stream(path: string, what: string, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
    const res = await this.#request('GET', path, { signal });
    if (res.statusCode! >= 400) throw agentError(await this.#read(res, signal));
    try {
      for await (const chunk of res) yield chunk as Uint8Array;
    } catch (err) {
      throw this.#failure(err, signal, `while it sent ${what}`);
    } finally {
      res.destroy();
    }
  }

  #request(method: string, path: string, options: { body?: unknown; signal?: AbortSignal | undefined }): Promise<http.IncomingMessage> {
    const { body, signal } = options;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    if (this.namespace !== undefined) headers['taskhost-namespace'] = this.namespace;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(cancelled(signal));
      const req = http.request({ socketPath: this.socket, agent: this.#http, method, path, headers, ...(signal ? { signal } : {}) });
      req.once('response', resolve);
      req.once('error', (err) => reject(this.#failure(err, signal)));
      req.end(payload);
    });
  }

  async #read(res: http.IncomingMessage, signal: AbortSignal | undefined): Promise<Reply> {
    res.setEncoding('utf8');
    let body = '';
    try {
      for await (const chunk of res) body += chunk as string;
    } catch (err) {
      throw this.#failure(err, signal, 'while it answered');
    }
    return { status: res.statusCode!, headers: res.headers, body };
  }

  /** What a failed connection means to the caller: cancelled, no agent, or the agent went away. */
  #failure(err: unknown, signal: AbortSignal | undefined, during?: string): Error {
    if (signal?.aborted) return cancelled(signal);
    const code = (err as NodeJS.ErrnoException).code;
    // connect(2) refuses a path that is no socket at all as it refuses a socket nobody listens on.
    const reason = code === 'ECONNREFUSED' && !isSocket(this.socket) ? 'it is not a socket' : code && unreachable[code];
    const socket = this.socket;
    if (reason) {
      const message = `no taskhost agent answers on ${socket} (${reason}): start one with \`taskhost agent --config <file>\``;
      return new AgentUnreachableError(message, { details: { socket, cause: code, reason }, cause: err });
    }
    if (code === 'ECONNRESET' || (err as Error).message === 'aborted') {
      const message = `the agent on ${socket} closed the connection ${during ?? 'before it answered'}: it stopped, or it is restarting`;
      return new AgentUnreachableError(message, { details: { socket, cause: code ?? 'ECONNRESET' }, cause: err });
    }
    return err as Error;
  }
}

const unreachable: Record<string, string> = {
  ENOENT: 'there is no socket there',
  ECONNREFUSED: 'nothing listens on it: the agent that made it is gone',
  ENOTDIR: 'there is no socket there',
  EACCES: 'permission denied: the socket is mode 0600, for the user the agent runs as',
};

function isSocket(file: string): boolean {
  try {
    return lstatSync(file).isSocket();
  } catch {
    return false;
  }
}

function taskPath(id: string, rest = ''): string {
  return `/v1/tasks/${encodeURIComponent(id)}${rest}`;
}

function cancelled(signal: AbortSignal): CancelledError {
  return new CancelledError('the request to the agent was cancelled', { cause: signal.reason });
}

/** The taskhost error an error response stands for (TaskhostError when the body is not one). */
function agentError(reply: Reply): TaskhostError {
  let error: { code?: unknown; message?: unknown; details?: unknown } | undefined;
  try {
    error = (JSON.parse(reply.body) as { error?: typeof error }).error;
  } catch {
    // Not our shape: said below.
  }
  if (typeof error?.code !== 'string' || typeof error.message !== 'string') {
    const text = reply.body.slice(0, 200);
    return new TaskhostError(`the agent answered ${reply.status} without an error document${text ? `: ${text}` : ''}`, {
      details: { status: reply.status },
    });
  }
  const data: ErrorData = { code: error.code, message: error.message, recoverable: errorCodes.get(error.code)?.recoverable ?? false };
  if (error.details && typeof error.details === 'object') data.details = error.details as Record<string, unknown>;
  const retryAfter = Number(reply.headers['retry-after']);
  if (retryAfter > 0) data.retryAfterMs = retryAfter * 1000;
  return fromErrorData(data);
}

/** An event; undefined for a heartbeat (`{}`); an error line (the agent ended the stream) is thrown. */
function parseEventLine(line: string): StoreEvent | undefined {
  let parsed: Partial<StoreEvent> & { error?: { code?: unknown; message?: unknown; details?: unknown } };
  try {
    parsed = JSON.parse(line) as typeof parsed;
  } catch {
    throw new TaskhostError(`the agent sent an event line that is not JSON: ${line.slice(0, 200)}`);
  }
  if (parsed.error !== undefined) throw agentError({ status: 200, headers: {}, body: line });
  return typeof parsed.index === 'number' ? (parsed as StoreEvent) : undefined;
}
