// Compiles the TypeScript sources to dist/ and copies what tsc does not: the worker entry file
// the package.json manifests of the built-in plugins, and the bridges' .proto files.
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
// The scheduler bridges' .proto files, which grpc-js loads at run time.
const protos = existsSync(path.join(root, 'bridges'))
  ? readdirSync(path.join(root, 'bridges'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.proto'))
      .map((f) => `bridges/${f.split(path.sep).join('/')}`)
  : [];
const assets = ['plugin-loader/worker.mjs', 'plugin-loader/sdk-resolve-hooks.mjs', ...manifests, ...protos];
for (const file of assets) {
  mkdirSync(path.dirname(path.join(dist, file)), { recursive: true });
  cpSync(path.join(root, file), path.join(dist, file));
}
