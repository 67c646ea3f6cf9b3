// Compiles the TypeScript sources to dist/ and copies what tsc does not: the worker entry file,
// the package.json manifests of the built-in plugins, and the .proto files of the Nomad bridge.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const dist = path.join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
  cwd: root,
  stdio: 'inherit',
});
// Each built-in plugin's manifest, and its conformance.json scenarios when it has them.
const manifests = ['drivers', 'devices'].flatMap((top) =>
  readdirSync(path.join(root, top), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(path.join(root, top, d.name, 'package.json')))
    .flatMap((d) => ['package.json', 'conformance.json'].map((f) => `${top}/${d.name}/${f}`))
    .filter((file) => existsSync(path.join(root, file))),
);
// bridges/nomad/nomad-protos.ts reads them from next to itself, in dist/ as in the sources.
const protos = readdirSync(path.join(root, 'bridges/nomad/proto'))
  .filter((f) => f.endsWith('.proto'))
  .map((f) => `bridges/nomad/proto/${f}`);
const assets = ['plugin-loader/worker.mjs', 'plugin-loader/sdk-resolve-hooks.mjs', ...manifests, ...protos];
for (const file of assets) {
  mkdirSync(path.dirname(path.join(dist, file)), { recursive: true });
  cpSync(path.join(root, file), path.join(dist, file));
}
