// `taskhost kubelet serve example-file --resource example.com/file` as a real process, driven by a
// client that does what kubelet does (fake-kubelet.ts): it registers once kubelet.sock appears,
// with the kubelet dialling back inside Register; ListAndWatch follows device files that come,
// go and turn world-writable; Allocate gives example-file's reservation; a kubelet restart that
// wipes the directory gets a fresh socket and a new registration; SIGTERM leaves nothing behind.
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { status, type ServiceError } from '@grpc/grpc-js';
import t from 'tap';
import { eventually } from '../../agent/agent-request.js';
import { fastSupervision } from '../../helpers/fixture-plugins.js';
import { runCli } from '../../helpers/run-cli.js';
import { FakeKubelet } from './fake-kubelet.js';
import { tsxChildEnv, tsxLoader } from '../../helpers/tsx-child.js';

// The taskhost command from sources, as its own process.
const cli = new URL('../../agent/fixtures/agent-cli.ts', import.meta.url).pathname;
const resource = 'example.com/file';
const endpoint = 'taskhost-example.com-file.sock';

/** A node: a folder of device files (d0, d1 at 0644), an agent config for example-file, an empty kubelet dir. */
function node(t: { teardown(fn: () => unknown): void }) {
  const root = mkdtempSync(path.join(tmpdir(), 'taskhost-kubelet-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const devices = path.join(root, 'devices');
  const kubeletDir = path.join(root, 'kubelet');
  mkdirSync(devices);
  mkdirSync(kubeletDir);
  for (const name of ['d0', 'd1']) writeDevice(devices, name);
  const config = path.join(root, 'agent.json');
  writeFileSync(
    config,
    JSON.stringify({
      pluginDir: path.join(root, 'no-plugins'),
      dataDir: path.join(root, 'data'),
      supervision: fastSupervision,
      plugins: { 'example-file': { config: { dir: devices, listPeriod: '100ms' } } },
    }),
  );
  return { root, devices, kubeletDir, config };
}

function writeDevice(dir: string, name: string): void {
  writeFileSync(path.join(dir, name), `device ${name}\n`);
  chmodSync(path.join(dir, name), 0o644);
}

function serve(t: { teardown(fn: () => unknown): void }, args: string[]) {
  const child = spawn(process.execPath, ['--import', tsxLoader, cli, ...args], { env: tsxChildEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/** The gRPC error a call failed with; a call that succeeded fails the test. */
const refusal = (call: Promise<unknown>): Promise<ServiceError> =>
  call.then(
    (answer) => Promise.reject(new Error(`expected a gRPC error, got ${JSON.stringify(answer)}`)),
    (err: unknown) => err as ServiceError,
  );

t.test('serves example-file to the kubelet, follows its restarts, and exits clean on SIGTERM', async (t) => {
  const { devices, kubeletDir, config } = node(t);
  const bridge = serve(t, ['--config', config, 'kubelet', 'serve', 'example-file', '--resource', resource, '--kubelet-dir', kubeletDir]);
  const kubelets: FakeKubelet[] = [];
  t.teardown(async () => {
    for (const k of kubelets) await k.stop();
  });

  // No kubelet yet: the bridge serves its socket and keeps trying to register.
  const socket = path.join(kubeletDir, endpoint);
  await eventually(() => /waiting for the kubelet/.test(bridge.stderr()), 'the bridge waiting for kubelet.sock');
  t.ok(existsSync(socket), 'serving on its socket meanwhile');

  const kubelet = await FakeKubelet.start(kubeletDir);
  kubelets.push(kubelet);
  await eventually(() => kubelet.plugins.has(resource), `registration of ${resource}`);
  const { request, options } = kubelet.plugin(resource);
  t.same(
    request,
    {
      version: 'v1beta1',
      endpoint,
      resource_name: resource,
      options: { pre_start_required: false, get_preferred_allocation_available: true },
    },
    'Register: version, a relative endpoint, the resource name and the options',
  );
  t.same(options, { pre_start_required: false, get_preferred_allocation_available: true }, 'GetDevicePluginOptions during Register');
  t.same(
    kubelet.registers.filter((r) => r.refused),
    [],
    'the kubelet refused nothing',
  );

  t.same(
    await eventually(() => kubelet.devices(resource)?.length === 2 && kubelet.devices(resource), 'the first device list'),
    [
      ['d0', 'Healthy', []],
      ['d1', 'Healthy', []],
    ],
    'ListAndWatch: every file a healthy device, without topology (example-file has no locality)',
  );

  writeDevice(devices, 'd2');
  chmodSync(path.join(devices, 'd1'), 0o666);
  await eventually(
    () =>
      JSON.stringify(kubelet.devices(resource)) ===
      JSON.stringify([
        ['d0', 'Healthy', []],
        ['d1', 'Unhealthy', []],
        ['d2', 'Healthy', []],
      ]),
    'd2 listed and d1 unhealthy',
  );
  rmSync(path.join(devices, 'd0'));
  await eventually(
    () =>
      JSON.stringify(kubelet.devices(resource)) ===
      JSON.stringify([
        ['d1', 'Unhealthy', []],
        ['d2', 'Healthy', []],
      ]),
    'd0 gone from the list',
  );
  t.pass('the whole list again on each change: a new file, a world-writable one, a removed one');

  t.same(
    await kubelet.allocate(resource, ['d2']),
    {
      envs: { EXAMPLE_FILE_DEVICES: 'd2' },
      mounts: [{ container_path: '/devices/d2', host_path: path.join(devices, 'd2'), read_only: true }],
      devices: [],
      annotations: {},
      cdi_devices: [],
    },
    "Allocate: example-file's reservation, its mount at the container path",
  );
  t.same((await kubelet.allocate(resource, ['d2'])).envs, { EXAMPLE_FILE_DEVICES: 'd2' }, 'the next container gets the same device again');

  const unknown = await refusal(kubelet.allocate(resource, ['d2', 'nope']));
  t.equal(unknown.code, status.NOT_FOUND, 'an unknown id is NOT_FOUND');
  t.match(unknown.details, /"nope"/, 'naming the id');
  const sick = await refusal(kubelet.allocate(resource, ['d1']));
  t.equal(sick.code, status.FAILED_PRECONDITION, 'an unhealthy device is refused');
  t.match(sick.details, /world-writable/, 'saying why');

  writeDevice(devices, 'd3');
  await eventually(() => kubelet.devices(resource)?.length === 3, 'd3 listed');
  t.same(await kubelet.preferred(resource, ['d3', 'd2', 'd1'], [], 1), ['d2'], 'preferred: the lowest healthy id offered');
  t.same(await kubelet.preferred(resource, ['d3', 'd2', 'd1'], ['d3'], 2), ['d3', 'd2'], 'preferred: must-include ids first');
  t.same(await kubelet.preferred(resource, ['d3', 'd1'], [], 2), ['d1', 'd3'], 'too few healthy: the lowest ids offered');
  t.same(await kubelet.preStart(resource, ['d2']), {}, 'PreStartContainer answers empty');

  // The kubelet restarts: its process goes, the new one wipes the directory and serves again.
  const first = kubelet.plugin(resource);
  await kubelet.stop();
  await eventually(() => first.ended, 'the old ListAndWatch stream ended');
  await FakeKubelet.wipe(kubeletDir);
  const again = await FakeKubelet.start(kubeletDir);
  kubelets.push(again);
  await eventually(() => again.plugins.has(resource), 'a registration with the restarted kubelet');
  t.equal(again.plugin(resource).request.endpoint, endpoint, 'the same endpoint name');
  t.ok(existsSync(socket), 'on a fresh socket');
  t.same(
    await eventually(() => again.devices(resource)?.length === 3 && again.devices(resource), 'the device list on the new stream'),
    [
      ['d1', 'Unhealthy', []],
      ['d2', 'Healthy', []],
      ['d3', 'Healthy', []],
    ],
    'a new ListAndWatch works',
  );
  t.same((await again.allocate(resource, ['d3'])).envs, { EXAMPLE_FILE_DEVICES: 'd3' }, 'and Allocate');
  t.match(bridge.stderr(), /registering again/, 'the restart is in the log');

  bridge.child.kill('SIGTERM');
  t.equal(await bridge.exited, 0, 'SIGTERM: exit 0');
  t.notOk(existsSync(socket), 'its socket removed');
  t.ok(again.plugin(resource).ended, 'its stream ended');
  t.equal(bridge.stdout(), '', 'nothing on stdout');
  t.match(bridge.stderr(), /SIGTERM: stopping/);
});

t.test('a resource name the kubelet would refuse is a usage error naming it', async (t) => {
  for (const [name, why] of [
    ['file', /has no domain/],
    ['kubernetes.io/file', /kubernetes\.io/],
    ['Example.com/file', /DNS subdomain/],
    ['example.com/a/b', /more than one/],
  ] as const) {
    const { code, stderr } = await runCli(['kubelet', 'serve', 'example-file', '--resource', name]);
    t.equal(code, 2, `${name}: exit 2`);
    t.match(stderr, `"${name}"`, `${name}: named`);
    t.match(stderr, why, `${name}: why`);
  }
});

t.test('a group the plugin does not have is a usage error listing the ones it has', async (t) => {
  const { kubeletDir, config } = node(t);
  const args = ['--config', config, 'kubelet', 'serve', 'example-file', '--resource', resource, '--kubelet-dir', kubeletDir];
  const { code, stderr } = await runCli([...args, '--group', 'example/file/mocks']);
  t.equal(code, 2);
  t.match(stderr, /did you mean "example\/file\/mock"/);
  t.notOk(existsSync(path.join(kubeletDir, endpoint)), 'nothing served');
});

t.test('a plugin that is not a configured device plugin says what to do', async (t) => {
  const { kubeletDir, root } = node(t);
  const bare = path.join(root, 'bare.json');
  writeFileSync(bare, JSON.stringify({ pluginDir: path.join(root, 'no-plugins'), dataDir: path.join(root, 'data') }));
  const run = (plugin: string) =>
    runCli(['--config', bare, 'kubelet', 'serve', plugin, '--resource', resource, '--kubelet-dir', kubeletDir]);
  const unconfigured = await run('example-file');
  t.equal(unconfigured.code, 1);
  t.match(unconfigured.stderr, /plugins\.example-file\.config/, 'where its config goes');
  const driver = await run('raw_exec');
  t.equal(driver.code, 1);
  t.match(driver.stderr, /"raw_exec" is a driver plugin, not a device plugin/);
  const typo = await run('example-fil');
  t.equal(typo.code, 1);
  t.match(typo.stderr, /did you mean "example-file"/);
});

t.test('SIGTERM while the plugin still starts: exit 0, nothing served, no listener left', async (t) => {
  const { kubeletDir, config } = node(t);
  const interrupts = new EventEmitter();
  const before = process.listenerCount('SIGTERM');
  let done = false;
  const run = runCli(
    ['--config', config, 'kubelet', 'serve', 'example-file', '--resource', resource, '--kubelet-dir', kubeletDir],
    interrupts as never,
  ).finally(() => (done = true));
  // The signal comes as soon as someone listens: the plugin's worker takes far longer to start.
  while (!done && interrupts.listenerCount('SIGTERM') === 0) await new Promise((r) => setTimeout(r, 5));
  interrupts.emit('SIGTERM');
  const { code, stderr } = await run;
  t.equal(code, 0);
  t.match(stderr, /SIGTERM while starting/);
  t.notOk(existsSync(path.join(kubeletDir, endpoint)), 'no socket');
  t.equal(interrupts.listenerCount('SIGTERM') + interrupts.listenerCount('SIGINT'), 0, 'its signal listeners removed');
  t.equal(process.listenerCount('SIGTERM'), before);
});

/** An agent config for the scripted fixture device plugin, and its control file. */
function scriptedNode(t: { teardown(fn: () => unknown): void }, groups: string[]) {
  const { root, kubeletDir } = node(t);
  const control = path.join(root, 'control.json');
  const fingerprint = {
    groups: groups.map((name) => ({ vendor: 'fixture', type: 'scripted', name, devices: [{ id: `${name}0`, healthy: true }] })),
  };
  writeFileSync(control, JSON.stringify({ fingerprint }));
  const config = path.join(root, 'scripted.json');
  writeFileSync(
    config,
    JSON.stringify({
      pluginDir: fileURLToPath(new URL('../../fixtures/device-plugins', import.meta.url)),
      dataDir: path.join(root, 'data'),
      supervision: fastSupervision,
      plugins: { scripted: { config: { file: control } } },
    }),
  );
  const args = ['--config', config, 'kubelet', 'serve', 'scripted', '--resource', 'example.com/scripted', '--kubelet-dir', kubeletDir];
  return { kubeletDir, args };
}

/** Runs the command in-process until `ready` holds, then `meanwhile`, then sends SIGTERM; resolves with what it printed. */
async function serveUntil(args: string[], ready: () => boolean | Promise<boolean>, meanwhile: () => Promise<void> = async () => undefined) {
  const interrupts = new EventEmitter();
  const live = { stdout: '', stderr: '' };
  let done = false;
  const run = runCli(args, interrupts as never, live).finally(() => (done = true));
  await eventually(async () => done || (await ready()), 'the bridge serving');
  await meanwhile();
  interrupts.emit('SIGTERM');
  return run;
}

t.test('several groups: --group says which, and without it the error lists them', async (t) => {
  const { kubeletDir, args } = scriptedNode(t, ['x', 'y']);
  const ambiguous = await runCli(args);
  t.equal(ambiguous.code, 2);
  t.match(ambiguous.stderr, /reports 2 device groups \(fixture\/scripted\/x, fixture\/scripted\/y\).*--group/);

  const kubelet = await FakeKubelet.start(kubeletDir);
  t.teardown(() => kubelet.stop());
  const { code } = await serveUntil(
    [...args, '--group', 'fixture/scripted/y'],
    () => kubelet.devices('example.com/scripted')?.length === 1,
    async () => {
      t.same(kubelet.devices('example.com/scripted'), [['y0', 'Healthy', []]], "only y's devices");
      t.same(await kubelet.preferred('example.com/scripted', ['y0'], [], 1), ['y0'], 'and its pick');
    },
  );
  t.equal(code, 0);
});

t.test('no group yet: an error without --group, an empty list with it', async (t) => {
  const { kubeletDir, args } = scriptedNode(t, []);
  const none = await runCli(args);
  t.equal(none.code, 1);
  t.match(none.stderr, /reports no device groups .*pass --group/);

  const kubelet = await FakeKubelet.start(kubeletDir);
  t.teardown(() => kubelet.stop());
  const served = await serveUntil([...args, '--group', 'fixture/scripted/x'], () => kubelet.devices('example.com/scripted') !== undefined);
  t.equal(served.code, 0);
  t.match(served.stderr, /serving fixture\/scripted\/x empty until it appears/);
  t.same(kubelet.devices('example.com/scripted'), [], 'an empty list');
});
