/**
 * Placeholder for branch nomad-core's nomad-protos.ts (the agreed API; theirs replaces this
 * file): every .proto in ./proto loaded once, as grpc-js objects.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const protoDir = fileURLToPath(new URL('./proto', import.meta.url));

let loaded: grpc.GrpcObject | undefined;

/** The Nomad plugin protocol's packages (hashicorp.nomad.plugins....), loaded once. */
export function nomadProto(): grpc.GrpcObject {
  if (loaded) return loaded;
  const files = readdirSync(protoDir)
    .filter((f) => f.endsWith('.proto'))
    .sort()
    .map((f) => path.join(protoDir, f));
  const definition = protoLoader.loadSync(files, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [protoDir],
  });
  loaded = grpc.loadPackageDefinition(definition);
  return loaded;
}
