// `taskhost devices` and `taskhost devices stats`, in-process, on the built-in example-file
// plugin over a temporary directory.
import path from 'node:path';
import t from 'tap';
import type { DevicePluginHealth, DeviceStatsSnapshot, NodeDeviceGroup } from '../../devices/device-manager.js';
import { runCli } from '../helpers/run-cli.js';
import { exampleFileAgent } from '../helpers/example-file-agent.js';

const { work, devices, agent, withExample } = exampleFileAgent();

t.test('devices: a row per device with its health; --json: the groups and the plugins', async (t) => {
  const human = await runCli(['--config', withExample(), 'devices']);
  t.equal(human.code, 0);
  const lines = human.stdout.split('\n');
  t.match(lines[0], /^GROUP\s+DEVICE\s+HEALTH\s+DESCRIPTION\s+ATTRIBUTES$/);
  t.match(lines[1], new RegExp(`^example/file/mock\\s+a\\s+healthy\\s+count=2 dir=${devices}$`));
  t.match(lines[2], new RegExp(`^example/file/mock\\s+b\\s+unhealthy\\s+world-writable: chmod o-w ${path.join(devices, 'b')}$`));
  t.match(human.stdout, /\n\n2 devices in 1 group, 1 healthy; device plugins: example-file healthy\n$/);
  t.equal(human.stderr, '');

  const json = await runCli(['--config', withExample(), 'devices', '--json']);
  const doc = JSON.parse(json.stdout) as { groups: NodeDeviceGroup[]; plugins: DevicePluginHealth[] };
  t.match(doc.groups, [
    {
      id: 'example/file/mock',
      plugin: 'example-file',
      devices: [
        { id: 'a', health: 'healthy' },
        { id: 'b', health: 'unhealthy' },
      ],
    },
  ]);
  t.match(doc.plugins, [{ name: 'example-file', health: 'healthy', groups: ['example/file/mock'] }]);
});

t.test('devices: without device plugins, it says so; a plugin with no groups gets a row saying why', async (t) => {
  const none = await runCli(['--config', agent({}), 'devices']);
  t.equal(none.code, 0);
  t.equal(none.stdout, 'no device plugin is running (taskhost plugins says why)\n');
  const missing = path.join(work, 'missing');
  const broken = await runCli(['--config', agent({ 'example-file': { config: { dir: missing } } }), 'devices']);
  t.match(
    broken.stdout,
    new RegExp(`\\n-\\s+-\\s+unhealthy\\s+device plugin "example-file": fingerprint failed: cannot read the device directory ${missing}`),
  );
  const stats = await runCli(['--config', agent({ 'example-file': { config: { dir: missing } } }), 'devices', 'stats']);
  t.equal(stats.stdout, 'no device groups (taskhost devices says why)\n');
});

t.test('devices stats: the latest sample of each device and its age', async (t) => {
  const human = await runCli(['--config', withExample(), 'devices', 'stats']);
  t.equal(human.code, 0);
  t.match(human.stdout, /^GROUP\s+DEVICE\s+SUMMARY\s+STATS\s+AGE\n/);
  t.match(human.stdout, /\nexample\/file\/mock\s+a\s+2B\s+size=2B modified=\S+ mode=0644\s+\d+ms\n/);
  const json = await runCli(['--config', withExample(), 'devices', 'stats', '--json']);
  const snapshot = JSON.parse(json.stdout) as DeviceStatsSnapshot;
  t.match(snapshot, {
    collectedAt: String,
    groups: [{ id: 'example/file/mock', plugin: 'example-file', sampledAt: String, staleMs: Number }],
  });
  t.same(Object.keys(snapshot.groups[0]!.stats!.instances), ['a', 'b']);
});
