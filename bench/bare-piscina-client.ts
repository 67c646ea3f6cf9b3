/**
 * The bare-piscina arm: a piscina pool with the options PluginWorker uses (one long-lived thread,
 * atomics disabled, many tasks in flight) running a handler that calls the plugin directly.
 * Its distance to the floor is piscina's dispatch; ours' distance to it is taskhost's protocol.
 */
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import { defaultSupervision } from '../plugin-loader/agent-config.js';
import { siblingFile } from './paths.js';

export class BarePiscinaClient {
  readonly #pool: Piscina;

  private constructor(pool: Piscina) {
    this.#pool = pool;
  }

  /** Starts the pool and resolves once its thread has imported the plugin. */
  static async launch(entry: string): Promise<BarePiscinaClient> {
    const pool = new Piscina({
      filename: pathToFileURL(siblingFile('bare-piscina-worker')).href,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Infinity,
      atomics: 'disabled',
      concurrentTasksPerWorker: defaultSupervision.concurrency,
      resourceLimits: { maxOldGenerationSizeMb: defaultSupervision.heapMB },
      workerData: { entry },
    });
    const client = new BarePiscinaClient(pool);
    await client.call('info', []); // the first task waits for the thread and the plugin import
    return client;
  }

  call(method: string, args: unknown[]): Promise<unknown> {
    return this.#pool.run({ method, args }, { name: 'call' }) as Promise<unknown>;
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}
