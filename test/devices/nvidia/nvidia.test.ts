// The nvidia device plugin, in-process, against the fake nvidia-smi and its fixtures in
// test/fixtures/nvidia-smi (see its README). The recorded-* sets hold cells nvidia-smi printed on
// real GPUs (captured by a third party, nvidia_gpu_exporter, and reformatted to the form the plugin
// asks for); the synthetic-* sets are written by hand, for what no recording shows (several GPUs,
// two models, GPUs gone bad).
import { chmodSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import nvidiaDevicePlugin, { NvidiaConfig, controlNodes, type NvidiaOptions } from '../../../devices/nvidia/index.js';
import { groupName, readInventory, toGroups } from '../../../devices/nvidia/gpu-inventory.js';
import { readStats } from '../../../devices/nvidia/gpu-stats.js';
import { inventoryFields, queryArgs, runNvidiaSmi, statsFields } from '../../../devices/nvidia/nvidia-smi.js';
import { normalizeBusId, notAReading, splitRows } from '../../../devices/nvidia/smi-csv.js';
import { ContainerReservation, DeviceFingerprint, DeviceStats } from '../../../shared/device.js';
import { DeviceUnhealthyError, InvalidConfigError, UnknownDeviceError } from '../../../shared/errors.js';
import { compileSchema, parseWith } from '../../../shared/schema.js';

type Test = { teardown(fn: () => unknown): void };

const fixtures = fileURLToPath(new URL('../../fixtures/nvidia-smi/', import.meta.url));
const fake = path.join(fixtures, 'fake-nvidia-smi');
/** One real H200 (recorded): the happy path, and what the fake serves by default. */
const recordedSet = 'recorded-h200-590.48.01';
/** The UUID in every recorded set: the capturing tool masks the real one. */
const maskedUuid = 'GPU-00000000-0000-0000-0000-000000000000';
/** Two H200s (synthetic): several GPUs of one model, which no recording shows. */
const twoGpuSet = 'synthetic-2xH200';
const gpu0 = 'GPU-5f0c8d3e-2a41-4b7e-9c1d-3e8f6a2b7c90';
const gpu1 = 'GPU-a27e91b4-6d03-4f58-8e2a-91c7d4f0b315';
const forever = new AbortController().signal;
const work = mkdtempSync(path.join(tmpdir(), 'taskhost-nvidia-'));

const validFingerprint = compileSchema<DeviceFingerprint>(DeviceFingerprint);
const validStats = compileSchema<DeviceStats>(DeviceStats);
const validReservation = compileSchema<ContainerReservation>(ContainerReservation);

/** A configured plugin on the fake nvidia-smi; its log lines are collected, not printed. */
function newPlugin(t: Test, config: Partial<NvidiaConfig> = {}, options: NvidiaOptions = {}) {
  const lines: string[] = [];
  const plugin = nvidiaDevicePlugin({ log: (line) => lines.push(line), pathExists: () => false, ...options });
  plugin.setConfig({
    apiVersion: '1.0',
    config: parseWith(compileSchema<NvidiaConfig>(NvidiaConfig), { nvidiaSmi: fake, ...config }, 'config'),
    agent: { dataDir: work, pluginDataDir: work },
  });
  t.teardown(() => plugin.shutdown());
  return { plugin, lines };
}

/** Sets environment variables for the fake for the rest of the test. */
function fakeEnv(t: Test, vars: Record<string, string>): void {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  t.teardown(() => {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

/** The promise's value, or 'timeout' if it takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function firstOf<T>(stream: AsyncIterable<T>): Promise<T> {
  for await (const item of stream) return item;
  throw new Error('the stream ended without an item');
}

/** A fixture file as the fake prints it: without its comment lines. */
function fixture(file: string): string {
  return readFileSync(path.join(fixtures, file), 'utf8')
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n');
}

const h200Group = {
  vendor: 'nvidia',
  type: 'gpu',
  name: 'H200',
  devices: [
    { id: gpu0, healthy: true, locality: { pciBusId: '00000000:18:00.0' } },
    { id: gpu1, healthy: true, locality: { pciBusId: '00000000:2A:00.0' } },
  ],
  attributes: { model: { value: 'NVIDIA H200' }, memory: { value: 143771, unit: 'MiB' }, driver_version: { value: '550.90.07' } },
};

/**
 * What each recorded set must read as: the cells of its fixture header's "Cells as captured" line,
 * typed by hand from the capture (test/fixtures/nvidia-smi/README.md names each one's source).
 */
const recordedSets = [
  {
    set: 'recorded-h200-590.48.01',
    group: 'H200',
    model: 'NVIDIA H200',
    memoryMiB: 143771,
    pciBusId: '00000000:83:00.0',
    driver: '590.48.01',
    load: { utilization: 100, memoryUsed: 32362, temperature: 52, power: 627.4 },
  },
  {
    set: 'recorded-h100-mig-590.48.01',
    group: 'H100-80GB-HBM3',
    model: 'NVIDIA H100 80GB HBM3',
    memoryMiB: 81559,
    pciBusId: '00000000:00:09.0',
    driver: '590.48.01',
    // In MIG mode nvidia-smi has no whole-GPU utilization: "[N/A]", which must not read as 0 %.
    load: { utilization: 'N/A', memoryUsed: 11125, temperature: 53, power: 433.78 },
  },
  {
    set: 'recorded-l40s-595.80',
    group: 'L40S',
    model: 'NVIDIA L40S',
    memoryMiB: 46068,
    pciBusId: '00000000:01:00.0',
    driver: '595.80',
    load: { utilization: 9, memoryUsed: 1235, temperature: 54, power: 110.23 },
  },
] as const;

/** The group a recorded set's one GPU makes. */
function recordedGroup(r: (typeof recordedSets)[number]) {
  return {
    vendor: 'nvidia',
    type: 'gpu',
    name: r.group,
    devices: [{ id: maskedUuid, healthy: true, locality: { pciBusId: r.pciBusId } }],
    attributes: { model: { value: r.model }, memory: { value: r.memoryMiB, unit: 'MiB' }, driver_version: { value: r.driver } },
  };
}

/** A value as the plugin reports it: a number with its unit, or the reason it is not one, without. */
function reading(value: number | string, unit: string, description: string) {
  return typeof value === 'number' ? { value, unit, description } : { value, description };
}

t.test('config: defaults, and a fingerprint period too short to be sane is refused', async (t) => {
  t.same(parseWith(compileSchema(NvidiaConfig), {}, 'config'), { nvidiaSmi: 'nvidia-smi', fingerprintPeriod: '1m' });
  const plugin = nvidiaDevicePlugin();
  t.same(plugin.info(), { type: 'device', name: 'nvidia', pluginVersion: '0.1.0', apiVersions: ['1.0'] });
  t.equal(plugin.configSchema(), NvidiaConfig);
  const err = t.throws(() =>
    plugin.setConfig({
      apiVersion: '1.0',
      config: { nvidiaSmi: fake, fingerprintPeriod: '10ms' },
      agent: { dataDir: work, pluginDataDir: work },
    }),
  ) as InvalidConfigError;
  t.ok(err instanceof InvalidConfigError);
  t.same(
    err.errors.map((e) => e.path),
    ['/fingerprintPeriod'],
  );
  t.match(err.message, /at least 100ms, got "10ms"/);
});

t.test(`fingerprint of a real H200 (${recordedSet}): its UUID as id, memory in MiB, PCI locality, driver`, async (t) => {
  // No FAKE_NVIDIA_SMI_FIXTURE: the recorded H200 is what the fake serves by default.
  const { plugin, lines } = newPlugin(t);
  const fp = await firstOf(plugin.fingerprint(forever));
  t.same(fp, {
    groups: [
      {
        vendor: 'nvidia',
        type: 'gpu',
        name: 'H200',
        devices: [{ id: maskedUuid, healthy: true, locality: { pciBusId: '00000000:83:00.0' } }],
        attributes: { model: { value: 'NVIDIA H200' }, memory: { value: 143771, unit: 'MiB' }, driver_version: { value: '590.48.01' } },
      },
    ],
  });
  t.ok(validFingerprint(fp).ok, 'a valid DeviceFingerprint');
  t.same(lines, [`${fake} lists 1 GPU(s): 1x NVIDIA H200, driver 590.48.01`]);
});

t.test(`fingerprint of two H200s (${twoGpuSet}): one group for the model, its GPUs by index`, async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: twoGpuSet });
  const { plugin, lines } = newPlugin(t);
  const fp = await firstOf(plugin.fingerprint(forever));
  t.same(fp, { groups: [h200Group] });
  t.ok(validFingerprint(fp).ok, 'a valid DeviceFingerprint');
  t.same(lines, [`${fake} lists 2 GPU(s): 2x NVIDIA H200, driver 550.90.07`]);
});

t.test('fingerprint of two models: a group each, devices by index, names made safe', async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: 'synthetic-mixed' });
  const { plugin } = newPlugin(t);
  const fp = await firstOf(plugin.fingerprint(forever));
  t.ok(validFingerprint(fp).ok);
  t.same(
    fp.groups.map((g) => [g.name, g.attributes?.model?.value, g.attributes?.memory, g.devices.map((d) => d.locality?.pciBusId)]),
    [
      ['H200-NVL', 'NVIDIA H200 NVL', { value: 143771, unit: 'MiB' }, ['00000000:18:00.0', '00000000:5D:00.0']],
      ['RTX-6000-Ada-Generation', 'NVIDIA RTX 6000 Ada Generation', { value: 49140, unit: 'MiB' }, ['00000000:3B:00.0']],
    ],
  );
});

t.test('group names: the vendor prefix dropped, anything outside [A-Za-z0-9_.-] made "-"', async (t) => {
  const cases: [string, string][] = [
    ['NVIDIA H200', 'H200'],
    ['NVIDIA H200 NVL', 'H200-NVL'],
    ['NVIDIA A100-SXM4-80GB', 'A100-SXM4-80GB'],
    ['Tesla V100-SXM2-16GB', 'Tesla-V100-SXM2-16GB'],
    ['NVIDIA GeForce RTX 4070 Laptop GPU', 'GeForce-RTX-4070-Laptop-GPU'],
    ['  NVIDIA  (weird) name / x  ', 'weird-name-x'],
    ['NVIDIA', 'NVIDIA'],
    ['???', 'unknown'],
  ];
  for (const [model, name] of cases) t.equal(groupName(model), name, model);
});

t.test('CSV: values split on ", ", a stray ", " stays in the free-text field, other lines kept apart', async (t) => {
  const text =
    '0, GPU-a, NVIDIA Odd, Name, 100, 0000:01:00.0, 1.0\r\n\n1, GPU-b, NVIDIA X, 200, 0000:02:00.0, 1.0\nWARNING: infoROM is corrupted at gpu 0000:0B:00.0\n';
  t.same(splitRows(text, 6, 2), {
    rows: [
      ['0', 'GPU-a', 'NVIDIA Odd, Name', '100', '0000:01:00.0', '1.0'],
      ['1', 'GPU-b', 'NVIDIA X', '200', '0000:02:00.0', '1.0'],
    ],
    other: ['WARNING: infoROM is corrupted at gpu 0000:0B:00.0'],
  });
  t.same(splitRows('a, b, c, d', 3).other, ['a, b, c, d'], 'too many values and no free-text field: not a row');
  t.same(['[N/A]', '[Not Supported]', 'N/A', '[Unknown Error]', 'ERR!', '', '12'].map(notAReading), [
    'N/A',
    'N/A',
    'N/A',
    'Unknown Error',
    'ERR!',
    'empty',
    undefined,
  ]);
  t.equal(normalizeBusId('00000000:0B:00.0'), normalizeBusId('0000:0b:00.0'));
  t.equal(normalizeBusId('not a bus id'), 'not a bus id');
});

t.test(`stats of a real H200 under load (${recordedSet}): utilization as the summary, memory MiB, temperature C, power W`, async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: recordedSet });
  const { plugin } = newPlugin(t);
  await firstOf(plugin.fingerprint(forever));
  const sample = await firstOf(plugin.stats(1000, forever));
  t.ok(validStats(sample).ok, 'a valid DeviceStats');
  t.same(sample.groups, [
    {
      vendor: 'nvidia',
      type: 'gpu',
      name: 'H200',
      instances: {
        [maskedUuid]: {
          summary: { value: 100, unit: '%', description: 'GPU utilization' },
          stats: {
            'memory.used': { value: 32362, unit: 'MiB', description: 'memory in use' },
            'temperature.gpu': { value: 52, unit: 'C', description: 'GPU core temperature' },
            'power.draw': { value: 627.4, unit: 'W', description: 'board power draw' },
          },
        },
      },
    },
  ]);
});

t.test(`stats of two H200s (${twoGpuSet}): one instance per GPU, each its own readings`, async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: twoGpuSet });
  const { plugin } = newPlugin(t);
  await firstOf(plugin.fingerprint(forever));
  const sample = await firstOf(plugin.stats(1000, forever));
  t.ok(validStats(sample).ok, 'a valid DeviceStats');
  t.ok(Math.abs(sample.timestamp - Date.now()) < 5_000, 'timestamp in unix ms');
  t.same(sample.groups, [
    {
      vendor: 'nvidia',
      type: 'gpu',
      name: 'H200',
      instances: {
        [gpu0]: {
          summary: { value: 0, unit: '%', description: 'GPU utilization' },
          stats: {
            'memory.used': { value: 1, unit: 'MiB', description: 'memory in use' },
            'temperature.gpu': { value: 31, unit: 'C', description: 'GPU core temperature' },
            'power.draw': { value: 74.52, unit: 'W', description: 'board power draw' },
          },
        },
        [gpu1]: {
          summary: { value: 87, unit: '%', description: 'GPU utilization' },
          stats: {
            'memory.used': { value: 70211, unit: 'MiB', description: 'memory in use' },
            'temperature.gpu': { value: 58, unit: 'C', description: 'GPU core temperature' },
            'power.draw': { value: 512.34, unit: 'W', description: 'board power draw' },
          },
        },
      },
    },
  ]);
});

t.test('stats: readings nvidia-smi cannot make are strings ("[N/A]" becomes "N/A"), without a unit', async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: 'synthetic-mixed' });
  const { plugin } = newPlugin(t);
  // No fingerprint first: stats look the GPUs up themselves.
  const sample = await firstOf(plugin.stats(1000, forever));
  t.ok(validStats(sample).ok);
  const rtx = sample.groups.find((g) => g.name === 'RTX-6000-Ada-Generation')!;
  const [only] = Object.values(rtx.instances);
  t.same(only!.stats?.['temperature.gpu'], { value: 'N/A', description: 'GPU core temperature' });
  t.same(only!.stats?.['power.draw'], { value: 'N/A', description: 'board power draw' });
  const nvl = sample.groups.find((g) => g.name === 'H200-NVL')!;
  t.same(nvl.instances['GPU-0b6e2f71-93c4-4a0d-b5e8-6c1f7a9d2e43']!.summary, { value: 'N/A', description: 'GPU utilization' });
  const degraded = readStats(
    fixture('synthetic-2xH200-degraded.stats.csv'),
    readInventory(fixture(`${twoGpuSet}.fingerprint.csv`), '', []).gpus,
    1,
  );
  t.same(degraded.stats.groups[0]!.instances[gpu0]!.summary, { value: 'Unknown Error', description: 'GPU utilization' });
  t.same(degraded.unknown, [], 'the lost GPU’s error line is not a row');
});

t.test('stats come at once, then on the interval’s schedule, and end when the signal aborts', async (t) => {
  const { plugin } = newPlugin(t);
  const stop = new AbortController();
  const at: number[] = [];
  const t0 = performance.now();
  for await (const sample of plugin.stats(100, stop.signal)) {
    at.push(performance.now() - t0);
    t.equal(sample.groups.length, 1);
    if (at.length === 4) stop.abort();
  }
  t.equal(at.length, 4, 'nothing after the abort');
  t.ok(at[0]! < 1_000, `the first at once (${Math.round(at[0]!)}ms)`);
  t.ok(
    at.every((ms, k) => ms >= k * 100 - 5),
    `sample k not before k intervals (at ${at.map(Math.round).join(', ')}ms)`,
  );
  await t.rejects(firstOf(plugin.stats(0, forever)), InvalidConfigError);
  await t.rejects(firstOf(plugin.stats(-5, forever)), /positive number of ms, got -5/);
});

t.test('stats from an nvidia-smi slower than the interval: ticks it overran are skipped, not made up', async (t) => {
  const slow = path.join(work, 'slow-nvidia-smi');
  writeFileSync(slow, `#!/bin/sh\nsleep 0.25\nexec "${fake}" "$@"\n`);
  chmodSync(slow, 0o755);
  const { plugin } = newPlugin(t, { nvidiaSmi: slow });
  const stop = new AbortController();
  const at: number[] = [];
  for await (const sample of plugin.stats(50, stop.signal)) {
    at.push(performance.now());
    t.equal(sample.groups.length, 1);
    if (at.length === 3) stop.abort();
  }
  const gaps = at.slice(1).map((ms, i) => ms - at[i]!);
  t.ok(
    gaps.every((ms) => ms >= 200),
    `one sample per run, no burst to catch up (${gaps.map(Math.round).join(', ')}ms apart)`,
  );
});

t.test('reserve: NVIDIA_VISIBLE_DEVICES of the UUIDs, each GPU’s /dev/nvidia<index>, the control nodes that exist', async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: twoGpuSet });
  const present = new Set(['/dev/nvidiactl', '/dev/nvidia-uvm']);
  const { plugin } = newPlugin(t, {}, { pathExists: (p) => present.has(p) });
  // No fingerprint first: reserve looks the GPUs up itself (the worker may just have restarted).
  const reservation = await plugin.reserve([gpu1, gpu0, gpu1]);
  t.same(reservation, {
    envs: { NVIDIA_VISIBLE_DEVICES: `${gpu1},${gpu0}` },
    mounts: [],
    devices: [
      { taskPath: '/dev/nvidia1', hostPath: '/dev/nvidia1', permissions: 'rw' },
      { taskPath: '/dev/nvidia0', hostPath: '/dev/nvidia0', permissions: 'rw' },
      { taskPath: '/dev/nvidiactl', hostPath: '/dev/nvidiactl', permissions: 'rw' },
      { taskPath: '/dev/nvidia-uvm', hostPath: '/dev/nvidia-uvm', permissions: 'rw' },
    ],
  });
  t.ok(validReservation(reservation).ok, 'a valid ContainerReservation');
  t.same(controlNodes, ['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools']);
  const all = newPlugin(t, {}, { pathExists: () => true }).plugin;
  t.same(
    (await all.reserve([gpu0])).devices?.map((d) => d.hostPath),
    ['/dev/nvidia0', ...controlNodes],
  );
});

t.test('reserve: unknown ids are UnknownDeviceError naming the GPUs it knows; no ids at all is refused', async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: twoGpuSet });
  const { plugin } = newPlugin(t);
  const err = (await plugin.reserve([gpu0, 'GPU-nope']).catch((e: unknown) => e)) as UnknownDeviceError;
  t.ok(err instanceof UnknownDeviceError);
  t.equal(err.code, 'UNKNOWN_DEVICE');
  t.equal(err.message, `nvidia has no GPU "GPU-nope"; it knows ${gpu0} (index 0), ${gpu1} (index 1)`);
  t.same(err.details, { unknown: ['GPU-nope'], known: [gpu0, gpu1] });
  await t.rejects(plugin.reserve([]), InvalidConfigError);
});

t.test('no nvidia-smi: no groups, one clean log line, and it keeps looking', async (t) => {
  for (const nvidiaSmi of [path.join(work, 'no', 'nvidia-smi'), 'nvidia-smi-not-installed-here']) {
    const { plugin, lines } = newPlugin(t, { nvidiaSmi, fingerprintPeriod: '100ms' });
    const stop = new AbortController();
    const stream = plugin.fingerprint(stop.signal)[Symbol.asyncIterator]();
    t.same((await stream.next()).value, { groups: [] }, `${nvidiaSmi}: an empty list, not an error`);
    const next = stream.next();
    t.equal(await within(next, 350), 'timeout', 'nothing changed, so nothing more is sent');
    stop.abort();
    t.same(await next, { done: true, value: undefined });
    t.equal(lines.length, 1, 'said once, not once per look');
    t.match(lines[0], nvidiaSmi.includes('/') ? `nvidia-smi not found at ${nvidiaSmi}` : /nvidia-smi not found on PATH/);
    t.match(lines[0], /no NVIDIA GPUs to report \(install the NVIDIA driver utilities, or set nvidiaSmi/);
    t.same((await firstOf(plugin.stats(100, forever))).groups, []);
    const err = (await plugin.reserve(['GPU-x']).catch((e: unknown) => e)) as Error;
    t.match(err, { code: 'UNKNOWN_DEVICE', message: /it knows none: nvidia-smi lists no GPUs/ });
    t.equal(lines.length, 1);
  }
});

t.test('nvidia-smi fails (driver not loaded, exit 9): no groups, its message in the log once', async (t) => {
  // The real tool prints this message on stdout and on stderr: the log line has it once.
  fakeEnv(t, { FAKE_NVIDIA_SMI_FAIL: 'driver' });
  const { plugin, lines } = newPlugin(t);
  t.same(await firstOf(plugin.fingerprint(forever)), { groups: [] });
  t.same(lines, [
    `${fake} exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.: reporting no GPUs`,
  ]);
  t.same((await firstOf(plugin.stats(100, forever))).groups, []);
  t.same(lines.slice(1), [
    `stats: ${fake} exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.`,
  ]);
});

t.test(
  'nvidia-smi without its NVML library (exit 12), or with a driver/library mismatch (exit 18): no groups, why in the log',
  async (t) => {
    const cases = [
      {
        fail: 'nvml',
        said:
          "exited with code 12: NVIDIA-SMI couldn't find libnvidia-ml.so library in your system. Please make sure that the NVIDIA Display Driver is properly installed and present in your system. " +
          'Please also try adding directory that contains libnvidia-ml.so to your system PATH.',
      },
      { fail: 'mismatch', said: 'exited with code 18: Failed to initialize NVML: Driver/library version mismatch' },
    ];
    fakeEnv(t, { FAKE_NVIDIA_SMI_FAIL: '' });
    for (const { fail, said } of cases) {
      process.env.FAKE_NVIDIA_SMI_FAIL = fail;
      const { plugin, lines } = newPlugin(t);
      t.same(await firstOf(plugin.fingerprint(forever)), { groups: [] }, `${fail}: undetected, not an error`);
      t.same(lines, [`${fake} ${said}: reporting no GPUs`], `${fail}: the tool's own words, both lines of them, in one log line`);
      t.same((await firstOf(plugin.stats(100, forever))).groups, []);
      t.same(lines.slice(1), [`stats: ${fake} ${said}`]);
      const err = (await plugin.reserve([maskedUuid]).catch((e: unknown) => e)) as Error;
      t.match(err, { code: 'UNKNOWN_DEVICE', message: /it knows none: nvidia-smi lists no GPUs/ }, `${fail}: nothing to reserve`);
    }
  },
);

t.test('fingerprint is sent only on change; a GPU gone bad stays listed, unhealthy, with the reason', async (t) => {
  const runs = path.join(work, 'runs.log');
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: twoGpuSet, FAKE_NVIDIA_SMI_LOG: runs });
  writeFileSync(runs, '');
  const { plugin, lines } = newPlugin(t, { fingerprintPeriod: '100ms' });
  const stop = new AbortController();
  t.teardown(() => stop.abort());
  const stream = plugin.fingerprint(stop.signal)[Symbol.asyncIterator]();
  t.same((await stream.next()).value, { groups: [h200Group] });
  let next = stream.next();
  // Two more periods' worth of asking, however long a busy machine takes to get there.
  const asked = () => readFileSync(runs, 'utf8').trim().split('\n').length;
  for (const deadline = Date.now() + 60_000; asked() < 3 && Date.now() < deadline;) await sleep(50);
  t.ok(asked() >= 3, 'nvidia-smi was asked again each period');
  t.equal(await within(next, 0), 'timeout', 'yet, the same GPUs: nothing sent');

  process.env.FAKE_NVIDIA_SMI_FIXTURE = 'synthetic-2xH200-degraded';
  const degraded = (await next).value as DeviceFingerprint;
  t.ok(validFingerprint(degraded).ok);
  t.same(degraded.groups[0]!.devices, [
    {
      id: gpu0,
      healthy: false,
      healthDescription: 'nvidia-smi could not read it: memory.total is N/A',
      locality: { pciBusId: '00000000:18:00.0' },
    },
    {
      id: gpu1,
      healthy: false,
      healthDescription: 'Unable to determine the device handle for GPU 0000:2A:00.0: GPU is lost. Reboot the system to recover this GPU',
      locality: { pciBusId: '00000000:2A:00.0' },
    },
  ]);
  t.same(degraded.groups[0]!.attributes?.memory, { value: 143771, unit: 'MiB' }, 'the lost GPU keeps what was known of it');
  t.match(lines, [
    /lists 2 GPU/,
    /exited with code 15, listing 2 GPU\(s\): 2x NVIDIA H200, driver 550\.90\.07, 2 unhealthy/,
    /GPU GPU-5f0c.* is unhealthy: nvidia-smi could not read it/,
    /GPU GPU-a27e.* is unhealthy: Unable to determine/,
  ]);
  const sick = (await plugin.reserve([gpu1]).catch((e: unknown) => e)) as DeviceUnhealthyError;
  t.ok(sick instanceof DeviceUnhealthyError);
  t.match(sick.message, /GPU GPU-a27e.* is unhealthy: Unable to determine the device handle/);

  next = stream.next();
  process.env.FAKE_NVIDIA_SMI_FIXTURE = twoGpuSet;
  t.same((await next).value, { groups: [h200Group] }, 'healthy again');
  t.match(lines.slice(-3), [/lists 2 GPU/, /GPU-5f0c.* is healthy again/, /GPU-a27e.* is healthy again/]);
});

t.test('nvidia-smi failing after it listed GPUs (a driver upgrade half done): they stay listed, unhealthy, and recover', async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: twoGpuSet });
  const { plugin, lines } = newPlugin(t, { fingerprintPeriod: '100ms' });
  const stop = new AbortController();
  t.teardown(() => stop.abort());
  const stream = plugin.fingerprint(stop.signal)[Symbol.asyncIterator]();
  t.same((await stream.next()).value, { groups: [h200Group] });
  process.env.FAKE_NVIDIA_SMI_FAIL = 'mismatch';
  t.teardown(() => delete process.env.FAKE_NVIDIA_SMI_FAIL);
  const broken = (await stream.next()).value as DeviceFingerprint;
  const why = `${fake} exited with code 18: Failed to initialize NVML: Driver/library version mismatch`;
  t.same(
    broken.groups[0]!.devices.map((d) => [d.id, d.healthy, d.healthDescription]),
    [
      [gpu0, false, why],
      [gpu1, false, why],
    ],
    'both GPUs still listed, each saying why it is unhealthy',
  );
  t.equal(lines.at(-1), `${why}: reporting its 2 GPU(s) as unhealthy until it answers`);
  await t.rejects(plugin.reserve([gpu0]), { code: 'DEVICE_UNHEALTHY', message: /Driver\/library version mismatch/ });
  delete process.env.FAKE_NVIDIA_SMI_FAIL;
  t.same((await stream.next()).value, { groups: [h200Group] }, 'healthy again once nvidia-smi answers');
});

t.test('a hung nvidia-smi is killed after the query timeout, and the GPUs it knew turn unhealthy', async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: twoGpuSet });
  const { plugin, lines } = newPlugin(t, { fingerprintPeriod: '100ms' }, { queryTimeoutMs: 300 });
  const stop = new AbortController();
  t.teardown(() => stop.abort());
  const stream = plugin.fingerprint(stop.signal)[Symbol.asyncIterator]();
  await stream.next();
  process.env.FAKE_NVIDIA_SMI_FAIL = 'hang';
  t.teardown(() => delete process.env.FAKE_NVIDIA_SMI_FAIL);
  const hung = (await stream.next()).value as DeviceFingerprint;
  t.same(
    hung.groups[0]!.devices.map((d) => [d.healthy, d.healthDescription]),
    [
      [false, `${fake} did not answer within 300ms and was killed`],
      [false, `${fake} did not answer within 300ms and was killed`],
    ],
  );
  t.match(lines.at(-1), /did not answer within 300ms and was killed: reporting its 2 GPU\(s\) as unhealthy until it answers/);
  const sample = await firstOf(plugin.stats(100, forever));
  t.same(sample.groups, [], 'no stats from an nvidia-smi that does not answer');
  t.match(lines.at(-1), /^stats: .*did not answer within 300ms/);
  const fresh = newPlugin(t, {}, { queryTimeoutMs: 200 });
  t.same(await firstOf(fresh.plugin.fingerprint(forever)), { groups: [] }, 'hung from the start: no GPUs known, none reported');
  t.same(fresh.lines, [`${fake} did not answer within 200ms and was killed: reporting no GPUs`]);
});

t.test('shutdown ends the streams, a hung nvidia-smi included', async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FAIL: 'hang' });
  const { plugin, lines } = newPlugin(t);
  const pending = plugin.fingerprint(forever)[Symbol.asyncIterator]().next();
  await new Promise((resolve) => setTimeout(resolve, 100));
  plugin.shutdown();
  t.same(await pending, { done: true, value: undefined });
  t.same(lines, [], 'being stopped is not worth a log line');
});

t.test('shutdown ends the streams', async (t) => {
  const { plugin } = newPlugin(t, { fingerprintPeriod: '100ms' });
  const fingerprints = plugin.fingerprint(forever)[Symbol.asyncIterator]();
  await fingerprints.next();
  const stats = plugin.stats(50, forever)[Symbol.asyncIterator]();
  await stats.next();
  const pending = [fingerprints.next(), stats.next()];
  plugin.shutdown();
  t.same(await Promise.all(pending), [
    { done: true, value: undefined },
    { done: true, value: undefined },
  ]);
});

t.test('running nvidia-smi: a program that cannot run, or is killed, is a failure with the reason', async (t) => {
  const notExecutable = path.join(work, 'not-executable');
  writeFileSync(notExecutable, '#!/bin/sh\necho hi\n');
  chmodSync(notExecutable, 0o644);
  t.match(await runNvidiaSmi(notExecutable, [], { timeoutMs: 5_000 }), { kind: 'failed', exitCode: null, message: /could not be run/ });
  const suicidal = path.join(work, 'suicidal');
  writeFileSync(suicidal, '#!/bin/sh\nkill -SEGV $$\n');
  chmodSync(suicidal, 0o755);
  t.match(await runNvidiaSmi(suicidal, [], { timeoutMs: 5_000 }), { kind: 'failed', message: /was killed by SIGSEGV/ });
  const aborted = new AbortController();
  aborted.abort();
  t.same(await runNvidiaSmi(fake, [], { timeoutMs: 5_000, signal: aborted.signal }), { kind: 'cancelled' });
  const later = new AbortController();
  const run = runNvidiaSmi('sleep', ['5'], { timeoutMs: 10_000, signal: later.signal });
  later.abort();
  t.same(await run, { kind: 'cancelled' });
});

t.test('inventory edge cases: no UUID, a row twice, a lost GPU never seen, other messages', async (t) => {
  const before = readInventory(fixture(`${twoGpuSet}.fingerprint.csv`), '', []).gpus;
  const text = [
    `0, [Unknown Error], NVIDIA H200, 143771, 00000000:18:00.0, 550.90.07`,
    `5, [Unknown Error], NVIDIA H200, 143771, 00000000:99:00.0, 550.90.07`,
    `1, ${gpu1}, ERR!, 143771, 00000000:2A:00.0, 550.90.07`,
    `1, ${gpu1}, NVIDIA H200, 143771, 00000000:2A:00.0, 550.90.07`,
    'Unable to determine the device handle for GPU0000:77:00.0: Unknown Error',
  ].join('\n');
  const { gpus, notes } = readInventory(text, 'WARNING: infoROM is corrupted at gpu 0000:2A:00.0\n', before);
  t.same(
    gpus.map((g) => [g.id, g.index, g.model, g.healthy, g.healthDescription]),
    [
      [gpu0, 0, 'NVIDIA H200', false, 'nvidia-smi could not read it: uuid is Unknown Error'],
      [gpu1, 1, 'NVIDIA H200', false, 'nvidia-smi could not read it: name is ERR!'],
    ],
    'a GPU known by its bus id keeps its UUID; an unreadable name keeps the known model',
  );
  t.same(notes, [
    'a GPU at index 5 (PCI 00000000:99:00.0) reports no UUID ([Unknown Error]): it is left out until it does',
    `nvidia-smi listed GPU ${gpu1} twice: the second row is ignored`,
    'nvidia-smi lost a GPU it never listed: Unable to determine the device handle for GPU0000:77:00.0: Unknown Error',
    'nvidia-smi said: WARNING: infoROM is corrupted at gpu 0000:2A:00.0',
  ]);
  const odd = readInventory('[N/A], GPU-odd, [N/A], abc, [N/A], [N/A]\nsome, message, that, has, six, parts\n', '', []);
  t.same(odd.gpus, [
    {
      id: 'GPU-odd',
      model: 'unknown',
      healthy: false,
      healthDescription:
        'nvidia-smi could not read it: index is N/A, name is N/A, pci.bus_id is N/A, driver_version is N/A, memory.total "abc" is not a number',
    },
  ]);
  t.same(odd.notes, ['nvidia-smi said: some, message, that, has, six, parts']);
  t.same(toGroups(odd.gpus), [
    {
      vendor: 'nvidia',
      type: 'gpu',
      name: 'unknown',
      devices: [{ id: 'GPU-odd', healthy: false, healthDescription: odd.gpus[0]!.healthDescription }],
      attributes: { model: { value: 'unknown' } },
    },
  ]);
});

t.test('every recorded set: the plugin reports the cells nvidia-smi printed on that GPU', async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: recordedSet });
  for (const r of recordedSets) {
    process.env.FAKE_NVIDIA_SMI_FIXTURE = r.set;
    const { plugin, lines } = newPlugin(t);
    const fp = await firstOf(plugin.fingerprint(forever));
    t.same(fp, { groups: [recordedGroup(r)] }, `${r.set}: group ${r.group}, ${r.memoryMiB} MiB, PCI ${r.pciBusId}, driver ${r.driver}`);
    t.ok(validFingerprint(fp).ok, `${r.set}: a valid DeviceFingerprint`);
    t.same(lines, [`${fake} lists 1 GPU(s): 1x ${r.model}, driver ${r.driver}`], `${r.set}: one log line, no GPU unhealthy`);

    const sample = await firstOf(plugin.stats(1000, forever));
    t.ok(validStats(sample).ok, `${r.set}: valid DeviceStats`);
    const { utilization, memoryUsed, temperature, power } = r.load;
    t.same(
      sample.groups,
      [
        {
          vendor: 'nvidia',
          type: 'gpu',
          name: r.group,
          instances: {
            [maskedUuid]: {
              summary: reading(utilization, '%', 'GPU utilization'),
              stats: {
                'memory.used': reading(memoryUsed, 'MiB', 'memory in use'),
                'temperature.gpu': reading(temperature, 'C', 'GPU core temperature'),
                'power.draw': reading(power, 'W', 'board power draw'),
              },
            },
          },
        },
      ],
      `${r.set}: under load, ${utilization} utilization, ${memoryUsed} MiB used, ${temperature} C, ${power} W`,
    );

    t.same(
      await plugin.reserve([maskedUuid]),
      {
        envs: { NVIDIA_VISIBLE_DEVICES: maskedUuid },
        mounts: [],
        devices: [{ taskPath: '/dev/nvidia0', hostPath: '/dev/nvidia0', permissions: 'rw' }],
      },
      `${r.set}: its GPU is reservable, as /dev/nvidia0`,
    );
  }
});

t.test('the H100 in MIG mode reports its utilization as unavailable, not as 0 %', async (t) => {
  fakeEnv(t, { FAKE_NVIDIA_SMI_FIXTURE: 'recorded-h100-mig-590.48.01' });
  const { plugin } = newPlugin(t);
  const sample = await firstOf(plugin.stats(1000, forever));
  const summary = sample.groups[0]!.instances[maskedUuid]!.summary;
  t.same(summary, { value: 'N/A', description: 'GPU utilization' });
  t.not(summary.value, 0);
  t.notOk('unit' in summary, 'no % on a value that is not a number');
});

t.test('recorded fixtures say where they come from, and hold exactly the captured cells without units', async (t) => {
  const files = readdirSync(fixtures).filter((f) => /^recorded-.*\.(fingerprint|stats)\.csv$/.test(f));
  const thirdParty = new Set<string>();
  for (const file of files) {
    const text = readFileSync(path.join(fixtures, file), 'utf8');
    const comments = text.split('\n').filter((l) => l.startsWith('#'));
    const rows = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    if (/^# RECORDED on .* by scripts\/record-nvidia-smi\.sh\./.test(comments[0] ?? '')) continue; // our own recording
    thirdParty.add(file.replace(/\.(fingerprint|stats)\.csv$/, ''));
    t.match(comments[0], /^# RECORDED BY A THIRD PARTY on a real GPU, not on our machines, and NOT synthetic/, `${file}: says what it is`);
    const header = comments.join('\n');
    t.match(header, 'https://github.com/utkuozdemir/nvidia_gpu_exporter (MIT licence', `${file}: names the source and its licence`);
    t.match(
      header,
      /file internal\/captures\/linux-x86_64__[\w.-]+\.txt\n#\s+at commit e656cd81a180e7e0e7862b53c9acd4c2fb0f590b/,
      `${file}: names the file and commit`,
    );
    t.match(header, /section \(under load\)|"idle :: query-gpu" section/, `${file}: names the capture state`);
    t.match(header, "The UUID is the collector's mask", `${file}: says the UUID is masked`);
    t.match(header, 'reformatted them to\n# the `noheader,nounits` form', `${file}: says the reformatting is ours`);
    const captured = comments.find((l) => l.startsWith('# Cells as captured: '))?.slice('# Cells as captured: '.length);
    t.ok(captured, `${file}: quotes the cells as captured`);
    t.equal(rows.length, 1, `${file}: one GPU, one row`);
    const withoutUnits = captured!
      .split(', ')
      .map((cell) => cell.replace(/ (MiB|%|W)$/, ''))
      .join(', ');
    t.equal(rows[0], withoutUnits, `${file}: the row is the captured cells, units dropped`);
    const query = comments.find((l) => l.startsWith('# Query: '));
    const fields = file.endsWith('.fingerprint.csv') ? inventoryFields : statsFields;
    t.equal(query, `# Query: nvidia-smi ${queryArgs(fields).join(' ')}`, `${file}: the query the plugin runs`);
  }
  t.same([...thirdParty].sort(), recordedSets.map((r) => r.set).sort(), 'every third-party set has its expected values above');
});

t.test('every fixture set in test/fixtures/nvidia-smi (synthetic or recorded) reads into valid groups and stats', async (t) => {
  const sets = readdirSync(fixtures)
    .filter((f) => f.endsWith('.fingerprint.csv'))
    .map((f) => f.replace(/\.fingerprint\.csv$/, ''));
  t.ok(sets.includes(recordedSet) && sets.includes(twoGpuSet));
  for (const set of sets) {
    const { gpus } = readInventory(fixture(`${set}.fingerprint.csv`), '', []);
    const fp = { groups: toGroups(gpus) };
    t.ok(validFingerprint(fp).ok, `${set}: a valid fingerprint`);
    const ids = gpus.map((g) => g.id);
    t.equal(new Set(ids).size, ids.length, `${set}: unique ids`);
    const { stats, unknown } = readStats(fixture(`${set}.stats.csv`), gpus, Date.now());
    t.ok(validStats(stats).ok, `${set}: valid stats`);
    t.same(unknown, [], `${set}: stats only for GPUs the inventory lists`);
  }
});

t.test('scripts/record-nvidia-smi.sh runs exactly the queries the plugin runs', async (t) => {
  const script = readFileSync(new URL('../../../scripts/record-nvidia-smi.sh', import.meta.url), 'utf8');
  for (const fields of [inventoryFields, statsFields]) {
    for (const arg of queryArgs(fields)) t.ok(script.includes(arg), `the script passes ${arg}`);
  }
  const fakeText = readFileSync(fake, 'utf8');
  t.ok(fakeText.includes(inventoryFields.join(',')) && fakeText.includes(statsFields.join(',')), 'and so does the fake');
});
