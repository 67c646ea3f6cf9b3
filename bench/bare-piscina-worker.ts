/**
 * The bare-piscina arm's worker: a piscina handler that calls the plugin directly, without
 * taskhost's envelope, AbortController per call, session port or supervision.
 */
import { workerData } from 'node:worker_threads';
import { importPlugin, invoke } from './import-plugin.js';
import type { FloorRequest } from './raw-worker-client.js';

const plugin = await importPlugin((workerData as { entry: string }).entry);

export function call({ method, args }: Omit<FloorRequest, 'id'>): Promise<unknown> {
  return invoke(plugin, method, args);
}
