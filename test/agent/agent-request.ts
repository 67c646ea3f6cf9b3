// Requests to an agent over its real unix socket, and waiting for a task record to get somewhere.
import http from 'node:http';
import type { Agent } from '../../agent/agent.js';
import type { TaskRecord } from '../../agent/store-records.js';

export interface Answer<T = unknown> {
  status: number;
  json: T;
}

/** One request; the body is sent as JSON, the answer parsed as JSON; rejects when the connection fails or drops. */
export function request<T = unknown>(
  socketPath: string,
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer<T>> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, method, path: url, headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: (text ? JSON.parse(text) : undefined) as T }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

export const taskPath = (id: string, rest = '') => `/v1/tasks/${encodeURIComponent(id)}${rest}`;

/** Polls `check` (every 50 ms, at most `ms`) until it returns something truthy. */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves with the task's record once it is running (rejects if it ends first). */
export function runningRecord(agent: Agent, id: string, namespace = 'default'): Promise<TaskRecord> {
  return eventually(() => {
    const record = agent.supervisor.get(namespace, id);
    if (['exited', 'failed', 'lost'].includes(record.state))
      throw new Error(`task ${id} ended ${record.state}: ${JSON.stringify(record.error)}`);
    return record.state === 'running' && record;
  }, `task ${id} running`);
}

/** Stops every task of the agent that still runs and waits for each to end: no process left behind. */
export async function stopAll(agent: Agent): Promise<void> {
  for (const record of agent.store.tasks.list()) {
    if (record.state !== 'running' && record.state !== 'pending') continue;
    await agent.supervisor.stop(record.namespace, record.id, { timeoutMs: 5_000 }).catch(() => undefined);
    await agent.supervisor.wait(record.namespace, record.id).catch(() => undefined);
  }
}

/** A GET whose answer is a stream: resolves at the head; `res` yields the body as it comes. */
export function openStream(
  socketPath: string,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; res: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method: 'GET', path: url, headers }, (res) =>
      resolve({ status: res.statusCode ?? 0, headers: res.headers, res }),
    );
    req.on('error', reject);
    req.end();
  });
}

/** Reads NDJSON lines from a stream until `enough` says so (or the stream ends); the lines, parsed. */
export async function readLines<T = Record<string, unknown>>(res: http.IncomingMessage, enough: (lines: T[]) => boolean): Promise<T[]> {
  const lines: T[] = [];
  let pending = '';
  for await (const chunk of res) {
    pending += (chunk as Buffer).toString('utf8');
    const complete = pending.split('\n');
    pending = complete.pop()!;
    for (const line of complete) if (line) lines.push(JSON.parse(line) as T);
    if (enough(lines)) break;
  }
  return lines;
}
