// `taskhost nomad install`: a launcher per plugin in Nomad's plugin_dir, by absolute paths.
import { mkdtempSync, readFileSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runCli } from '../../helpers/run-cli.js';
import { bridgeAgentConfig, repoRoot } from '../../helpers/nomad-plugin.js';

const configFile = bridgeAgentConfig();

t.test('writes an executable launcher per plugin and prints the Nomad agent config', async (t) => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'taskhost-install-')), 'plugins');
  const r = await runCli(['--config', configFile, 'nomad', 'install', dir, 'raw_exec', 'countdown']);
  t.equal(r.code, 0, r.stderr);
  for (const name of ['raw_exec', 'countdown']) {
    const file = path.join(dir, name);
    t.equal(statSync(file).mode & 0o777, 0o755, `${name}: executable`);
    const script = readFileSync(file, 'utf8');
    t.match(script, /^#!\/bin\/sh\n/);
    const exec = script.split('\n').find((l) => l.startsWith('exec '))!;
    t.equal(
      exec,
      `exec ${process.execPath} ${path.join(repoRoot, 'bin/taskhost.js')} --config ${configFile} nomad serve ${name} "$@"`,
      'node and the CLI by absolute path, the agent config passed on',
    );
  }
  t.match(r.stdout, `plugin_dir = "${dir}"`);
  t.match(r.stdout, 'plugin "countdown" {');
});

t.test('an unknown plugin: nothing written, the closest name suggested', async (t) => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'taskhost-install-')), 'plugins');
  const r = await runCli(['--config', configFile, 'nomad', 'install', dir, 'raw_exec', 'countdwn']);
  t.equal(r.code, 1);
  t.match(r.stderr, 'no plugin named "countdwn" (did you mean "countdown"?)');
  t.notOk(existsSync(path.join(dir, 'raw_exec')), 'not even the plugins that were found');
});
