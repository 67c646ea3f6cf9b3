// Entry file of every plugin worker (plain JS: on Node 20 a worker cannot load .ts by itself).
// From sources it registers tsx first; from dist/ it imports the compiled runtime directly.
// Either way it registers the hooks that resolve `taskhost/sdk` to the host's own SDK.
import { readFileSync } from 'node:fs';
import { register } from 'node:module';
import { workerData } from 'node:worker_threads';

const { runtime, typescript, resolveHooks, sdk, hostManifest } = workerData;
if (typescript) {
  const tsx = await import('tsx/esm/api');
  tsx.register();
}
let version;
try {
  version = JSON.parse(readFileSync(hostManifest, 'utf8')).version;
} catch {
  version = undefined;
}
// Registered after tsx, so these run first and hand tsx the SDK's .ts entry to load.
register(resolveHooks, { parentURL: import.meta.url, data: { sdk, hostManifest, version } });
const server = await import(runtime);

export const session = server.session;
export const load = server.load;
export const call = server.call;
export const stream = server.stream;
