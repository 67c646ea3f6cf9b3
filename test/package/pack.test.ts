// What `npm pack` ships: no benchmarks (dist/bench), no source map without its sources, and a
// library entry that gives an embedding agent the managers and handle stores. Reads the built
// dist/ (npm test builds it first, in check:package); without one the tests are skipped.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = fileURLToPath(new URL('../../', import.meta.url));
const skip = existsSync(path.join(root, 'dist/index.js')) ? false : 'no dist/: run npm run build';

interface PackEntry {
  files: { path: string }[];
}

t.test('npm pack ships no dist/bench and no source map without its sources', { skip }, async (t) => {
  const npm = process.env.npm_execpath;
  const args = ['pack', '--dry-run', '--json', '--ignore-scripts'];
  const text = npm?.endsWith('.js')
    ? execFileSync(process.execPath, [npm, ...args], { cwd: root, encoding: 'utf8' })
    : execFileSync('npm', args, { cwd: root, encoding: 'utf8' });
  const files = (JSON.parse(text) as PackEntry[])[0]!.files.map((f) => f.path);
  t.ok(files.includes('dist/index.js') && files.includes('dist/shared/index.js'), 'the two entries ship');
  t.ok(
    files.includes('dist/plugin-loader/worker.mjs') && files.includes('dist/plugin-loader/sdk-resolve-hooks.mjs'),
    'the worker entry and its resolve hooks ship',
  );
  t.same(
    files.filter((f) => f.startsWith('dist/bench/')),
    [],
    'no benchmarks',
  );
  t.same(
    files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')),
    [],
    'no TypeScript sources',
  );
  const maps = files.filter((f) => f.endsWith('.map'));
  const bare = maps.filter((f) => {
    const map = JSON.parse(readFileSync(path.join(root, f), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
    return map.sources.some((_, i) => typeof map.sourcesContent?.[i] !== 'string');
  });
  t.same(bare, [], `each of the ${maps.length} source maps carries its sources`);
});

t.test("import('taskhost') gives an embedding agent the managers and handle stores", { skip }, async (t) => {
  // The package's self-reference: resolved through package.json "exports", to dist/.
  const name: string = 'taskhost';
  const lib = (await import(name)) as Record<string, unknown>;
  for (const key of [
    'PluginLoader',
    'DriverManager',
    'DeviceManager',
    'FileHandleStore',
    'MemoryHandleStore',
    'DriverClient',
    'DeviceClient',
  ]) {
    t.type(lib[key], 'function', key);
  }
  for (const key of [
    'prepareTask',
    'buildTaskConfig',
    'parseTaskSpec',
    'validateTaskFile',
    'runDriverConformance',
    'runDeviceConformance',
  ]) {
    t.type(lib[key], 'function', key);
  }
  const sdkName: string = 'taskhost/sdk';
  const sdk = (await import(sdkName)) as Record<string, unknown>;
  t.equal(sdk.TaskNotFoundError, lib.TaskNotFoundError, 'the library re-exports the SDK, the same classes');
  t.notOk('DriverManager' in sdk, 'the SDK has no host internals');
  t.match(import.meta.resolve?.(name) ?? '', /\/dist\/index\.js$/, 'from dist/');
});
