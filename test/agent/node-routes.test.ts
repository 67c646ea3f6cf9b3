// GET /v1/node, /v1/devices and /v1/devices/stats on a real agent with the example-file device
// plugin (files in a folder are devices): the node's attributes, each driver's health, the device
// groups and plugins as `taskhost devices --json` prints them, and the latest device stats.
import path from 'node:path';
import t from 'tap';
import { Agent } from '../../agent/agent.js';
import { AgentClient } from '../../agent/agent-client.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';
import { eventually, request } from './agent-request.js';
import { deviceFolder, freshDataDir, quiet } from './supervisor-helpers.js';

const builtinDirs = builtinPluginDirs.filter((d) => /raw_exec|mock|example-file$/.test(d));

t.test('the node, its drivers and its devices through the API', async (t) => {
  const dataDir = freshDataDir(t);
  const deviceDir = deviceFolder(dataDir, ['d0', 'd1']);
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: { ...fastSupervision, startTimeout: '60s' },
    plugins: { mock: { enabled: true }, 'example-file': { config: { dir: deviceDir, listPeriod: '200ms' } } },
  });
  const agent = await Agent.start({ config, logger: quiet, builtinDirs });
  t.teardown(() => agent.close());
  const client = new AgentClient({ socket: agent.addresses.socket });
  t.teardown(() => client.close());

  const node = await eventually(async () => {
    const n = await client.node();
    return (
      n.drivers.every((d) => d.fingerprinted) &&
      n.devices.groups.length > 0 &&
      n.drivers.length === 2 &&
      n.devices.plugins[0]?.fingerprinted &&
      n
    );
  }, 'every driver and the device plugin fingerprinted');
  t.match(node.attributes, { 'kernel.name': 'linux', 'driver.raw_exec': /.+/ }, "the host's facts and the drivers' attributes");
  t.same(
    node.drivers.map((d) => [d.name, d.health]),
    [
      ['mock', 'healthy'],
      ['raw_exec', 'healthy'],
    ],
    'each driver and its health, by name',
  );
  const group = node.devices.groups.find((g) => `${g.vendor}/${g.type}/${g.name}` === 'example/file/mock');
  t.same(group?.devices.map((d) => d.id).sort(), ['d0', 'd1'], 'the device files are the devices');

  const devices = await request<{ groups: unknown[]; plugins: { name: string; health: string }[] }>(
    agent.addresses.socket,
    'GET',
    '/v1/devices',
  );
  t.equal(devices.status, 200);
  t.same(devices.json.groups, node.devices.groups, 'the same groups as in /v1/node');
  t.match(devices.json.plugins, [{ name: 'example-file', health: 'healthy' }]);
  t.same(devices.json, { groups: agent.devices.devices(), plugins: agent.devices.health() }, 'what `taskhost devices --json` prints');

  const stats = await eventually(async () => {
    const s = await client.deviceStats();
    return s.groups.some((g) => g.stats !== null) && s;
  }, 'a stats sample');
  t.match(stats, { collectedAt: /^\d{4}-/, groups: [{ id: 'example/file/mock', plugin: 'example-file', sampledAt: /^\d{4}-/ }] });
});
