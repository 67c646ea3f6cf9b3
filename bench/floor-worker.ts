/**
 * The floor arm's worker: a plain worker_threads Worker (no piscina, no taskhost protocol) that
 * serves the plugin over its parent port. The least a thread hop can cost with this payload.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { importPlugin, invoke } from './import-plugin.js';
import type { FloorReply, FloorRequest } from './raw-worker-client.js';

const plugin = await importPlugin((workerData as { entry: string }).entry);
const port = parentPort!;

port.on('message', ({ id, method, args }: FloorRequest) => {
  invoke(plugin, method, args).then(
    (value) => port.postMessage({ id, ok: true, value } satisfies FloorReply),
    (err: unknown) => port.postMessage({ id, ok: false, message: String(err) } satisfies FloorReply),
  );
});
port.postMessage('ready');
