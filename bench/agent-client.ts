/**
 * The agent benchmark's client: JSON over the agent's unix socket, as a scheduler would drive
 * it, with keep-alive connections (a scheduler keeps its connection to a node open, so a
 * connection set-up per request would charge the agent for something it does not do).
 */
import http from 'node:http';
import type { TaskRecord } from '../agent/store-records.js';

export interface AgentResponse<T = unknown> {
  status: number;
  json: T;
}

export class AgentClient {
  readonly socketPath: string;
  readonly #agent: http.Agent;
  readonly #namespace: string | undefined;

  /** `maxSockets` bounds the requests in flight at once (100 concurrent submits need 100). */
  constructor(socketPath: string, options: { maxSockets?: number; namespace?: string } = {}) {
    this.socketPath = socketPath;
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 256 });
    this.#namespace = options.namespace;
  }

  request<T = unknown>(method: string, url: string, body?: unknown, signal?: AbortSignal): Promise<AgentResponse<T>> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.#namespace !== undefined) headers['taskhost-namespace'] = this.#namespace;
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath: this.socketPath, agent: this.#agent, method, path: url, headers, signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, json: (text ? JSON.parse(text) : undefined) as T });
          } catch (err) {
            reject(new Error(`${method} ${url}: answer is not JSON (${res.statusCode}): ${text.slice(0, 200)}`, { cause: err }));
          }
        });
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  /** POST /v1/tasks; throws unless the agent answers 201. */
  async submit(spec: unknown): Promise<TaskRecord> {
    const res = await this.request<TaskRecord>('POST', '/v1/tasks', spec);
    if (res.status !== 201) throw new Error(`POST /v1/tasks answered ${res.status}: ${JSON.stringify(res.json)}`);
    return res.json;
  }

  /** GET /v1/tasks/{id}/wait: the record once the task exited, failed or was lost. */
  async wait(id: string, signal?: AbortSignal): Promise<TaskRecord> {
    const res = await this.request<TaskRecord>('GET', `${taskPath(id)}/wait`, undefined, signal);
    if (res.status !== 200) throw new Error(`GET ${taskPath(id)}/wait answered ${res.status}: ${JSON.stringify(res.json)}`);
    return res.json;
  }

  /** GET /v1/tasks with the given filters (OR-ed). */
  async list(...filters: string[]): Promise<TaskRecord[]> {
    const query = filters.map((f) => `filter=${encodeURIComponent(f)}`).join('&');
    const res = await this.request<{ tasks: TaskRecord[] }>('GET', `/v1/tasks${query ? `?${query}` : ''}`);
    if (res.status !== 200) throw new Error(`GET /v1/tasks answered ${res.status}: ${JSON.stringify(res.json)}`);
    return res.json.tasks;
  }

  /** POST /v1/tasks/{id}/stop; a task that is no longer running (409) is fine. */
  async stop(id: string, timeout = '1s'): Promise<void> {
    const res = await this.request('POST', `${taskPath(id)}/stop`, { timeout });
    if (res.status !== 202 && res.status !== 409) throw new Error(`stop of ${id} answered ${res.status}: ${JSON.stringify(res.json)}`);
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** A task's path: ids hold slashes, so they are URL-encoded. */
export function taskPath(id: string): string {
  return `/v1/tasks/${encodeURIComponent(id)}`;
}
