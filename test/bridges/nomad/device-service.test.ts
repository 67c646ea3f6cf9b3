// Nomad's DevicePlugin service over the example-file plugin, called as Nomad's device manager
// calls it: fingerprint, reserve, stats at the requested interval, and a plugin whose stream
// fails: its devices turn unhealthy and the stream stays open.
import { chmodSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { createDeviceService } from '../../../bridges/nomad/device-service.js';
import { nomadProto } from '../../../bridges/nomad/nomad-protos.js';
import { DeviceManager } from '../../../devices/device-manager.js';
import { parseAgentConfig } from '../../../plugin-loader/agent-config.js';
import { PluginLoader } from '../../../plugin-loader/loader.js';
import { fastSupervision } from '../../helpers/fixture-plugins.js';
import { cancel, duration, grpcPeer, take } from './nomad-driver-harness.js';

const quiet = pino({ level: 'silent' });

async function serveExampleFile(t: Test, dir: string) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'taskhost-nomad-dev-'));
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'none'),
    dataDir,
    supervision: fastSupervision,
    plugins: { 'example-file': { config: { dir, listPeriod: '50ms' } } },
  });
  const loader = new PluginLoader({ config, logger: quiet, only: { names: ['example-file'] } });
  const manager = new DeviceManager({ loader, logger: quiet, streamBackoffMs: [20, 200] });
  await manager.start();
  const served = createDeviceService({ manager, loader, plugin: 'example-file', logger: quiet, statsBackoffMs: [20, 200] });
  const server = new grpc.Server();
  server.addService(served.service, served.implementation);
  const socket = path.join(mkdtempSync(path.join(tmpdir(), 'taskhost-nomad-sock-')), 'plugin.sock');
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  const DevicePlugin = (
    nomadProto() as unknown as { hashicorp: { nomad: { plugins: { device: { DevicePlugin: grpc.ServiceClientConstructor } } } } }
  ).hashicorp.nomad.plugins.device.DevicePlugin;
  const client = new DevicePlugin(`unix://${socket}`, grpc.credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await served.close();
    server.forceShutdown();
    await manager.close();
    await loader.close();
  });
  return grpcPeer(client);
}

function deviceDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-nomad-devices-'));
  writeFileSync(path.join(dir, 'a'), 'aaaa');
  writeFileSync(path.join(dir, 'b'), 'bb');
  chmodSync(path.join(dir, 'a'), 0o644);
  chmodSync(path.join(dir, 'b'), 0o646); // world-writable: unhealthy
  return dir;
}

type Group = {
  vendor: string;
  device_type: string;
  device_name: string;
  devices: Record<string, unknown>[];
  attributes: Record<string, unknown>;
};

t.test('fingerprint: the device group with typed attributes, at once and again on a change', async (t) => {
  const dir = deviceDir();
  const peer = await serveExampleFile(t, dir);
  const stream = peer.stream('Fingerprint');
  t.teardown(() => cancel(stream));
  const [first] = await take(stream, 1);
  const [group] = first!.device_group as Group[];
  t.match(group, { vendor: 'example', device_type: 'file', device_name: 'mock' });
  t.match(group!.devices, [
    { ID: 'a', healthy: true },
    { ID: 'b', healthy: false, health_description: /world-writable/ },
  ]);
  t.match(group!.attributes.count, { int_val: '2', value: 'int_val' });
  t.match(group!.attributes.dir, { string_val: dir });
  const next = take(stream, 1);
  writeFileSync(path.join(dir, 'c'), 'c');
  chmodSync(path.join(dir, 'c'), 0o644);
  const [second] = await next;
  t.same(
    (second!.device_group as Group[])[0]!.devices.map((d) => d.ID),
    ['a', 'b', 'c'],
  );
});

t.test('reserve: envs and read-only mounts for the ids Nomad picked; an unknown id is NotFound', async (t) => {
  const dir = deviceDir();
  const peer = await serveExampleFile(t, dir);
  const stream = peer.stream('Fingerprint');
  t.teardown(() => cancel(stream));
  await take(stream, 1);
  const { container_res } = await peer.call<{ container_res: Record<string, unknown> }>('Reserve', { device_ids: ['a'] });
  t.same(container_res, {
    envs: { EXAMPLE_FILE_DEVICES: 'a' },
    mounts: [{ task_path: '/devices/a', host_path: path.join(dir, 'a'), read_only: true }],
    devices: [],
  });
  await t.rejects(peer.call('Reserve', { device_ids: ['zz'] }), { code: grpc.status.NOT_FOUND, details: /no device "zz"/ });
  await t.rejects(peer.call('Reserve', { device_ids: ['b'] }), { code: grpc.status.FAILED_PRECONDITION, details: /world-writable/ });
});

t.test('stats at the requested interval, in units Nomad knows (no plain B), each with a timestamp', async (t) => {
  const dir = deviceDir();
  const peer = await serveExampleFile(t, dir);
  const fingerprint = peer.stream('Fingerprint');
  t.teardown(() => cancel(fingerprint));
  await take(fingerprint, 1);
  const stream = peer.stream('Stats', { collection_interval: duration(100) });
  const messages = await take(stream, 3);
  cancel(stream);
  const group = (
    messages[2]!.groups as { vendor: string; type: string; name: string; instance_stats: Record<string, Record<string, unknown>> }[]
  )[0]!;
  t.match(group, { vendor: 'example', type: 'file', name: 'mock' });
  const a = group.instance_stats.a!;
  t.match(a.summary, { float_numerator_val: { value: 4 / 1024 }, unit: 'KiB', desc: 'file size' });
  t.match((a.stats as { attributes: Record<string, unknown> }).attributes.mode, { string_val: { value: '0644' } });
  const stamps = messages.map((m) => {
    const ts = (m.groups as { instance_stats: Record<string, { timestamp: { seconds: string } }> }[])[0]!.instance_stats.a!.timestamp;
    return Number(ts.seconds);
  });
  for (const s of stamps) t.ok(s > Date.now() / 1000 - 60, 'a real timestamp');
});

t.test('a plugin whose stream fails: its devices turn unhealthy, the stream stays open, and they come back', async (t) => {
  const dir = deviceDir();
  const peer = await serveExampleFile(t, dir);
  const stream = peer.stream('Fingerprint');
  let ended = false;
  stream.on('end', () => (ended = true));
  stream.on('error', () => (ended = true));
  t.teardown(() => cancel(stream));
  await take(stream, 1);
  const failing = take(stream, 1);
  renameSync(dir, `${dir}.gone`); // the plugin cannot read its directory: its fingerprint stream fails
  const [sick] = await failing;
  const devices = (sick!.device_group as Group[])[0]!.devices;
  t.ok(devices.length > 0 && devices.every((d) => d.healthy === false), 'every device unhealthy');
  t.match(devices[0], { health_description: /cannot read the device directory|fingerprint failed/ });
  const back = new Promise<Group[]>((resolve) => {
    const onData = (m: Record<string, unknown>) => {
      const groups = m.device_group as Group[];
      if (groups[0]?.devices.some((d) => d.healthy === true)) {
        stream.off('data', onData);
        resolve(groups);
      }
    };
    stream.on('data', onData);
  });
  renameSync(`${dir}.gone`, dir);
  const groups = await back;
  t.match(groups[0]!.devices, [{ ID: 'a', healthy: true }]);
  t.notOk(ended, 'the Nomad stream never ended');
});
