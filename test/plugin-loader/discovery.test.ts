import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { builtinPluginDirs, discover, negotiateApiVersion } from '../../plugin-loader/discovery.js';
import { fixturePluginDir } from '../helpers/fixture-plugins.js';

/** Writes plugin folders: name -> { pkg fields, files }. */
function pluginTree(plugins: Record<string, { pkg: object; files?: Record<string, string> }>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'taskhost-plugins-'));
  for (const [dir, { pkg, files }] of Object.entries(plugins)) {
    mkdirSync(path.join(root, dir), { recursive: true });
    writeFileSync(path.join(root, dir, 'package.json'), typeof pkg === 'string' ? pkg : JSON.stringify(pkg));
    for (const [file, text] of Object.entries(files ?? { 'index.js': 'export default {}' })) {
      mkdirSync(path.dirname(path.join(root, dir, file)), { recursive: true });
      writeFileSync(path.join(root, dir, file), text);
    }
  }
  return root;
}

const driver = (name: string, version = '1.0.0', apiVersions = ['1.0']) => ({
  name: `pkg-${name}`,
  version,
  type: 'module',
  taskhost: { type: 'driver', name, apiVersions },
});

t.test('API negotiation picks the highest version both sides speak', async (t) => {
  const table: [string[], string[], string | undefined][] = [
    [['1.0'], ['1.0'], '1.0'],
    [['1.0'], ['9.0'], undefined],
    [['1.0', '1.1', '2.0'], ['1.1', '1.0'], '1.1'],
    [['1.10', '1.9'], ['1.9', '1.10'], '1.10'],
    [['1.0', '2.0'], ['2.0', '3.0'], '2.0'],
    [['1.0'], [], undefined],
  ];
  for (const [host, plugin, want] of table) t.equal(negotiateApiVersion(host, plugin), want, `${host} x ${plugin}`);
});

t.test('the fixture directory: good plugins found, bad ones skipped with reasons, non-plugins ignored', async (t) => {
  const d = await discover({ pluginDir: fixturePluginDir, builtinDirs: [] });
  t.same(d.plugins.map((p) => p.name).sort(), ['exits', 'good', 'oom', 'rejects', 'spins', 'throws-at-import']);
  const good = d.plugins.find((p) => p.name === 'good')!;
  t.match(good, { type: 'driver', version: '1.0.0', apiVersion: '1.0', source: 'plugin-dir' });
  t.match(good.entry, /^file:\/\/.*\/good\/index\.js$/);
  const byName = Object.fromEntries(d.skipped.map((s) => [s.name, s]));
  t.match(byName['api-nine'], { code: 'API_VERSION_MISMATCH', reason: 'speaks plugin API 9.0; this host speaks 1.0' });
  t.match(byName['Bad Name'], { code: 'INVALID_MANIFEST' });
  t.match(byName['Bad Name']!.reason, /\/taskhost\/type: must be one of "driver", "device"/);
  t.match(byName['Bad Name']!.reason, /\/taskhost\/name: must match pattern/);
  t.match(byName['Bad Name']!.reason, /\/taskhost\/apiVersions: must NOT have fewer than 1 items/);
  t.notOk(
    d.skipped.some((s) => s.dir.endsWith('not-a-plugin')),
    'a package without a manifest is not a plugin',
  );
  t.notOk(d.pluginDirMissing);
});

t.test('the built-in plugins are found from the sources', async (t) => {
  const d = await discover({ pluginDir: '/nonexistent/taskhost-plugins' });
  t.equal(d.pluginDirMissing, true);
  t.ok(builtinPluginDirs.length >= 1);
  const mock = d.plugins.find((p) => p.name === 'mock');
  t.match(mock, { source: 'builtin', type: 'driver' });
  t.match(mock?.entry, /drivers\/mock\/index\.(ts|js)$/);
});

t.test('broken manifests are reported, never thrown', async (t) => {
  const root = pluginTree({
    'bad-json': { pkg: '{ "taskhost": ' as unknown as object },
    'bad-version': { pkg: { ...driver('bad-version'), version: 'one' } },
    'no-entry': { pkg: { ...driver('no-entry'), main: 'dist/missing.js' } },
    'custom-main': { pkg: { ...driver('custom-main'), main: 'lib/plugin.js' }, files: { 'lib/plugin.js': 'export default {}' } },
    '.hidden': { pkg: driver('hidden') },
  });
  writeFileSync(path.join(root, 'a-file.txt'), 'not a folder');
  const d = await discover({ pluginDir: root, builtinDirs: [] });
  t.same(
    d.plugins.map((p) => p.name),
    ['custom-main'],
  );
  t.match(d.plugins[0]!.entry, /custom-main\/lib\/plugin\.js$/);
  const reasons = Object.fromEntries(d.skipped.map((s) => [s.name, s.reason]));
  t.match(reasons['bad-json'], /package.json is not valid JSON/);
  t.match(reasons['bad-version'], /version "one" is not semver/);
  t.match(reasons['no-entry'], /entry module "dist\/missing.js" \(package.json "main"\) does not exist/);
});

t.test('scoped folders are searched one level down', async (t) => {
  const root = pluginTree({ '@acme/driver-x': { pkg: driver('acme-x') } });
  const d = await discover({ pluginDir: root, builtinDirs: [] });
  t.same(
    d.plugins.map((p) => p.name),
    ['acme-x'],
  );
});

t.test('one plugin per name: a plugin-dir plugin replaces a built-in only when asked; higher version wins', async (t) => {
  const builtins = pluginTree({ same: { pkg: driver('same', '1.0.0') }, asked: { pkg: driver('asked', '2.0.0') } });
  const dir = pluginTree({
    same: { pkg: driver('same', '9.0.0') },
    asked: { pkg: driver('asked', '1.5.0') },
    'twin-a': { pkg: driver('twin', '1.2.0') },
    'twin-b': { pkg: driver('twin', '1.10.0') },
  });
  const d = await discover({
    pluginDir: dir,
    builtinDirs: [path.join(builtins, 'same'), path.join(builtins, 'asked')],
    replaceBuiltins: ['asked'],
  });
  const chosen = Object.fromEntries(d.plugins.map((p) => [p.name, `${p.source}@${p.version}`]));
  t.same(chosen, { same: 'builtin@1.0.0', asked: 'plugin-dir@1.5.0', twin: 'plugin-dir@1.10.0' }, 'asked, even an older one replaces it');
  const shadowed = Object.fromEntries(d.skipped.filter((s) => s.code === 'SHADOWED').map((s) => [`${s.name}:${s.source}`, s.reason]));
  t.same(Object.keys(shadowed).sort(), ['asked:builtin', 'same:plugin-dir', 'twin:plugin-dir']);
  t.equal(
    shadowed['same:plugin-dir'],
    'a built-in plugin is named "same" too, and a plugin-dir plugin replaces a built-in only when asked: set plugins.same.replaceBuiltin to true in the agent config',
  );
  t.equal(
    shadowed['asked:builtin'],
    `replaced by ${path.join(dir, 'asked')} (version 1.5.0, plugin-dir), as plugins.asked.replaceBuiltin asks`,
  );
  t.match(shadowed['twin:plugin-dir'], /another plugin named "twin" is used instead: .*twin-b \(version 1.10.0, plugin-dir\)/);
});

t.test('a symlinked plugin folder is followed; a broken or looping link is reported, never ignored', async (t) => {
  const elsewhere = pluginTree({ linked: { pkg: driver('linked') } });
  const dir = pluginTree({});
  symlinkSync(path.join(elsewhere, 'linked'), path.join(dir, 'linked'));
  symlinkSync(path.join(elsewhere, 'gone'), path.join(dir, 'dangling'));
  symlinkSync(path.join(dir, 'loop'), path.join(dir, 'loop'));
  writeFileSync(path.join(elsewhere, 'notes.txt'), 'not a plugin');
  symlinkSync(path.join(elsewhere, 'notes.txt'), path.join(dir, 'notes'));
  const d = await discover({ pluginDir: dir, builtinDirs: [] });
  t.match(d.plugins, [{ name: 'linked', dir: path.join(dir, 'linked'), source: 'plugin-dir' }]);
  t.same(
    d.skipped.map((s) => [s.name, s.code, s.reason]),
    [
      [
        'dangling',
        'BROKEN_LINK',
        `symlink ${path.join(dir, 'dangling')} points to ${path.join(elsewhere, 'gone')}, which does not exist: fix or remove the link`,
      ],
      [
        'loop',
        'BROKEN_LINK',
        `symlink ${path.join(dir, 'loop')} points to ${path.join(dir, 'loop')}, which is a loop of links: fix or remove the link`,
      ],
    ],
    'a link to a file is no more a plugin than a file is',
  );
});
