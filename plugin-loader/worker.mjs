// Entry file of every plugin worker (plain JS: on Node 20 a worker cannot load .ts by itself).
// From sources it registers tsx first; from dist/ it imports the compiled runtime directly.
import { workerData } from 'node:worker_threads';

const { runtime, typescript } = workerData;
if (typescript) {
  const { register } = await import('tsx/esm/api');
  register();
}
const server = await import(runtime);

export const session = server.session;
export const load = server.load;
export const call = server.call;
export const stream = server.stream;
