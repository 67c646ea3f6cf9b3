// DriverManager.buildTask and prepare on the built-in raw_exec through a real worker: the driver's
// own policy (validateTask) before anything is made on disk, node attributes filled in from the
// host and the drivers' fingerprints, and one way of naming an unknown driver.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { DriverManager } from '../../drivers/driver-manager.js';
import { parseTaskSpec } from '../../drivers/prepare-task.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import { PluginLoader } from '../../plugin-loader/loader.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';

const quiet = pino({ level: 'silent' });
const builtins = builtinPluginDirs.filter((d) => /raw_exec|mock$/.test(d));

function setup(t: { teardown(fn: () => unknown): void }, only?: { names: string[] }) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'taskhost-build-'));
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: { ...fastSupervision, startTimeout: '60s' },
    plugins: { mock: { enabled: true } },
  });
  const loader = new PluginLoader({ config, logger: quiet, builtinDirs: builtins, ...(only ? { only } : {}) });
  const manager = new DriverManager({ loader, logger: quiet });
  t.teardown(async () => (await manager.close(), await loader.close()));
  return { dataDir, manager };
}

t.test('the driver’s policy is applied before the task’s directories are made', async (t) => {
  const { dataDir, manager } = setup(t);
  const spec = parseTaskSpec({ name: 'as-nobody', driver: 'raw_exec', config: { command: 'true', cwd: '/etc' }, user: 'nobody' });
  await t.rejects(manager.prepare(spec), {
    code: 'INVALID_CONFIG',
    errors: [
      { path: '/user', message: /cannot run them as "nobody"/ },
      { path: '/config/cwd', message: /"\/etc" is outside the task directory/ },
    ],
  });
  await t.rejects(manager.buildTask(spec), { code: 'INVALID_CONFIG' });
  t.notOk(existsSync(path.join(dataDir, 'allocs')), 'no task directory made');
});

t.test('buildTask makes nothing on disk; prepare makes the directories', async (t) => {
  const { manager } = setup(t);
  const spec = parseTaskSpec({ name: 'ok', driver: 'raw_exec', config: { command: 'true' } });
  const built = await manager.buildTask(spec);
  t.notOk(existsSync(built.taskDir));
  const prepared = await manager.prepare(spec);
  t.ok(existsSync(prepared.taskDir) && existsSync(prepared.stdoutPath));
});

t.test('${node.attr.*} is filled from the host and the drivers’ fingerprints, with OCI architecture names', async (t) => {
  const { manager } = setup(t);
  await manager.waitForFirstFingerprint(30_000);
  const attributes = manager.nodeAttributes();
  t.match(attributes, { 'kernel.name': 'linux', 'driver.raw_exec': 'true', 'driver.mock': 'true' });
  t.match(attributes['cpu.arch'], /^(amd64|arm64|arm|386|ppc64le|s390x|riscv64)$/);
  t.match(attributes['cpu.numcores'], /^[1-9]\d*$/);
  const spec = parseTaskSpec({
    name: 'attrs',
    driver: 'raw_exec',
    config: { command: 'echo', args: ['${node.attr.kernel.name}', '${node.attr.unknown}'] },
    env: { ARCH: '${node.attr.cpu.arch}', VERSION: '${node.attr.driver.raw_exec.version}', ZONE: '${node.attr.zone}' },
  });
  const task = await manager.buildTask(spec);
  t.same(task.config.args, ['linux', '${node.attr.unknown}'], 'an unknown attribute stays as written');
  t.equal(task.env.ARCH, attributes['cpu.arch']);
  t.equal(task.env.VERSION, '0.1.0');
  const given = await manager.buildTask(spec, { node: { attributes: { zone: 'eu-1', 'cpu.arch': 'riscv64' } } });
  t.match(given.env, { ZONE: 'eu-1', ARCH: 'riscv64' }, 'attributes the caller gives come on top');
});

t.test('an unknown driver is named with every driver the agent has, also those not hosted', async (t) => {
  const { manager } = setup(t, { names: ['mock'] });
  await t.rejects(manager.buildTask(parseTaskSpec({ name: 'x', driver: 'raw_exce' })), {
    code: 'INVALID_CONFIG',
    errors: [{ path: '/driver', message: 'no driver named "raw_exce" (did you mean "raw_exec"?); drivers: mock, raw_exec' }],
  });
  await t.rejects(manager.buildTask(parseTaskSpec({ name: 'x', driver: 'raw_exec', config: { command: 'true' } })), {
    errors: [{ path: '/driver', message: `driver "raw_exec" is not hosted here (the loader's "only" option left it out); hosted: mock` }],
  });
});
