/**
 * The module a plugin worker runs: one PluginServer per thread, exposed as piscina's named
 * handlers. Anything the plugin prints goes to the host over the session port, so a stray
 * console.log can never corrupt the CLI's --json output.
 */
import { PluginServer } from './plugin-server.js';

const server = new PluginServer();

for (const name of ['stdout', 'stderr'] as const) {
  const stream = process[name];
  const original = stream.write.bind(stream);
  stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (server.output(name, text)) {
      const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }
    return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof stream.write;
}

export const session = server.session.bind(server);
export const load = server.load.bind(server);
export const call = server.call.bind(server);
export const stream = server.stream.bind(server);
