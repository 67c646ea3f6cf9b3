import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { fastSupervision, fixturePluginDir } from '../helpers/fixture-plugins.js';
import { runCli } from '../helpers/run-cli.js';

const work = mkdtempSync(path.join(tmpdir(), 'taskhost-cli-'));
function configFile(doc: unknown): string {
  const file = path.join(mkdtempSync(path.join(work, 'c-')), 'agent.json');
  writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2));
  return file;
}
const base = {
  pluginDir: fixturePluginDir,
  dataDir: path.join(work, 'data'),
  supervision: { ...fastSupervision, livenessInterval: '200ms' },
  plugins: { spins: { enabled: false }, oom: { enabled: false } },
};

t.test('plugins --json is one document a script can parse', async (t) => {
  const { code, stdout } = await runCli(['--config', configFile(base), 'plugins', '--json']);
  t.equal(code, 0);
  const doc = JSON.parse(stdout) as { pluginDir: string; plugins: { name: string; state: string; reason?: string }[] };
  t.equal(doc.pluginDir, fixturePluginDir);
  const state = Object.fromEntries(doc.plugins.map((p) => [p.name, p.state]));
  t.match(state, { mock: 'running', good: 'running', spins: 'disabled', 'throws-at-import': 'failed', 'api-nine': 'skipped' });
});

t.test('plugins prints a table a person can read at a glance', async (t) => {
  const { code, stdout, stderr } = await runCli(['--config', configFile(base), 'plugins']);
  t.equal(code, 0);
  const lines = stdout.split('\n');
  t.match(lines[0], /^NAME\s+TYPE\s+VERSION\s+API\s+SOURCE\s+STATE\s+REASON$/);
  t.match(stdout, /\ngood\s+driver\s+1\.0\.0\s+1\.0\s+plugin-dir\s+running\n/);
  t.match(stdout, /\nmock\s+driver\s+0\.1\.0\s+1\.0\s+builtin\s+running\n/);
  t.match(stdout, /\nthrows-at-import\s+.*failed\s+importing .* failed: this plugin is broken at import\n/);
  t.match(stdout, /\napi-nine\s+unknown\s+-\s+-\s+plugin-dir\s+skipped\s+speaks plugin API 9\.0; this host speaks 1\.0\n/);
  t.match(stdout, /\d+ running, \d+ found \(plugin dir: /);
  t.equal(stderr, '', 'no log noise unless asked for');
  const verbose = await runCli(['--config', configFile(base), '--log-level', 'info', 'plugins']);
  t.match(verbose.stderr, /taskhost info \[good\]: plugin started/);
});

t.test('--plugin-dir overrides the config, and without a config the defaults apply', async (t) => {
  const { stdout } = await runCli(['--plugin-dir', path.join(work, 'empty'), 'plugins', '--json']);
  const doc = JSON.parse(stdout) as { plugins: { name: string }[]; pluginDir: string };
  t.same(
    doc.plugins.map((p) => p.name),
    ['example-file', 'nvidia', 'docker', 'mock', 'raw_exec'],
  );
  t.equal(doc.pluginDir, path.join(work, 'empty'));
});

t.test('validate: a typo in a nested key exits 1 and names the key’s path', async (t) => {
  const file = configFile({ ...base, plugins: { ...base.plugins, good: { config: { limits: { maxItem: 3 } } } } });
  const { code, stdout } = await runCli(['validate', '--config', file]);
  t.equal(code, 1);
  t.equal(stdout, `${file}: /plugins/good/config/limits/maxItem: unknown key (did you mean "maxItems"?)\n`);
});

t.test('validate: typos in the agent config itself, one line per error', async (t) => {
  const file = configFile({ pluginDir: fixturePluginDir, plugns: {}, supervision: { heapMb: 64 } });
  const { code, stdout } = await runCli(['validate', '--config', file]);
  t.equal(code, 1);
  t.same(stdout.trim().split('\n'), [
    `${file}: /plugns: unknown key (did you mean "plugins"?)`,
    `${file}: /supervision/heapMb: unknown key (did you mean "heapMB"?)`,
  ]);
});

t.test('validate: unknown plugin names, wrong types, plugins that take no config', async (t) => {
  const file = configFile({
    ...base,
    plugins: { god: {}, mock: { config: { healthy: 'yes' } }, rejects: { config: {} }, spins: { enabled: false } },
  });
  const { code, stdout, stderr } = await runCli(['validate', '--config', file, '--json']);
  t.equal(code, 1);
  const doc = JSON.parse(stdout) as { valid: boolean; issues: { path: string; message: string }[]; warnings: unknown[] };
  t.equal(doc.valid, false);
  t.same(
    doc.issues.map((i) => i.path),
    ['/plugins/god', '/plugins/mock/config/healthy', '/plugins/rejects/config'],
  );
  t.match(doc.issues[0]!.message, /did you mean "good"/);
  t.match(doc.issues[2]!.message, /takes no config/);
  t.match(doc.warnings, [{ path: '/plugins/throws-at-import', message: /cannot load plugin/ }]);
  t.equal(stderr, '');
});

t.test('validate: a valid config exits 0 and says what it checked', async (t) => {
  const file = configFile({ ...base, plugins: { good: { config: { greeting: 'hi' } }, 'throws-at-import': { enabled: false } } });
  const { code, stdout } = await runCli(['validate', '--config', file]);
  t.equal(code, 0);
  t.match(stdout, /valid \(plugin configs checked: docker, exits, good, mock, nvidia, oom, raw_exec, rejects, spins\)/);
});

t.test('bad input: unreadable or non-JSON config, missing --config, unknown command', async (t) => {
  const missing = await runCli(['validate', '--config', path.join(work, 'nope.json')]);
  t.equal(missing.code, 1);
  t.match(missing.stdout, /\(root\): cannot read/);
  const notJson = await runCli(['validate', '--config', configFile('{ "pluginDir": ')]);
  t.equal(notJson.code, 1);
  t.match(notJson.stdout, /\(root\): not valid JSON/);
  const usage = await runCli(['validate']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /validate needs --config <file>/);
  const unknown = await runCli(['bogus']);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /unknown command 'bogus'/);
  const badConfig = await runCli(['--config', configFile({ plugins: { x: { enabeld: true } } }), 'plugins']);
  t.equal(badConfig.code, 1);
  t.match(badConfig.stderr, /error: \/plugins\/x\/enabeld: unknown key \(did you mean "enabled"\?\)/);
});

t.test('--help lists the commands and examples', async (t) => {
  const { code, stdout } = await runCli(['--help']);
  t.equal(code, 0);
  t.match(stdout, /Usage: taskhost/);
  t.match(stdout, /plugins \[options\]/);
  t.match(stdout, /validate \[options\]/);
  t.match(stdout, /Examples:/);
});

const bin = new URL('../../bin/taskhost.js', import.meta.url);
t.test(
  'the installed bin runs the compiled CLI',
  { skip: !existsSync(new URL('../../dist/cli/main.js', import.meta.url)) && 'dist/ not built' },
  async (t) => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      bin.pathname,
      '--plugin-dir',
      path.join(work, 'empty'),
      'plugins',
      '--json',
    ]);
    t.same(
      (JSON.parse(stdout) as { plugins: { name: string; state: string }[] }).plugins.map((p) => [p.name, p.state]),
      [
        ['example-file', 'unconfigured'],
        ['nvidia', 'running'],
        ['docker', 'running'],
        ['mock', 'running'],
        ['raw_exec', 'running'],
      ],
    );
  },
);
