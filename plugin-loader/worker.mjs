// Entry file of every plugin worker (plain JS: on Node 20 a worker cannot load .ts by itself).
// From sources it registers tsx first; from dist/ it imports the compiled runtime directly.
// For a plugin that is not built in, it then registers the hooks that resolve `taskhost/sdk` to
// the host's own SDK (sdk-resolve-hooks.mjs).
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';
import { workerData } from 'node:worker_threads';

const { runtime, typescript, resolveHooks, sdk, hostManifest, hostVersion, entry, builtin } = workerData;
if (typescript) {
  const tsx = await import('tsx/esm/api');
  tsx.register();
}
const server = await import(runtime);
// Built-in plugins import the SDK by relative paths: they need no hooks, and pay nothing for them.
// The hooks go last: every import after register() is resolved on the hooks thread, which costs
// several times what resolving in the worker does, so the runtime, and the SDK for a plugin that
// declares it, are loaded first and only the plugin's own imports pay. Registered after tsx, the
// hooks run first and hand tsx the SDK's .ts entry when running from sources.
if (!builtin) {
  const hooks = await import(resolveHooks);
  if (entry.startsWith('file:') && hooks.declaresTaskhost(fileURLToPath(entry))) await import(sdk);
  register(resolveHooks, { parentURL: import.meta.url, data: { sdk, hostManifest, version: hostVersion } });
}

export const session = server.session;
export const load = server.load;
export const call = server.call;
export const stream = server.stream;
