// The device conformance suite: the nvidia plugin on the fake nvidia-smi passes it, on every
// recorded nvidia-smi set (output of real GPUs, see test/fixtures/nvidia-smi/README.md); a broken
// device plugin fails it, each failure saying what to fix; `taskhost conformance` picks the
// suite by the plugin's type.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import t from 'tap';
import { fingerprintProblems, reservationProblems, runDeviceConformance } from '../../conformance/device-conformance.js';
import type { ConformanceReport } from '../../conformance/check-runner.js';
import { runCli } from '../helpers/run-cli.js';

const quiet = pino({ level: 'silent' });
const fakeConfig = fileURLToPath(new URL('../fixtures/nvidia-smi/plugin-config.json', import.meta.url));
const nvidiaFixtures = fileURLToPath(new URL('../fixtures/nvidia-smi/', import.meta.url));
const broken = fileURLToPath(new URL('../fixtures/device-plugins/broken-device', import.meta.url));
const nvidiaDir = fileURLToPath(new URL('../../devices/nvidia', import.meta.url));
const work = mkdtempSync(path.join(tmpdir(), 'taskhost-device-conformance-test-'));

const checks = [
  'loads through the plugin loader as a device plugin',
  'accepts the config it is tested with',
  'implements fingerprint, reserve and stats',
  'fingerprint() reports valid device groups at once',
  'reserve() of known devices returns a valid reservation',
  'reserve() of an unknown id is rejected with UNKNOWN_DEVICE',
  'stats() streams at the interval',
  'stats() samples are valid DeviceStats',
  'stats() reports only fingerprinted devices',
  'fingerprint() and stats() settle when their signal aborts',
  'closing its streams leaves no timers or handles behind',
  'shutdown() leaves no timers or handles behind',
  'nothing it spawned is left running',
];

function byName(report: ConformanceReport): Record<string, { status: string; message?: string }> {
  return Object.fromEntries(report.checks.map((c) => [c.name, c]));
}

/**
 * Sets the fake nvidia-smi's environment for the rest of the test (the plugin's worker and the
 * fake it runs inherit it), with a fresh log of the fake's runs: "<set>: <arguments>" per run.
 */
function fakeNvidiaSmi(t: { teardown(fn: () => unknown): void }, fixture?: string): () => string[] {
  const log = path.join(mkdtempSync(path.join(work, 'fake-runs-')), 'runs.log');
  const vars = { FAKE_NVIDIA_SMI_LOG: log, FAKE_NVIDIA_SMI_FIXTURE: fixture };
  const before = { FAKE_NVIDIA_SMI_LOG: process.env.FAKE_NVIDIA_SMI_LOG, FAKE_NVIDIA_SMI_FIXTURE: process.env.FAKE_NVIDIA_SMI_FIXTURE };
  const set = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  set(vars);
  t.teardown(() => set(before));
  writeFileSync(log, '');
  return () => readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

const inventoryQuery = ': --query-gpu=index,uuid,name,memory.total,pci.bus_id,driver_version --format=csv,noheader,nounits';
const statsQuery = ': --query-gpu=uuid,utilization.gpu,memory.used,temperature.gpu,power.draw --format=csv,noheader,nounits';

t.test('nvidia on the fake nvidia-smi passes every check, on the recorded H200 it serves by default', async (t) => {
  const runs = fakeNvidiaSmi(t);
  const seen: string[] = [];
  const report = await runDeviceConformance({
    target: 'nvidia',
    pluginConfigFile: fakeConfig,
    logger: quiet,
    onCheck: (c) => seen.push(c.name),
  });
  t.same(
    report.checks.map((c) => [c.name, c.status, c.message]),
    checks.map((name) => [name, 'pass', undefined]),
  );
  t.same(seen, checks);
  t.match(report, {
    plugin: { name: 'nvidia', version: '0.1.0', apiVersion: '1.0', source: 'builtin', dir: nvidiaDir },
    passed: 13,
    failed: 0,
    skipped: 0,
  });
  const served = new Set(runs());
  t.same(
    [...served].sort(),
    [`recorded-h200-590.48.01${inventoryQuery}`, `recorded-h200-590.48.01${statsQuery}`],
    'both queries answered from the recorded H200',
  );
});

t.test('nvidia passes every check on every recorded nvidia-smi set', async (t) => {
  const sets = readdirSync(nvidiaFixtures)
    .filter((f) => /^recorded-.*\.fingerprint\.csv$/.test(f))
    .map((f) => f.replace(/\.fingerprint\.csv$/, ''))
    .sort();
  t.ok(sets.length >= 3, `the recorded sets: ${sets.join(', ')}`);
  for (const set of sets) {
    const runs = fakeNvidiaSmi(t, set);
    const report = await runDeviceConformance({ target: 'nvidia', pluginConfigFile: fakeConfig, logger: quiet });
    t.same(
      report.checks.filter((c) => c.status !== 'pass').map((c) => [c.name, c.status, c.message]),
      [],
      `${set}: no check failed or skipped`,
    );
    t.match(report, { passed: 13, failed: 0, skipped: 0 }, `${set}: 13 passed`);
    t.same([...new Set(runs())].sort(), [`${set}${inventoryQuery}`, `${set}${statsQuery}`], `${set}: both queries answered from it`);
  }
});

t.test('taskhost conformance picks the device suite for a device plugin, by name or by folder', async (t) => {
  const byName = await runCli(['conformance', 'nvidia', '--plugin-config', fakeConfig]);
  t.equal(byName.code, 0, byName.stdout);
  t.match(byName.stdout, /\n {2}ok {4}reserve\(\) of an unknown id is rejected with UNKNOWN_DEVICE \(\d+ms\)\n/);
  t.match(byName.stdout, /nvidia, version 0\.1\.0, API 1\.0, builtin: 13 passed, 0 failed, 0 skipped\n$/);
  const byFolder = await runCli(['conformance', broken, '--json']);
  t.equal(byFolder.code, 1);
  t.match(JSON.parse(byFolder.stdout), { plugin: { name: 'broken-device', source: 'path' }, failed: 6 });
  const driver = await runCli(['conformance', 'raw_exec', '--plugin-config', fakeConfig]);
  t.equal(driver.code, 2);
  t.match(driver.stderr, /--plugin-config is for device plugins/);
});

t.test('nvidia with its own conformance.json (the real nvidia-smi, if any) fails nothing', async (t) => {
  // On a machine without nvidia-smi the plugin reports no GPUs, so the reserve check is skipped
  // (saying why); on a GPU machine every check runs on the real GPUs.
  const report = await runDeviceConformance({ target: 'nvidia', logger: quiet });
  t.equal(report.failed, 0, JSON.stringify(report.checks.filter((c) => c.status === 'fail')));
  const reserve = byName(report)['reserve() of known devices returns a valid reservation']!;
  if (reserve.status === 'skip')
    t.match(reserve.message, /reported no healthy devices, so there is nothing to reserve; test it with a config that finds some/);
});

t.test('a broken device plugin fails, each failure saying what to fix', async (t) => {
  const report = await runDeviceConformance({ target: broken, logger: quiet });
  const got = byName(report);
  t.same(
    report.checks.map((c) => c.name),
    checks,
  );
  for (const name of checks.slice(0, 3)) t.equal(got[name]!.status, 'pass', name);
  t.equal(got['stats() samples are valid DeviceStats']!.status, 'pass');
  t.match(report, { plugin: { name: 'broken-device', source: 'path' }, passed: 7, failed: 6, skipped: 0 });
  t.equal(
    got['fingerprint() reports valid device groups at once']!.message,
    'attribute "size" of acme/widget/broken has unit "MiB" on a string value: only numbers carry a unit, e.g. { "value": 80, "unit": "GiB" }; ' +
      'device id "w0" is used twice (/groups/0/devices/0 and /groups/0/devices/1): ids must be unique across the plugin\'s groups',
  );
  t.equal(
    got['reserve() of known devices returns a valid reservation']!.message,
    'reserve(["w0"]) returned mounts[0].taskPath "widgets", a relative path: make it absolute (start with "/"); ' +
      'devices[0].hostPath "dev/widget0", a relative path: make it absolute (start with "/"); ' +
      'devices[0].permissions "rwx", which are not cgroup device permissions: use the letters r (read), w (write), m (mknod), each at most once, e.g. "rw"',
  );
  t.equal(
    got['reserve() of an unknown id is rejected with UNKNOWN_DEVICE']!.message,
    'reserve(["taskhost-conformance-no-such-device"]) succeeded; throw UnknownDeviceError (UNKNOWN_DEVICE) for an id the plugin does not have',
  );
  t.equal(
    got['stats() streams at the interval']!.message,
    '1 sample in 4s at a 200ms interval, expected at least 4: yield one at once, then one every intervalMs until the signal aborts',
  );
  t.equal(
    got['stats() reports only fingerprinted devices']!.message,
    'stats name device "ghost" in acme/widget/broken, which the fingerprint does not list there; report only fingerprinted devices, under their own group',
  );
  t.match(
    got['fingerprint() and stats() settle when their signal aborts']!.message,
    /^fingerprint\(\) \(a stream\) had not settled 3s after its AbortSignal aborted/,
  );
  const cli = await runCli(['conformance', broken]);
  t.equal(cli.code, 1);
  t.match(
    cli.stdout,
    /FAIL {2}reserve\(\) of an unknown id is rejected with UNKNOWN_DEVICE \(\d+ms\)\n {8}reserve\(\["taskhost-conformance-no-such-device"\]\) succeeded/,
  );
});

t.test('a config the plugin rejects is reported with its path; no config at all is a skip', async (t) => {
  const bad = path.join(work, 'bad-config.json');
  writeFileSync(bad, JSON.stringify({ nvidiaSmii: './nvidia-smi' }));
  const report = await runDeviceConformance({ target: 'nvidia', pluginConfigFile: bad, logger: quiet });
  t.same(
    report.checks.map((c) => [c.name, c.status]),
    [
      [checks[0], 'pass'],
      [checks[1], 'fail'],
    ],
  );
  t.equal(
    report.checks[1]!.message,
    `the config from ${bad} was rejected: /nvidiaSmii: unknown key (did you mean "nvidiaSmi"?); make it valid for configSchema()`,
  );

  const notJson = path.join(work, 'not-json.json');
  writeFileSync(notJson, '{ "nvidiaSmi": ');
  const unreadable = await runDeviceConformance({ target: 'nvidia', pluginConfigFile: notJson, logger: quiet });
  t.match(unreadable.checks[0], { status: 'fail', message: new RegExp(`the --plugin-config file ${notJson} is not valid JSON`) });
  const missing = await runDeviceConformance({ target: 'nvidia', pluginConfigFile: path.join(work, 'nope.json'), logger: quiet });
  t.match(missing.checks[0], { status: 'fail', message: /cannot read the --plugin-config file .*nope\.json/ });

  // A device plugin folder without conformance.json runs with its defaults, and says so.
  const bare = path.join(work, 'bare');
  cpSync(broken, bare, { recursive: true });
  rmSync(path.join(bare, 'conformance.json'));
  writeFileSync(
    path.join(bare, 'index.js'),
    "export default { info: () => ({ type: 'device', name: 'broken-device', pluginVersion: '1.0.0', apiVersions: ['1.0'] }), configSchema: () => null, setConfig() {} };\n",
  );
  const skipped = byName(await runDeviceConformance({ target: bare, logger: quiet }));
  t.match(skipped['accepts the config it is tested with'], {
    status: 'skip',
    message: /no conformance\.json "config" and no --plugin-config: the plugin ran with its defaults/,
  });
  t.match(skipped['implements fingerprint, reserve and stats'], {
    status: 'fail',
    message:
      'missing: fingerprint, reserve, stats; a device plugin implements fingerprint(signal), reserve(deviceIds) and stats(intervalMs, signal)',
  });
  t.match(skipped['fingerprint() reports valid device groups at once'], { status: 'fail', message: /NOT_IMPLEMENTED/ });
  t.match(skipped['stats() streams at the interval'], { status: 'fail', message: /stats\(200\) failed with NOT_IMPLEMENTED/ });

  const badSpec = path.join(work, 'bad-spec');
  cpSync(broken, badSpec, { recursive: true });
  writeFileSync(path.join(badSpec, 'conformance.json'), JSON.stringify({ confg: {} }));
  const spec = await runDeviceConformance({ target: badSpec, logger: quiet });
  t.match(spec.checks[0], { status: 'fail', message: /conformance\.json is invalid: \/confg: unknown key \(did you mean "config"\?\)/ });
});

t.test('a stats stream that stalls, and a conformance.json that is not JSON, are reported', async (t) => {
  const stalls = path.join(work, 'stalls');
  cpSync(broken, stalls, { recursive: true });
  // Every config value kind, to show only "./" and "../" strings are taken as paths.
  writeFileSync(path.join(stalls, 'conformance.json'), JSON.stringify({ config: { label: 'ok', n: 3, flags: [true, null], dir: '../x' } }));
  writeFileSync(
    path.join(stalls, 'index.js'),
    `let config;
export default {
  info: () => ({ type: 'device', name: 'broken-device', pluginVersion: '1.0.0', apiVersions: ['1.0'] }),
  configSchema: () => ({ type: 'object', properties: { label: { type: 'string' }, n: { type: 'number' }, flags: { type: 'array' }, dir: { type: 'string', pattern: '^/' } } }),
  setConfig(request) { config = request.config; },
  async *fingerprint() { yield { groups: [{ vendor: 'acme', type: 'widget', name: 'w', devices: [{ id: 'd', healthy: true }], attributes: {} }] }; },
  reserve(ids) { throw Object.assign(new Error('no ' + ids.join()), { code: 'UNKNOWN_DEVICE' }); },
  async *stats(intervalMs, signal) {
    for (let i = 0; i < 4; i++) yield { timestamp: Date.now(), groups: [] };
    await new Promise((resolve) => setTimeout(resolve, 2600));
    yield { timestamp: Date.now() / 1000, groups: [] };
  },
};
`,
  );
  const got = byName(await runDeviceConformance({ target: stalls, logger: quiet }));
  t.equal(got[checks[1]!]!.status, 'pass', 'the "../x" in conformance.json became an absolute path');
  t.match(got['stats() streams at the interval'], {
    status: 'fail',
    message:
      /^a gap of \d+ms after sample 4 at a 200ms interval \(at most 2000ms allowed\): sample on a schedule, and skip a tick rather than stall$/,
  });
  t.match(got['stats() samples are valid DeviceStats'], {
    status: 'fail',
    message: /^sample 5 has timestamp [\d.]+, which is not unix milliseconds: use Date.now\(\)$/,
  });
  t.match(got['reserve() of known devices returns a valid reservation'], {
    status: 'fail',
    message: 'reserve(["d"]), devices of its own group acme/widget/w, failed with UNKNOWN_DEVICE: no d',
  });
  t.equal(got['reserve() of an unknown id is rejected with UNKNOWN_DEVICE']!.status, 'pass', 'a plain Error with the code will do');

  writeFileSync(path.join(stalls, 'index.js'), "throw new Error('broken at import');\n");
  const importFails = await runDeviceConformance({ target: stalls, logger: quiet });
  t.match(importFails.checks, [
    { status: 'fail', message: /^it did not start: PLUGIN_LOAD_FAILED: importing .* failed: broken at import$/ },
  ]);

  writeFileSync(path.join(stalls, 'conformance.json'), '{ "config": ');
  const notJson = await runDeviceConformance({ target: stalls, logger: quiet });
  t.match(notJson.checks[0], { status: 'fail', message: /conformance\.json is not valid JSON/ });
});

t.test('what is not a device plugin is reported, not run', async (t) => {
  const driver = await runDeviceConformance({ target: 'raw_exec', logger: quiet });
  t.match(driver.checks, [
    { name: checks[0], status: 'fail', message: 'its manifest says type "driver"; this suite checks device plugins' },
  ]);
  const nowhere = await runDeviceConformance({ target: path.join(work, 'nowhere'), logger: quiet });
  t.match(nowhere.checks, [{ status: 'fail', message: /no plugin found at .*nowhere/ }]);
  const skippedDir = path.join(work, 'api-nine');
  mkdirSync(skippedDir);
  writeFileSync(
    path.join(skippedDir, 'package.json'),
    JSON.stringify({ name: 'x', version: '1.0.0', taskhost: { type: 'device', name: 'api-nine', apiVersions: ['9.0'] } }),
  );
  const skipped = await runDeviceConformance({ target: skippedDir, logger: quiet });
  t.match(skipped.checks, [{ status: 'fail', message: /the loader skipped it: speaks plugin API 9\.0/ }]);
});

t.test('the checks behind the messages', async (t) => {
  t.same(fingerprintProblems(null), ['a fingerprint is { groups: [...] }, got null']);
  t.same(fingerprintProblems({ groups: [] }), []);
  const group = {
    vendor: 'v',
    type: 't',
    name: 'n',
    devices: [{ id: 'a', healthy: true }],
    attributes: { x: { value: 1, unit: 'parsecs' } },
  };
  t.same(fingerprintProblems({ groups: [group, { ...group, devices: [], attributes: {} }] }), [
    'attribute "x" of v/t/n has unit "parsecs", which is not a unit taskhost knows (B KB MB GB TB KiB MiB GiB TiB B/s KB/s MB/s GB/s KiB/s MiB/s GiB/s Hz kHz MHz GHz mW W kW C %)',
    'group v/t/n is listed twice (/groups/0 and /groups/1): put all its devices in one group',
  ]);
  t.same(fingerprintProblems({ groups: [{ ...group, name: 'has space', attributes: {} }] }), [
    'not a valid DeviceFingerprint at /groups/0/name: must match pattern "^[A-Za-z0-9][A-Za-z0-9_.-]*$"',
  ]);
  t.same(reservationProblems('x'), ['"x", not a ContainerReservation { envs, mounts, devices }']);
  t.same(reservationProblems({ envs: { A: 1 } }), ['an invalid ContainerReservation at /envs/A: must be string']);
  t.same(reservationProblems({ devices: [{ taskPath: '/dev/x', hostPath: '/dev/x', permissions: 'rr' }] }), [
    'devices[0].permissions "rr", which are not cgroup device permissions: use the letters r (read), w (write), m (mknod), each at most once, e.g. "rw"',
  ]);
  t.same(reservationProblems({ envs: {}, mounts: [], devices: [{ taskPath: '/dev/x', hostPath: '/dev/x', permissions: 'mwr' }] }), []);
});

t.test('a device plugin that ignores its signal, leaks a timer per stream and leaves its helper running is told each', async (t) => {
  const leaky = fileURLToPath(new URL('../fixtures/device-plugins/leaky-device', import.meta.url));
  const report = await runDeviceConformance({ target: leaky, logger: quiet });
  const failed = Object.fromEntries(report.checks.filter((c) => c.status === 'fail').map((c) => [c.name, c.message]));
  t.same(Object.keys(failed), checks.slice(-4));
  t.equal(
    failed['fingerprint() and stats() settle when their signal aborts'],
    "fingerprint() (a stream) had not settled 3s after its AbortSignal aborted: pass the signal (the argument after the declared ones) on to what the method waits for, or listen for its 'abort' event and return or throw at once; a cancelled call that never settles keeps its memory, timers and handles for ever",
  );
  t.match(
    failed['closing its streams leaves no timers or handles behind'],
    /^2 timers \(Timeout, setInterval\) created in stats\(\) still active after every fingerprint\(\) and stats\(\) stream was closed: stop what a stream started when its signal aborts/,
  );
  t.match(
    failed['shutdown() leaves no timers or handles behind'],
    /^2 timers \(Timeout, setInterval\) created in stats\(\), 1 child process \(ProcessWrap\) still active after shutdown\(\), more than the worker held before the plugin was imported: stop them in shutdown\(\)/,
  );
  t.match(
    failed['nothing it spawned is left running'],
    /^pid \d+ \(sleep 300\), started by the plugin, was still running after it shut down, and was killed: stop what you spawn in shutdown\(\)/,
  );
});
