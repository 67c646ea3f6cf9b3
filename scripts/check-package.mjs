// The package as npm would publish it, checked: builds dist/ once, packs it once (without
// running `prepare` again), then lints the tarball with publint (package.json fields, exports,
// files) and @arethetypeswrong/cli (the types each export resolves to, for an ESM-only package:
// node16 from ESM and bundlers; CommonJS consumers would need import(), which is by design).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const run = (file, args) => execFileSync(file, args, { cwd: root, stdio: 'inherit' });
const bin = (name) => path.join(root, 'node_modules/.bin', name);

run(process.execPath, [path.join(root, 'scripts/build.mjs')]);
const out = mkdtempSync(path.join(tmpdir(), 'taskhost-pack-'));
try {
  const npm = process.env.npm_execpath;
  const packArgs = ['pack', '--ignore-scripts', '--json', '--pack-destination', out];
  const json = npm
    ? execFileSync(process.execPath, [npm, ...packArgs], { cwd: root, encoding: 'utf8' })
    : execFileSync('npm', packArgs, { cwd: root, encoding: 'utf8' });
  const tarball = path.join(out, JSON.parse(json)[0].filename);
  run(bin('publint'), ['run', tarball, '--strict']);
  run(bin('attw'), [tarball, '--profile', 'esm-only']);
} finally {
  rmSync(out, { recursive: true, force: true });
}
