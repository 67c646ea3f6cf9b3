/**
 * The gRPC definitions of everything taskhost serves to Nomad: every `.proto` file in
 * `bridges/nomad/proto`, loaded once with the options all the Nomad services are written against.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * The folder of taskhost's Nomad `.proto` files. Resolved from this module, so it works from the
 * sources and from `dist/` (the build copies the folder next to the compiled module).
 */
export const protoDir: string = fileURLToPath(new URL('./proto/', import.meta.url));

/**
 * How messages look in TypeScript: field names as on the wire (`plugin_api_versions`), 64-bit
 * numbers as decimal strings, enums by name, unset fields filled with their defaults, and a
 * oneof's chosen field named in a virtual property (`block: 'object'`).
 */
export const protoLoaderOptions: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [protoDir],
};

let loaded: grpc.GrpcObject | undefined;

/** Every Nomad service and message, by package: `nomadProto().hashicorp.nomad...`. Cached. */
export function nomadProto(): grpc.GrpcObject {
  if (loaded) return loaded;
  const files = readdirSync(protoDir)
    .filter((f) => f.endsWith('.proto'))
    .sort();
  loaded = grpc.loadPackageDefinition(protoLoader.loadSync(files, protoLoaderOptions));
  return loaded;
}

/** The object at a dotted path of `nomadProto()` (a package, a service constructor, a message type). */
export function protoAt<T = grpc.GrpcObject>(dotted: string): T {
  let node: unknown = nomadProto();
  for (const part of dotted.split('.')) {
    node = (node as Record<string, unknown> | undefined)?.[part];
    if (node === undefined) throw new Error(`no "${dotted}" in taskhost's Nomad protos (${protoDir})`);
  }
  return node as T;
}

/** The service definition of a service constructor at a dotted path (`plugin.GRPCController`). */
export function serviceAt(dotted: string): grpc.ServiceDefinition {
  return protoAt<grpc.ServiceClientConstructor>(dotted).service;
}
