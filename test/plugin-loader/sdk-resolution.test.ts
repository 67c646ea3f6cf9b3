// A third-party plugin carries no copy of taskhost: a folder with only package.json and index.js
// that imports 'taskhost/sdk', and declares taskhost as a peer dependency, gets the host's own
// SDK (plugin-loader/sdk-resolve-hooks.mjs) and passes conformance, from sources and from dist/.
// Without the declaration the import fails saying how to declare it; a node_modules/taskhost of
// the plugin's own is not used; plain 'taskhost' (the host library) is not for plugins.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import t from 'tap';
import type { ConformanceReport } from '../../conformance/check-runner.js';
import { runDeviceConformance } from '../../conformance/device-conformance.js';

const quiet = pino({ level: 'silent' });
const root = fileURLToPath(new URL('../../', import.meta.url));
// Outside the repository, so no package.json or node_modules of taskhost is above the plugins.
const work = mkdtempSync(path.join(tmpdir(), 'taskhost-sdk-resolution-'));

/** A small, correct device plugin that takes its error class and pause() from the SDK. */
const deviceSource = (specifier: string) => `
import { UnknownDeviceError, definePlugin, pause } from '${specifier}';

const ids = ['lean-0', 'lean-1'];
const group = { vendor: 'example', type: 'lean', name: 'sdk', devices: ids.map((id) => ({ id, healthy: true })), attributes: {} };

export default () =>
  definePlugin({
    info: () => ({ type: 'device', name: 'lean', pluginVersion: '1.0.0', apiVersions: ['1.0'] }),
    configSchema: () => null,
    setConfig() {},
    async *fingerprint(signal) {
      yield { groups: [group] };
      await pause(Infinity, signal);
    },
    reserve(deviceIds) {
      const unknown = deviceIds.filter((id) => !ids.includes(id));
      if (unknown.length) throw new UnknownDeviceError('no device ' + unknown.join(', '));
      return { envs: { LEAN_DEVICES: deviceIds.join(',') }, mounts: [], devices: [] };
    },
    async *stats(intervalMs, signal) {
      while (!signal.aborted) {
        const instances = Object.fromEntries(ids.map((id) => [id, { summary: { value: 1 }, stats: {} }]));
        yield { timestamp: Date.now(), groups: [{ vendor: group.vendor, type: group.type, name: group.name, instances }] };
        await pause(intervalMs, signal);
      }
    },
  });
`;

/** Writes a plugin folder: package.json (with `extra` fields) and index.js, nothing else. */
function plugin(name: string, extra: Record<string, unknown>, source = deviceSource('taskhost/sdk')): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  const manifest = {
    name,
    version: '1.0.0',
    type: 'module',
    main: 'index.js',
    ...extra,
    taskhost: { type: 'device', name: 'lean', apiVersions: ['1.0'] },
  };
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(path.join(dir, 'index.js'), source);
  return dir;
}

const peer = { peerDependencies: { taskhost: '^0.1.0' } };
const statuses = (report: ConformanceReport) => Object.fromEntries(report.checks.map((c) => [c.name, c.status]));
const loadMessage = (report: ConformanceReport) => report.checks.find((c) => c.name.startsWith('loads through'))?.message ?? '';

t.test('a plugin that declares the peer dependency gets the SDK and passes conformance, from sources', async (t) => {
  const report = await runDeviceConformance({ target: plugin('lean-peer', peer), logger: quiet });
  t.equal(report.failed, 0, JSON.stringify(report.checks.filter((c) => c.status === 'fail')));
  t.equal(statuses(report)['loads through the plugin loader as a device plugin'], 'pass');
  t.ok(report.passed >= 10, `${report.passed} checks passed`);
});

t.test("the host's copy wins over a node_modules/taskhost of the plugin's own", async (t) => {
  const dir = plugin('lean-own-copy', { ...peer, dependencies: { taskhost: '^0.1.0' } });
  const own = path.join(dir, 'node_modules/taskhost');
  mkdirSync(own, { recursive: true });
  writeFileSync(
    path.join(own, 'package.json'),
    JSON.stringify({ name: 'taskhost', version: '0.1.0', type: 'module', exports: { './sdk': './sdk.js' } }),
  );
  writeFileSync(path.join(own, 'sdk.js'), "throw new Error('the plugin\\'s own copy of taskhost was loaded');\n");
  const report = await runDeviceConformance({ target: dir, logger: quiet });
  t.equal(report.failed, 0, JSON.stringify(report.checks.filter((c) => c.status === 'fail')));
});

t.test('without the peer dependency the import fails, saying how to declare it', async (t) => {
  const dir = plugin('lean-undeclared', { devDependencies: { taskhost: '^0.1.0' } });
  const report = await runDeviceConformance({ target: dir, logger: quiet });
  t.equal(statuses(report)['loads through the plugin loader as a device plugin'], 'fail');
  const message = loadMessage(report);
  t.match(
    message,
    `${path.join(dir, 'index.js')} imports 'taskhost/sdk', but ${path.join(dir, 'package.json')} does not declare taskhost as a peer dependency`,
  );
  t.match(message, 'add "peerDependencies": { "taskhost": "^0.1.0" } to it');
});

t.test("plain 'taskhost' is the host library: a plugin is pointed at 'taskhost/sdk'", async (t) => {
  const report = await runDeviceConformance({ target: plugin('lean-library', peer, deviceSource('taskhost')), logger: quiet });
  t.match(
    loadMessage(report),
    "imports 'taskhost', the host library, which plugins do not get: import the plugin SDK from 'taskhost/sdk' instead",
  );
});

const bin = path.join(root, 'bin/taskhost.js');
const built = existsSync(path.join(root, 'dist/plugin-loader/sdk-resolve-hooks.mjs'));
t.test('from dist, `taskhost conformance` passes the same plugin', { skip: built ? false : 'no dist/: run npm run build' }, async (t) => {
  const run = spawnSync(process.execPath, [bin, 'conformance', plugin('lean-peer-dist', peer), '--json'], {
    cwd: work,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  t.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout) as ConformanceReport;
  t.equal(report.failed, 0, JSON.stringify(report.checks.filter((c) => c.status === 'fail')));
  t.equal(statuses(report)['loads through the plugin loader as a device plugin'], 'pass');
});
