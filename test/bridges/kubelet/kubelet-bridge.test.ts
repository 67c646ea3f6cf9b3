// The KubeletBridge in-process over the scripted fixture device plugin, for what example-file
// cannot show: topology from a device's PCI locality (a sysfs of our own), device nodes in
// Allocate, a crashed plugin's devices listed Unhealthy rather than dropped, a kubelet.sock made
// again without the directory wiped, and close() taking the socket with it.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import t from 'tap';
import { KubeletBridge } from '../../../bridges/kubelet/kubelet-bridge.js';
import { ResourceDevices } from '../../../bridges/kubelet/resource-devices.js';
import { DeviceManager } from '../../../devices/device-manager.js';
import { parseAgentConfig } from '../../../plugin-loader/agent-config.js';
import { PluginLoader } from '../../../plugin-loader/loader.js';
import { eventually } from '../../agent/agent-request.js';
import { fastSupervision } from '../../helpers/fixture-plugins.js';
import { FakeKubelet } from './fake-kubelet.js';

const scripted = fileURLToPath(new URL('../../fixtures/device-plugins/scripted', import.meta.url));
const quiet = pino({ level: 'silent' });
const resource = 'example.com/scripted';
const group = 'fixture/scripted/x';

async function setup(t: { teardown(fn: () => unknown): void }, logger = quiet) {
  const root = mkdtempSync(path.join(tmpdir(), 'taskhost-kbridge-'));
  const control = path.join(root, 'control.json');
  const script = (doc: unknown) => writeFileSync(control, JSON.stringify(doc));
  // s0 sits on PCI bus 0000:17:00.0, which this sysfs puts on NUMA node 1; s1 has no locality.
  const sysfs = path.join(root, 'sys');
  mkdirSync(path.join(sysfs, 'bus/pci/devices/0000:17:00.0'), { recursive: true });
  writeFileSync(path.join(sysfs, 'bus/pci/devices/0000:17:00.0/numa_node'), '1\n');
  const kubeletDir = path.join(root, 'kubelet');
  mkdirSync(kubeletDir);
  script({
    fingerprint: {
      groups: [
        {
          vendor: 'fixture',
          type: 'scripted',
          name: 'x',
          devices: [
            // nvidia-smi's spelling of a bus id: 8 domain digits, upper case.
            { id: 's0', healthy: true, locality: { pciBusId: '00000000:17:00.0' } },
            { id: 's1', healthy: true },
          ],
        },
      ],
    },
  });
  const config = parseAgentConfig({
    pluginDir: path.join(root, 'no-plugins'),
    dataDir: path.join(root, 'data'),
    supervision: fastSupervision,
    plugins: { scripted: { config: { file: control } } },
  });
  const loader = new PluginLoader({ config, logger: quiet, builtinDirs: [], extraDirs: [scripted] });
  const devices = new DeviceManager({ loader, logger: quiet, streamBackoffMs: [20, 200] });
  await devices.waitForFirstFingerprint(60_000);
  const bridge = new KubeletBridge({
    devices: new ResourceDevices({ devices, group, resource, sysfsRoot: sysfs }),
    kubeletDir,
    logger,
    pollMs: 50,
    retryMs: [20, 200],
  });
  const kubelets: FakeKubelet[] = [];
  const kubelet = async () => {
    const k = await FakeKubelet.start(kubeletDir);
    kubelets.push(k);
    return k;
  };
  t.teardown(async () => {
    await bridge.close();
    for (const k of kubelets) await k.stop();
    await devices.close();
    await loader.close();
    rmSync(root, { recursive: true, force: true });
  });
  return { loader, bridge, kubelet, kubeletDir, script };
}

t.test('topology from locality, device nodes in Allocate, a crashed plugin listed Unhealthy', async (t) => {
  const { loader, bridge, kubelet } = await setup(t);
  const k = await kubelet();
  bridge.start();
  await eventually(() => k.devices(resource)?.length === 2, 'the device list');
  t.same(
    k.devices(resource),
    [
      ['s0', 'Healthy', [1]],
      ['s1', 'Healthy', []],
    ],
    "s0's NUMA node from sysfs; none for a device without locality",
  );

  t.same(
    await k.allocate(resource, ['s1', 's0']),
    {
      envs: { SCRIPTED_DEVICES: 's0,s1' },
      mounts: [],
      devices: [
        { container_path: '/dev/scripted-s0', host_path: '/dev/null', permissions: 'rw' },
        { container_path: '/dev/scripted-s1', host_path: '/dev/null', permissions: 'rw' },
      ],
      annotations: {},
      cdi_devices: [],
    },
    'device nodes with their container paths and permissions',
  );

  await loader.get('scripted').kill('was killed by the test');
  await eventually(
    () => k.plugin(resource).lists.some((list) => list.length === 2 && list.every((d) => d.health === 'Unhealthy')),
    'a list with every device Unhealthy while the plugin is down',
  );
  await eventually(() => k.devices(resource)?.every(([, health]) => health === 'Healthy'), 'healthy again once it is back');
  t.notOk(k.plugin(resource).ended, 'one stream throughout');
  t.equal(bridge.registrations, 1, 'registered once');
});

t.test('a kubelet.sock made again, directory not wiped: registers again on a fresh socket', async (t) => {
  const { bridge, kubelet, kubeletDir } = await setup(t);
  const first = await kubelet();
  bridge.start();
  await eventually(() => first.devices(resource)?.length === 2, 'the first registration');
  await first.stop();
  rmSync(path.join(kubeletDir, 'kubelet.sock'), { force: true });
  const second = await kubelet();
  await eventually(() => second.devices(resource)?.length === 2, 'a registration with the new kubelet');
  t.equal(bridge.registrations, 2);
  t.ok(first.plugin(resource).ended, "the old kubelet's stream ended with its connection");

  await bridge.close();
  t.notOk(existsSync(bridge.socketPath), 'close() removes the socket');
  await eventually(() => second.plugin(resource).ended, 'and ends the stream');
  await bridge.close();
  t.pass('close() twice is fine');
});

t.test('registration refused: served meanwhile, retried, and it says why once', async (t) => {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push((JSON.parse(line) as { msg: string }).msg) });
  const { bridge, kubeletDir } = await setup(t, logger);
  // A kubelet.sock that is a plain file: nothing listens on it.
  writeFileSync(path.join(kubeletDir, 'kubelet.sock'), '');
  bridge.start();
  await eventually(() => lines.filter((l) => l.startsWith('registration failed')).length >= 3, 'three failed attempts');
  t.equal(
    lines.filter((l) => l.startsWith('registration failed') && l.endsWith('(retrying with backoff)')).length,
    1,
    'warned once, then debug',
  );
  t.equal(bridge.registrations, 0);
  t.ok(existsSync(bridge.socketPath), 'serving meanwhile');
});
