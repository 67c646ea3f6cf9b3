/**
 * The floor arm: the plugin in a plain worker_threads Worker, one postMessage each way per call.
 * Comparing ours with it separates the cost of the thread hop from piscina and the host protocol.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { siblingFile } from './paths.js';

export interface FloorRequest {
  id: number;
  method: string;
  args: unknown[];
}

export type FloorReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string };

export class RawWorkerClient {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #nextId = 1;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.on('message', (reply: FloorReply) => {
      const pending = this.#pending.get(reply.id);
      if (!pending) return;
      this.#pending.delete(reply.id);
      if (reply.ok) pending.resolve(reply.value);
      else pending.reject(new Error(reply.message));
    });
    worker.on('error', (err) => {
      for (const { reject } of this.#pending.values()) reject(err);
      this.#pending.clear();
    });
  }

  /** Starts the worker and resolves once it has imported the plugin. */
  static async launch(entry: string): Promise<RawWorkerClient> {
    const worker = new Worker(siblingFile('floor-worker'), { workerData: { entry } });
    await once(worker, 'message'); // 'ready'; rejects if the worker emits 'error' first
    return new RawWorkerClient(worker);
  }

  call(method: string, args: unknown[]): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, method, args } satisfies FloorRequest);
    });
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }
}
