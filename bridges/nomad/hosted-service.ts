/**
 * A Nomad app service for the plugin a `taskhost nomad serve` process hosts: built over the
 * host's current loader, and built again over the new one when a SetConfig that changed the
 * plugin's config replaces it (calls then go to the new one; the old one is closed).
 */
import type * as grpc from '@grpc/grpc-js';
import type { PluginLoader } from '../../plugin-loader/loader.js';
import type { NomadPluginHost } from './nomad-plugin-host.js';
import type { NomadService } from './nomad-service.js';

type Handler = (call: unknown, callback?: unknown) => void;

export function hostedService(
  host: NomadPluginHost,
  service: grpc.ServiceDefinition,
  build: (loader: PluginLoader) => Promise<{ served: NomadService; close(): Promise<void> }>,
): NomadService {
  let current = build(host.loader);
  host.on('loader', (loader) => {
    const old = current;
    current = build(loader);
    void old.then((o) => o.close()).catch(() => undefined);
  });
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of Object.keys(service)) {
    const handler: Handler = (call, callback) => {
      current.then(
        ({ served }) => (served.implementation[method] as Handler)(call, callback),
        (err: unknown) => (call as { emit(e: string, err: unknown): void }).emit('error', err),
      );
    };
    implementation[method] = handler as grpc.UntypedHandleCall;
  }
  return {
    service,
    implementation,
    async close() {
      await (await current).close();
    },
  };
}
