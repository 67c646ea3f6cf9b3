// The device manager against real workers: the example-file plugin and fixture device plugins
// that send invalid fingerprints, crash, or never answer.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import t from 'tap';
import {
  DeviceManager,
  type DeviceManagerOptions,
  type DeviceSampleArrival,
  type DevicePluginHealth,
  type DeviceStatsSnapshot,
  type NodeDeviceGroup,
} from '../../devices/device-manager.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { PluginLoader } from '../../plugin-loader/loader.js';
import { InvalidConfigError, NoFreeDeviceError, UnknownDeviceError } from '../../shared/errors.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';

const exampleFile = fileURLToPath(new URL('../../devices/example-file', import.meta.url));
const fixtures = fileURLToPath(new URL('../fixtures/device-plugins', import.meta.url));
const quiet = pino({ level: 'silent' });

/** A manager over example-file and the named fixture plugins (each folder by path, so that other fixtures there do not matter). */
function setup(
  test: { teardown(fn: () => Promise<void>): void },
  plugins: Record<string, unknown>,
  options: { fixtures?: string[]; manager?: Partial<DeviceManagerOptions>; supervision?: object } = {},
) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'taskhost-devm-'));
  const config = parseAgentConfig({
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: { ...fastSupervision, ...options.supervision },
    plugins,
  });
  const loader = new PluginLoader({
    config,
    logger: quiet,
    builtinDirs: [exampleFile],
    extraDirs: (options.fixtures ?? []).map((f) => path.join(fixtures, f)),
  });
  const manager = new DeviceManager({ loader, logger: quiet, streamBackoffMs: [20, 200], statsIntervalMs: 50, ...options.manager });
  test.teardown(async () => {
    await manager.close();
    await loader.close();
  });
  return { loader, manager };
}

/** A directory of device files for example-file; `mode` per file. */
function deviceDir(files: Record<string, number>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-devfiles-'));
  for (const [name, mode] of Object.entries(files)) {
    writeFileSync(path.join(dir, name), `device ${name}\n`);
    chmodSync(path.join(dir, name), mode);
  }
  return dir;
}

/** The control file of the scripted fixture plugin. */
function script() {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'taskhost-script-')), 'control.json');
  return { file, write: (doc: unknown) => writeFileSync(file, JSON.stringify(doc)) };
}

/** Polls `check` until it returns something truthy. */
async function until<T>(check: () => T | undefined | false, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const scriptedGroup = (devices: string[], extra: Record<string, unknown> = {}) => ({
  vendor: 'fixture',
  type: 'scripted',
  name: 'x',
  devices: devices.map((id) => ({ id, healthy: true, ...(id === 's0' ? { locality: { pciBusId: '0000:01:00.0' } } : {}) })),
  attributes: { memory: { value: 80, unit: 'GiB' } },
  ...extra,
});
const valid = { groups: [scriptedGroup(['s0', 's1'])] };

function group(manager: DeviceManager, id: string): NodeDeviceGroup | undefined {
  return manager.devices().find((g) => g.id === id);
}
function pluginHealth(manager: DeviceManager, name: string): DevicePluginHealth {
  return manager.health().find((h) => h.name === name)!;
}

t.test('example-file: its files are devices; a world-writable one is unhealthy until chmod o-w', async (t) => {
  const dir = deviceDir({ a: 0o644, b: 0o644 });
  const { manager } = setup(t, { 'example-file': { config: { dir, listPeriod: '20ms' } } });
  await manager.waitForFirstFingerprint(10_000);
  t.same(manager.devices(), [
    {
      id: 'example/file/mock',
      vendor: 'example',
      type: 'file',
      name: 'mock',
      plugin: 'example-file',
      attributes: { count: { value: 2 }, dir: { value: dir } },
      devices: [
        { id: 'a', health: 'healthy' },
        { id: 'b', health: 'healthy' },
      ],
    },
  ]);
  t.match(manager.health(), [{ name: 'example-file', health: 'healthy', fingerprinted: true, groups: ['example/file/mock'] }]);

  const changes: NodeDeviceGroup[][] = [];
  manager.on('changed', (groups) => changes.push(groups));
  manager.on('changed', () => {
    throw new Error('a listener that throws must not break the manager');
  });
  chmodSync(path.join(dir, 'b'), 0o646);
  const sick = await until(
    () => group(manager, 'example/file/mock')?.devices.find((d) => d.id === 'b' && d.health === 'unhealthy'),
    'b unhealthy',
  );
  t.equal(sick.healthDescription, `world-writable: chmod o-w ${path.join(dir, 'b')}`);
  chmodSync(path.join(dir, 'b'), 0o644);
  await until(() => group(manager, 'example/file/mock')?.devices.every((d) => d.health === 'healthy'), 'b healthy again');
  writeFileSync(path.join(dir, 'c'), 'new');
  await until(() => group(manager, 'example/file/mock')?.devices.length === 3, 'c listed');
  await new Promise((r) => setTimeout(r, 150)); // several rescans that find nothing new
  t.equal(changes.length, 3, 'one `changed` per real change, none for rescans that find the same');
  t.same(
    changes.map((c) => c[0]!.attributes.count),
    [{ value: 2 }, { value: 2 }, { value: 3 }],
  );
});

t.test('invalid fingerprints withdraw the plugin’s devices with the reason; a valid one brings them back', async (t) => {
  const dir = deviceDir({ a: 0o644 });
  const control = script();
  control.write({ fingerprint: valid });
  const { manager } = setup(
    t,
    { 'example-file': { config: { dir, listPeriod: '20ms' } }, scripted: { config: { file: control.file } } },
    { fixtures: ['scripted'] },
  );
  await manager.waitForFirstFingerprint(10_000);
  t.same(
    group(manager, 'fixture/scripted/x')?.devices.map((d) => d.health),
    ['healthy', 'healthy'],
  );
  t.same(group(manager, 'fixture/scripted/x')?.attributes, { memory: { value: 80, unit: 'GiB' } });
  t.same(group(manager, 'fixture/scripted/x')?.devices[0], { id: 's0', health: 'healthy', locality: { pciBusId: '0000:01:00.0' } });

  const cases: [string, unknown, RegExp][] = [
    [
      'a duplicate device id',
      { groups: [scriptedGroup(['s0', 's0'])] },
      /\/groups\/0\/devices\/1\/id: device id "s0" is used twice \(also \/groups\/0\/devices\/0\/id\)/,
    ],
    [
      'a device id reused in another group',
      { groups: [scriptedGroup(['s0']), scriptedGroup(['s0'], { name: 'y' })] },
      /\/groups\/1\/devices\/0\/id: device id "s0" is used twice/,
    ],
    [
      'a group listed twice',
      { groups: [scriptedGroup(['s0']), scriptedGroup(['s1'])] },
      /\/groups\/1: group fixture\/scripted\/x is listed twice/,
    ],
    [
      'an unknown unit',
      { groups: [scriptedGroup(['s0'], { attributes: { memory: { value: 80, unit: 'GIB' } } })] },
      /\/groups\/0\/attributes\/memory: unknown unit "GIB" \(did you mean "GiB"\?\)/,
    ],
    [
      'a unit on a string',
      { groups: [scriptedGroup(['s0'], { attributes: { model: { value: 'x', unit: 'GB' } } })] },
      /\/groups\/0\/attributes\/model: a unit needs a number value, got "x"/,
    ],
    ['an empty vendor', { groups: [scriptedGroup(['s0'], { vendor: '' })] }, /\/groups\/0\/vendor: must not be empty/],
    ['a bad type name', { groups: [scriptedGroup(['s0'], { type: 'a b' })] }, /\/groups\/0\/type: must be letters, digits.*\(got "a b"\)/],
    [
      'a group another plugin owns',
      { groups: [{ vendor: 'example', type: 'file', name: 'mock', devices: [{ id: 'z', healthy: true }], attributes: {} }] },
      /\/groups\/0: group example\/file\/mock belongs to device plugin "example-file", which reported it first/,
    ],
  ];
  for (const [what, message, reason] of cases) {
    control.write({ fingerprint: message });
    const health = await until(() => {
      const h = pluginHealth(manager, 'scripted');
      return h.health === 'unhealthy' && h;
    }, what);
    t.match(health.healthDescription, reason, what);
    const withdrawn = group(manager, 'fixture/scripted/x')!;
    t.ok(
      withdrawn.devices.every((d) => d.health === 'unhealthy' && d.healthDescription === `withdrawn: ${health.healthDescription}`),
      `${what}: the devices are withdrawn, saying why`,
    );
    control.write({ fingerprint: valid });
    await until(() => pluginHealth(manager, 'scripted').health === 'healthy', `${what}: healthy again`);
    t.same(
      group(manager, 'fixture/scripted/x')?.devices.map((d) => d.health),
      ['healthy', 'healthy'],
    );
  }
  t.equal(group(manager, 'example/file/mock')?.plugin, 'example-file', 'the first owner keeps its group');
  t.same(
    group(manager, 'example/file/mock')?.devices.map((d) => d.id),
    ['a'],
  );
});

t.test('a plugin that keeps sending invalid fingerprints is restarted, not dropped', async (t) => {
  const control = script();
  control.write({ fingerprint: valid });
  const { loader, manager } = setup(
    t,
    { scripted: { config: { file: control.file } } },
    { fixtures: ['scripted'], manager: { restartAfterInvalid: 2 } },
  );
  await manager.waitForFirstFingerprint(10_000);
  const descriptions: string[] = [];
  manager.on('health', (h) => descriptions.push(`${h.health}: ${h.healthDescription}`));
  const restarted = new Promise<string>((resolve) => loader.once('restarted', resolve));
  control.write({ fingerprint: { groups: [scriptedGroup(['s0', 's0'])] } });
  await until(() => pluginHealth(manager, 'scripted').health === 'unhealthy', 'first invalid');
  control.write({ fingerprint: { groups: [scriptedGroup([], { vendor: '' })] } });
  t.equal(await restarted, 'scripted');
  t.match(
    descriptions.join('\n'),
    /unknown: device plugin crashed; restarting \(plugin "scripted" was restarted after 2 invalid fingerprints in a row\)/,
  );
  // After the restart the plugin sends its (still invalid) fingerprint at once; then a valid one.
  await until(() => /vendor: must not be empty/.test(pluginHealth(manager, 'scripted').healthDescription), 'invalid again after restart');
  control.write({ fingerprint: valid });
  await until(() => pluginHealth(manager, 'scripted').health === 'healthy', 'healthy after the restart');
  t.equal(loader.get('scripted').restarts, 1);
});

t.test('a plugin that crashes: devices withdrawn while it is down, back when it is restarted', async (t) => {
  const { loader, manager } = setup(t, { crashes: { config: { crashAfter: 3, periodMs: 30 } } }, { fixtures: ['crashes'] });
  const changes: string[] = [];
  manager.on('changed', (groups) => changes.push(groups.map((g) => g.devices.map((d) => `${d.id}:${d.health}`).join(',')).join(';')));
  const restarted = new Promise((resolve) => loader.once('restarted', resolve));
  await manager.waitForFirstFingerprint(10_000);
  await restarted;
  await until(() => group(manager, 'fixture/crash/once')?.devices.every((d) => d.health === 'healthy'), 'devices back');
  await new Promise((r) => setTimeout(r, 150)); // the same fingerprint again and again
  t.same(changes, ['c0:healthy,c1:healthy', 'c0:unknown,c1:unknown', 'c0:healthy,c1:healthy'], 'changed only when the set really changed');
  t.equal(pluginHealth(manager, 'crashes').health, 'healthy');
});

t.test('a crash loop trips the breaker: the devices stay, unhealthy, with the reason', async (t) => {
  const { manager } = setup(
    t,
    { crashes: { config: { crashAfter: 1, periodMs: 10, always: true } } },
    { fixtures: ['crashes'], supervision: { crashLoopRestarts: 2, breakerCooldown: '0s' } },
  );
  await manager.waitForFirstFingerprint(10_000);
  const health = await until(() => {
    const h = pluginHealth(manager, 'crashes');
    return h.health === 'unhealthy' && h;
  }, 'the breaker');
  t.match(health.healthDescription, /^device plugin failed: plugin "crashes" crashed 2 times within/);
  t.match(group(manager, 'fixture/crash/once')?.devices, [
    { id: 'c0', health: 'unhealthy', healthDescription: /^withdrawn: device plugin failed/ },
    { id: 'c1' },
  ]);
});

t.test('a plugin that cannot start, one missing methods, one that throws: each says why', async (t) => {
  const control = script();
  control.write({ throw: 'the device bus is on fire' });
  const { manager } = setup(
    t,
    { scripted: { config: { file: control.file } }, incomplete: {}, crashes: { config: { crashAfter: 'soon' } } },
    { fixtures: ['scripted', 'incomplete', 'crashes'] },
  );
  await manager.waitForFirstFingerprint(10_000);
  t.match(pluginHealth(manager, 'crashes'), {
    health: 'unhealthy',
    healthDescription: /^device plugin failed: config of plugin "crashes" is invalid: \/crashAfter: must be integer/,
  });
  t.match(pluginHealth(manager, 'incomplete'), {
    health: 'unhealthy',
    healthDescription: 'device plugin "incomplete" does not implement reserve, stats',
  });
  t.match(pluginHealth(manager, 'scripted'), { health: 'unhealthy', healthDescription: 'fingerprint failed: the device bus is on fire' });
  control.write({ fingerprint: valid });
  await until(() => pluginHealth(manager, 'scripted').health === 'healthy', 'the re-opened stream');
  t.same(
    manager.devices().map((g) => g.id),
    ['fixture/scripted/x'],
  );
});

t.test('the first-fingerprint barrier gives up after its timeout', async (t) => {
  const control = script(); // never written: the plugin never fingerprints
  const { manager } = setup(t, { scripted: { config: { file: control.file } } }, { fixtures: ['scripted'] });
  await manager.start();
  const started = Date.now();
  await manager.waitForFirstFingerprint(300);
  const waited = Date.now() - started;
  t.ok(waited >= 250 && waited < 3_000, `waited ${waited}ms`);
  t.match(pluginHealth(manager, 'scripted'), { health: 'unknown', healthDescription: 'no fingerprint yet', fingerprinted: false });
  t.same(manager.devices(), []);
  t.same(manager.stats().groups, []);
});

t.test('stats: one batched snapshot per tick, with the age of each group’s last sample', async (t) => {
  const dir = deviceDir({ a: 0o644 });
  const control = script();
  const sample = { groups: [{ vendor: 'fixture', type: 'scripted', name: 'x', instances: { s0: { summary: { value: 42, unit: '%' } } } }] };
  control.write({ fingerprint: valid });
  const { manager } = setup(
    t,
    { 'example-file': { config: { dir, listPeriod: '20ms' } }, scripted: { config: { file: control.file } } },
    { fixtures: ['scripted'] },
  );
  await manager.waitForFirstFingerprint(10_000);
  await manager.waitForFirstStats(300); // the scripted plugin has sent none yet
  const before = manager.stats();
  t.match(
    before.groups.find((g) => g.id === 'fixture/scripted/x'),
    { stats: null, sampledAt: null, staleMs: null },
  );
  t.match(
    before.groups.find((g) => g.id === 'example/file/mock'),
    {
      plugin: 'example-file',
      stats: { instances: { a: { summary: { value: 9, unit: 'B', description: 'file size' }, stats: { mode: { value: '0644' } } } } },
    },
  );

  // Stats for a group the plugin does not own, and a malformed message, are both ignored.
  const foreign = { vendor: 'example', type: 'file', name: 'mock', instances: { zz: { summary: { value: 1 } } } };
  control.write({ fingerprint: valid, stats: { groups: [...sample.groups, foreign] } });
  await until(() => manager.stats().groups.find((g) => g.id === 'fixture/scripted/x')?.stats, 'scripted stats');
  control.write({
    fingerprint: valid,
    stats: { groups: [{ ...sample.groups[0], instances: { s0: { summary: { value: 1, unit: 'furlongs' } } } }] },
  });
  await new Promise((r) => setTimeout(r, 120));
  t.equal(manager.stats().groups.find((g) => g.id === 'fixture/scripted/x')?.stats?.instances.s0?.summary.value, 42);
  t.notOk(manager.stats().groups.find((g) => g.id === 'example/file/mock')?.stats?.instances.zz);

  const snapshots: DeviceStatsSnapshot[] = [];
  manager.on('stats', (s) => snapshots.push(s));
  control.write({ fingerprint: valid }); // no more scripted stats: its sample grows stale
  await new Promise((r) => setTimeout(r, 400));
  t.ok(snapshots.length >= 4 && snapshots.length <= 10, `${snapshots.length} snapshots in 400ms at a 50ms interval`);
  for (const s of snapshots)
    t.same(
      s.groups.map((g) => g.id),
      ['example/file/mock', 'fixture/scripted/x'],
      'every group in every snapshot',
    );
  const last = snapshots.at(-1)!;
  t.ok(last.groups[0]!.staleMs! < 200, `example-file is fresh (${last.groups[0]!.staleMs}ms)`);
  t.ok(last.groups[1]!.staleMs! >= 300, `scripted is stale (${last.groups[1]!.staleMs}ms)`);
  t.equal(Date.parse(last.collectedAt) - Date.parse(last.groups[1]!.sampledAt!), last.groups[1]!.staleMs);
});

t.test('sampled: every accepted stats message, with when the plugin took it and when it arrived', async (t) => {
  const dir = deviceDir({ a: 0o644 });
  const control = script();
  const good = { groups: [{ vendor: 'fixture', type: 'scripted', name: 'x', instances: { s0: { summary: { value: 42, unit: '%' } } } }] };
  control.write({ fingerprint: valid });
  const { manager } = setup(
    t,
    { 'example-file': { config: { dir, listPeriod: '20ms' } }, scripted: { config: { file: control.file } } },
    { fixtures: ['scripted'] },
  );
  const arrivals: DeviceSampleArrival[] = [];
  manager.on('sampled', (s) => arrivals.push(s));
  await manager.waitForFirstFingerprint(10_000);
  const first = await until(() => arrivals.find((a) => a.plugin === 'example-file'), 'an example-file sample');
  t.same(first.groups, ['example/file/mock']);
  t.ok(first.timestamp <= first.receivedAt, 'taken before it arrived');
  t.ok(first.receivedAt - first.timestamp < 1_000, `and not long before (${(first.receivedAt - first.timestamp).toFixed(3)}ms)`);
  t.ok(Math.abs(first.receivedAt - Date.now()) < 1_000, 'arrival is a unix time in ms');

  // An invalid message is not a sample; a valid one is, naming only the groups it carried.
  control.write({
    fingerprint: valid,
    stats: { groups: [{ ...good.groups[0], instances: { s0: { summary: { value: 1, unit: 'furlongs' } } } }] },
  });
  await new Promise((r) => setTimeout(r, 150));
  t.notOk(
    arrivals.some((a) => a.plugin === 'scripted'),
    'invalid stats are not announced',
  );
  control.write({ fingerprint: valid, stats: good });
  const scripted = await until(() => arrivals.find((a) => a.plugin === 'scripted'), 'a scripted sample');
  t.same(scripted.groups, ['fixture/scripted/x']);
});

t.test('reserve: routed to the owner, deterministic, validated, refused with the reason', async (t) => {
  const dir = deviceDir({ a: 0o644, b: 0o646, c: 0o644 });
  const control = script();
  control.write({ fingerprint: valid });
  const { manager } = setup(
    t,
    { 'example-file': { config: { dir, listPeriod: '20ms' } }, scripted: { config: { file: control.file } } },
    { fixtures: ['scripted'] },
  );
  await manager.waitForFirstFingerprint(10_000);

  const first = await manager.reserve([{ name: 'example/file/mock', count: 1 }], { owner: 'task-1' });
  t.equal(first.owner, 'task-1');
  t.same(first.devices, [{ group: 'example/file/mock', plugin: 'example-file', ids: ['a'] }]);
  t.same(first.reservation, {
    envs: { EXAMPLE_FILE_DEVICES: 'a' },
    mounts: [{ taskPath: '/devices/a', hostPath: path.join(dir, 'a'), readOnly: true }],
    devices: [],
  });

  const second = await manager.reserve([
    { name: 'file', count: 1 },
    { name: 'fixture/scripted', count: 1 },
    { name: 'scripted', count: 1 },
  ]);
  t.same(
    second.devices,
    [
      { group: 'example/file/mock', plugin: 'example-file', ids: ['c'] },
      { group: 'fixture/scripted/x', plugin: 'scripted', ids: ['s0', 's1'] },
    ],
    'b is unhealthy and a reserved; two requests on one group make one reserve call',
  );
  t.same(second.reservation.envs, { EXAMPLE_FILE_DEVICES: 'c', SCRIPTED_DEVICES: 's0,s1' });
  t.same(second.reservation.devices, [
    { taskPath: '/dev/scripted-s0', hostPath: '/dev/null', permissions: 'rw' },
    { taskPath: '/dev/scripted-s1', hostPath: '/dev/null', permissions: 'rw' },
  ]);

  const short = await manager.reserve([{ name: 'file', count: 1 }]).catch((err: unknown) => err);
  t.type(short, NoFreeDeviceError, 'healthy enough, but held by others');
  t.equal(
    (short as Error).message,
    `no free device: cannot reserve 1 device of "file": example/file/mock has 2 healthy of 3, 2 of them reserved (b: unhealthy, world-writable: chmod o-w ${path.join(dir, 'b')})`,
  );
  t.equal(manager.release('task-1'), 1);
  t.equal(manager.release('task-1'), 0);
  await t.rejects(
    manager.reserve([{ name: 'file', count: 1 }], { isReserved: (group, id) => group === 'example/file/mock' && id === 'a' }),
    NoFreeDeviceError,
    'a free device held elsewhere (isReserved) is never picked',
  );
  t.same((await manager.reserve([{ name: 'file', count: 1 }])).devices[0]!.ids, ['a'], 'a is free again');

  await t.rejects(manager.reserve([{ name: 'exmaple/file/mock', count: 1 }]), {
    code: 'UNKNOWN_DEVICE',
    message:
      'no device group matches "exmaple/file/mock" (did you mean "example/file/mock"?); groups on this node: example/file/mock, fixture/scripted/x',
  });
  await t.rejects(manager.reserve([{ name: 'a/b/c/d', count: 1 }]), UnknownDeviceError);
  await t.rejects(manager.reserve([{ name: 'a/b/c/d', count: 1 }]), {
    message: /a device name is vendor\/type\/name, vendor\/type or type/,
  });

  t.equal(manager.release(second.id), 1);
  control.write({
    fingerprint: valid,
    reservation: {
      mounts: [{ taskPath: 'dev/x', hostPath: '/dev/null' }],
      devices: [{ taskPath: '/dev/x', hostPath: '/dev/null', permissions: 'rwx' }],
    },
  });
  const bad = await manager.reserve([{ name: 'scripted', count: 2 }]).catch((err: unknown) => err);
  t.type(bad, InvalidConfigError);
  t.equal(
    (bad as Error).message,
    'device plugin "scripted" returned an invalid reservation for fixture/scripted/x (s0, s1): /mounts/0/taskPath: must be an absolute path (got "dev/x"); /devices/0/permissions: must be one or more of "r", "w" and "m", each at most once (got "rwx")',
  );
  control.write({ fingerprint: valid });
  t.same(
    (await manager.reserve([{ name: 'scripted', count: 2 }])).devices[0]!.ids,
    ['s0', 's1'],
    'a failed reserve keeps nothing reserved',
  );
});

t.test('devices of a plugin that is down cannot be reserved', async (t) => {
  const control = script();
  control.write({ fingerprint: valid });
  const { loader, manager } = setup(
    t,
    { scripted: { config: { file: control.file } } },
    { fixtures: ['scripted'], supervision: { restartBackoff: '500ms', maxRestartBackoff: '500ms' } },
  );
  await manager.waitForFirstFingerprint(10_000);
  const restarted = new Promise((resolve) => loader.once('restarted', resolve));
  await loader.get('scripted').kill();
  await t.rejects(manager.reserve([{ name: 'fixture/scripted/x', count: 1 }]), {
    code: 'DEVICE_UNHEALTHY',
    message: /fixture\/scripted\/x has 0 healthy of 2 \(s0: unknown, withdrawn: device plugin crashed; restarting/,
  });
  await restarted;
  await until(() => pluginHealth(manager, 'scripted').health === 'healthy', 'back');
  t.same((await manager.reserve([{ name: 'fixture/scripted/x', count: 1 }])).devices[0]!.ids, ['s0']);
});

t.test('a manager with no device plugins answers at once', async (t) => {
  const { manager } = setup(t, {});
  await manager.waitForFirstFingerprint(10_000);
  await manager.waitForFirstStats(10_000);
  t.same(manager.devices(), []);
  t.same(manager.health(), []);
  await t.rejects(manager.reserve([{ name: 'gpu', count: 1 }]), { message: 'no device group matches "gpu"; groups on this node: none' });
  t.throws(() => new DeviceManager({ loader: new PluginLoader({ config: parseAgentConfig({}) }), statsIntervalMs: 0 }), RangeError);
});

t.test('close before start finishes is safe', async (t) => {
  const { manager } = setup(t, {});
  const starting = manager.start();
  await manager.close();
  await starting;
});
