// The SDK entry (`taskhost/sdk`, shared/index) is what every plugin worker loads: it must pull
// in nothing heavy. Each test imports the entry in a fresh node process that records every
// module it resolves (import) or loads (require), and names the packages among them.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';

const root = fileURLToPath(new URL('../../', import.meta.url));
const recorder = pathToFileURL(path.join(root, 'test/fixtures/record-resolutions/register.mjs')).href;
const heavy = ['dockerode', 'docker-modem', 'ssh2', '@grpc/grpc-js', 'pino', 'piscina', 'eventemitter3', 'commander', 'cli-progress'];

/** The packages (under node_modules) that importing `entry` resolved, and the repository files. */
function importsOf(entry: string | undefined, loaders: string[]): { packages: string[]; files: string[] } {
  const record = path.join(mkdtempSync(path.join(tmpdir(), 'sdk-imports-')), 'resolved.txt');
  // require.cache: what was loaded with require() (CommonJS packages, ajv's lazy load), which
  // the resolve hook of Node 20 does not see.
  const script = [
    entry === undefined ? '' : `await import(${JSON.stringify(pathToFileURL(entry).href)});`,
    `const { createRequire } = await import('node:module');`,
    `const { pathToFileURL } = await import('node:url');`,
    `for (const f of Object.keys(createRequire(import.meta.url).cache)) console.log(pathToFileURL(f).href);`,
  ].join('\n');
  // No coverage from this process: it compiles shared/ with tsx, not tap's compiler, and its
  // coverage of the same files (under other source maps) would spoil the suite's report.
  const env = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' };
  const run = spawnSync(
    process.execPath,
    [...loaders.flatMap((l) => ['--import', l]), '--import', recorder, '--input-type=module', '-e', script],
    {
      cwd: root,
      env: { ...env, RECORD_RESOLUTIONS: record, NODE_OPTIONS: '' },
      encoding: 'utf8',
    },
  );
  if (run.status !== 0) throw new Error(`importing ${entry} failed: ${run.stderr}`);
  const urls = [...readFileSync(record, 'utf8').split('\n'), ...run.stdout.split('\n')].filter((u) => u.startsWith('file:'));
  const packages = new Set<string>();
  const files = new Set<string>();
  for (const url of urls) {
    const file = fileURLToPath(url);
    const match = /[\\/]node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(file);
    if (match) packages.add(match[1]!.replace(/\\/g, '/'));
    else files.add(path.relative(root, file));
  }
  return { packages: [...packages].sort(), files: [...files].sort() };
}

/** What a process that imports nothing loads anyway here (the loaders, tap's process tracking). */
const baseline = (loaders: string[]) => new Set(importsOf(undefined, loaders).packages);

const checkLean = (t: Test, found: { packages: string[]; files: string[] }, loaders: string[]) => {
  const base = baseline(loaders);
  found = { packages: found.packages.filter((p) => !base.has(p)), files: found.files };
  t.same(
    found.packages.filter((p) => heavy.includes(p)),
    [],
    'no heavy package',
  );
  // What may be there: TypeBox (the schemas are built at import). ajv loads on first compile.
  t.same(
    found.packages.filter((p) => p !== '@sinclair/typebox'),
    [],
    `only TypeBox among packages, got ${found.packages.join(', ')}`,
  );
  t.same(
    found.files.filter((f) => !/^(dist[\\/])?shared[\\/]/.test(f)),
    [],
    'nothing of the host outside shared/',
  );
};

t.test('from sources, shared/index.ts pulls in no heavy package', async (t) => {
  checkLean(t, importsOf(path.join(root, 'shared/index.ts'), ['tsx']), ['tsx']);
});

const built = path.join(root, 'dist/shared/index.js');
t.test(
  'from dist, the SDK entry pulls in no heavy package',
  { skip: existsSync(built) ? false : 'no dist/: run npm run build' },
  async (t) => {
    checkLean(t, importsOf(built, []), []);
  },
);
