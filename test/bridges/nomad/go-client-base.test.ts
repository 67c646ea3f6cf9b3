// Nomad's side, for real: go-plugin's own client code (built from Debian's packages by
// scripts/go-plugin-client.sh) launches `taskhost nomad serve` as Nomad launches an external
// plugin, and runs the base checks: handshake, ping, PluginInfo, ConfigSchema, SetConfig, Kill.
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { nomadInstall } from '../../../bridges/nomad/nomad-install.js';
import { parseAgentConfig } from '../../../plugin-loader/agent-config.js';
import { bridgeAgentConfig, repoRoot, requireNomadGoClient, runNomadGoClient, taskhostArgv } from '../../helpers/nomad-plugin.js';
import type { HclSpec } from '../../../bridges/nomad/hclspec.js';
import { pino } from 'pino';
import { tsxLoader } from '../../helpers/tsx-child.js';

interface BaseResult {
  protocol: string;
  protocolVersion: number;
  ping: { error?: string };
  pluginInfo: { value?: { type: string; apiVersions: string[]; version: string; name: string }; error?: string };
  configSchema: { value?: HclSpec; error?: string };
  setConfigGood?: { error?: string; code?: string };
  setConfigBad?: { error?: string; code?: string };
  kill: { exited: boolean; graceful: boolean; ms: number };
}

const configFile = bridgeAgentConfig();

const plugins = [
  {
    name: 'raw_exec',
    type: 'DRIVER',
    version: '0.1.0',
    good: { fingerprint_interval: '10s', allow_cwd_outside_task_dir: null },
    bad: { fingerprint_interval: 'soon', allow_cwd_outside_task_dir: null },
    badPath: '/fingerprint_interval',
  },
  {
    name: 'mock',
    type: 'DRIVER',
    version: '0.1.0',
    good: { healthy: false, fingerprint_interval: null },
    bad: { healthy: 'no' },
    badPath: '/healthy',
  },
  { name: 'countdown', type: 'DRIVER', version: '1.0.0', good: { tick_ms: '50' }, bad: { tick_ms: 1 }, badPath: '/tick_ms' },
];

for (const p of plugins) {
  t.test(`${p.name}: go-plugin's client launches it, as Nomad does, and the base calls pass`, async (t) => {
    if (!requireNomadGoClient(t)) return;
    const command = taskhostArgv(['--config', configFile, 'nomad', 'serve', p.name]);
    const report = await runNomadGoClient<BaseResult>('base', ['-good', JSON.stringify(p.good), '-bad', JSON.stringify(p.bad)], command);
    t.equal(report.exitCode, 0, report.error ?? 'the client ran every check');
    const r = report.result;
    t.equal(r.protocol, 'grpc');
    t.equal(r.protocolVersion, 2, "Nomad's app protocol version was negotiated");
    t.same(r.ping, {}, 'the health ping answers');
    t.same(r.pluginInfo.value, { type: p.type, apiVersions: ['v0.1.0'], version: p.version, name: p.name });
    t.ok(r.configSchema.value?.object, 'ConfigSchema is an object spec');
    t.same(r.setConfigGood, {}, 'a good config is taken');
    t.equal(r.setConfigBad?.code, 'InvalidArgument', 'a bad one is InvalidArgument');
    t.match(r.setConfigBad?.error, `${p.badPath}:`, 'naming its HCL path');
    t.same(
      { exited: r.kill.exited, graceful: r.kill.graceful },
      { exited: true, graceful: true },
      'Kill: it exited on Shutdown, not by SIGKILL',
    );
    const own = report.log.filter((l) => l.module.startsWith(`taskhost.${p.name}`));
    t.ok(
      own.some((l) => l.level === 'info' && l.message === `serving taskhost plugin "${p.name}" to Nomad`),
      "the plugin's stderr lines reach the client's log at their own level",
    );
  });
}

t.test('a launcher from `taskhost nomad install` is what go-plugin starts', async (t) => {
  if (!requireNomadGoClient(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-nomad-plugins-'));
  const [launcher] = await nomadInstall({
    dir,
    plugins: ['countdown'],
    config: { ...parseAgentConfig(JSON.parse(readFileSync(configFile, 'utf8'))) },
    configFile,
    logger: pino({ level: 'silent' }),
    // From the sources: the CLI fixture under tsx instead of bin/taskhost.js and dist/.
    nodeArgs: ['--import', tsxLoader],
    cli: path.join(repoRoot, 'test/bridges/nomad/fixtures/taskhost-cli.ts'),
  });
  t.equal(launcher!.path, path.join(dir, 'countdown'));
  t.equal(statSync(launcher!.path).mode & 0o111, 0o111, 'executable');
  const report = await runNomadGoClient<BaseResult>('base', [], [launcher!.path]);
  t.equal(report.exitCode, 0, report.error ?? 'ok');
  t.equal(report.result.pluginInfo.value?.name, 'countdown');
  t.equal(report.result.kill.graceful, true);
});
