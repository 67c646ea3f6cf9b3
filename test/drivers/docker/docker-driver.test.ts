/**
 * The docker driver against the real Docker Engine, in-process (factory, setConfig, init), with
 * the real image service. Without the Docker test environment (scripts/docker-test-env.sh) the
 * Engine tests skip, or fail when TASKHOST_REQUIRE_DOCKER=1 (see test/helpers/docker.ts).
 * Every container made here carries a label with this run's id and is removed after each test.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import t, { type Test } from 'tap';
import createDockerDriver, { dockerImageService } from '../../../drivers/docker/index.js';
import { containerEnv, containerName, containerSpec, taskLabels } from '../../../drivers/docker/container-spec.js';
import { parseLogFrames, sinceParam } from '../../../drivers/docker/container-logs.js';
import { cpuPercent, rssBytes, toResourceUsage } from '../../../drivers/docker/container-stats.js';
import type { DriverState } from '../../../drivers/docker/container-task.js';
import { DockerConfig, DockerTaskConfig, dockerDefaultCaps } from '../../../drivers/docker/docker-config.js';
import type { DockerDriver } from '../../../drivers/docker/docker-driver.js';
import type { DockerImageService } from '../../../drivers/docker/docker-image-service.js';
import type { DriverFingerprint, TaskConfig, TaskEvent, TaskHandle, TaskResourceUsage } from '../../../shared/driver.js';
import { intentHandle } from '../../../drivers/handle-store.js';
import {
  CancelledError,
  InvalidConfigError,
  TaskExistsError,
  TaskNotFoundError,
  TaskNotRunningError,
  TaskRunningError,
} from '../../../shared/errors.js';
import { compileSchema, parseWith } from '../../../shared/schema.js';
import {
  BUSYBOX_IMAGE,
  dockerAvailable,
  IMAGE_GREETING,
  pushThrowawayImage,
  removeImageRefs,
  requireDocker,
} from '../../helpers/docker.js';

const run = promisify(execFile);
const socket = '/var/run/docker.sock';
const docker = new Docker({ socketPath: socket });
const image = BUSYBOX_IMAGE;
/** Every container of this run carries it, for the teardown. */
const runLabel = 'org.taskhost.test-run';
const runId = randomBytes(4).toString('hex');
const forever = new AbortController().signal;

const engineUp = dockerAvailable(docker);

/** A test that needs the Docker test environment: skipped (or failed, in CI) without it. */
function engineTest(name: string, body: (t: Test) => Promise<void>): void {
  t.test(name, async (t) => {
    if (!(await requireDocker(t))) return;
    await body(t);
  });
}

/** Removes every container this run made; after each test (they run one at a time) and at the end. */
async function removeRunContainers(): Promise<void> {
  if (!(await engineUp)) return;
  const left = await docker.listContainers({ all: true, filters: { label: [`${runLabel}=${runId}`] } });
  await Promise.all(
    left.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => undefined),
    ),
  );
}
t.afterEach(removeRunContainers);
t.teardown(removeRunContainers);

interface Harness {
  driver: DockerDriver;
  images: DockerImageService;
  logs: string[];
  agentDir: string;
}

/** A driver set up as the host would (factory, setConfig, init), shut down after the test. */
function newDriver(t: Test, config: Record<string, unknown> = {}, options: { init?: boolean } = {}): Harness {
  const logs: string[] = [];
  let images!: DockerImageService;
  const driver = createDockerDriver({
    imageService: (client, cfg, log) => (images = dockerImageService(client, cfg, log)),
    log: (message) => logs.push(message),
  });
  const agentDir = mkdtempSync(path.join(tmpdir(), 'taskhost-docker-agent-'));
  t.teardown(() => rmSync(agentDir, { recursive: true, force: true }));
  configure(driver, { extraLabels: { [runLabel]: runId }, ...config }, agentDir);
  if (options.init) driver.init();
  t.teardown(() => driver.shutdown());
  return { driver, images, logs, agentDir };
}

/** setConfig as the host calls it, from a partial config (the driver fills the defaults). */
function configure(driver: DockerDriver, config: Record<string, unknown>, agentDir: string): void {
  driver.setConfig({
    apiVersion: '1.0',
    config: config as unknown as DockerConfig,
    agent: { dataDir: agentDir, pluginDataDir: path.join(agentDir, 'docker') },
  });
}

/** A task config with its own directories, as prepare-task makes them. */
function taskConfig(t: Test, config: Partial<DockerTaskConfig>, overrides: Partial<TaskConfig> = {}): TaskConfig {
  const allocId = `alloc-${randomBytes(3).toString('hex')}`;
  const root = mkdtempSync(path.join(tmpdir(), 'taskhost-docker-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const allocDir = path.join(root, 'alloc');
  const taskDir = path.join(root, 'web', 'local');
  const secretsDir = path.join(root, 'web', 'secrets');
  for (const dir of [path.join(allocDir, 'logs'), taskDir, secretsDir]) mkdirSync(dir, { recursive: true });
  const stdoutPath = path.join(allocDir, 'logs', 'web.stdout');
  const stderrPath = path.join(allocDir, 'logs', 'web.stderr');
  writeFileSync(stdoutPath, '');
  writeFileSync(stderrPath, '');
  return {
    id: `${allocId}/web/${randomBytes(4).toString('hex')}`,
    name: 'web',
    allocId,
    jobName: 'shop',
    groupName: 'front',
    driver: 'docker',
    config: { image, ...config },
    env: { TASK_MARKER: 'marked', TASKHOST_ALLOC_DIR: '/alloc' },
    deviceEnv: {},
    resources: {},
    devices: [],
    mounts: [],
    killTimeoutMs: 1000,
    allocDir,
    taskDir,
    secretsDir,
    stdoutPath,
    stderrPath,
    ...overrides,
  };
}

const sh = (script: string): Partial<DockerTaskConfig> => ({ command: 'sh', args: ['-c', script] });
const exited = (exitCode: number) => ({ exitCode, signal: null, oomKilled: false });
const stateOf = (handle: { driverState: unknown }) => handle.driverState as DriverState;

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(25);
  }
}

/** Collects the driver's task events from now on. */
function collectEvents(t: Test, driver: DockerDriver): TaskEvent[] {
  const events: TaskEvent[] = [];
  const stop = new AbortController();
  t.teardown(() => stop.abort());
  void (async () => {
    for await (const e of driver.taskEvents(stop.signal)) events.push(e);
  })();
  return events;
}

async function containerExists(id: string): Promise<boolean> {
  return docker
    .getContainer(id)
    .inspect()
    .then(
      () => true,
      () => false,
    );
}

// ---------------------------------------------------------------------------------------------
// Without an Engine

t.test('config schemas: defaults, closed objects, durations', async (t) => {
  const config = parseWith(compileSchema<DockerConfig>(DockerConfig), {}, 'config');
  t.match(config, {
    auth: {},
    gc: { image: true, imageDelay: '3m', container: true, danglingGrace: '5m', dryRun: false, reconcileInterval: '5m' },
    volumes: { enabled: false },
    allowPrivileged: false,
    pullActivityTimeout: '2m',
    pullTimeout: '10m',
    extraLabels: {},
    fingerprintInterval: '30s',
  });
  t.ok(config.allowCaps.includes('NET_BIND_SERVICE') && !config.allowCaps.includes('SYS_ADMIN'));
  t.equal(config.endpoint, undefined, 'the endpoint comes from DOCKER_HOST or the standard socket');
  const task = compileSchema<DockerTaskConfig>(DockerTaskConfig);
  t.same(task({ image }), { ok: true, value: { image, networkMode: 'none', pullPolicy: 'missing' } });
  t.match(task({ image, imag: 'x' }), { ok: false, issues: [{ path: '/imag', message: /unknown key/ }] });
  t.match(task({ image, networkMode: 'bridge' }), { ok: false, issues: [{ path: '/networkMode' }] });
  t.match(task({ image, volumes: ['relative'] }), { ok: false, issues: [{ path: '/volumes/0' }] });
  const { driver } = newDriver(t);
  t.throws(
    () => configure(driver, { extraLabels: { 'com.taskhost.managed': 'false' } }, '/d'),
    InvalidConfigError,
    'extraLabels cannot forge ownership',
  );
  t.same(driver.capabilities(), { sendSignals: true, exec: true, fsIsolation: 'image', networkModes: ['none', 'host'], mounts: true });
  t.match(driver.info(), { type: 'driver', name: 'docker', pluginVersion: '0.1.0', apiVersions: ['1.0'] });
});

t.test('validateTask applies the plugin config’s policy without asking the Engine', async (t) => {
  const { driver } = newDriver(t, { endpoint: 'unix:///nonexistent/docker.sock' });
  const refused = (config: Partial<DockerTaskConfig>, overrides: Partial<TaskConfig> = {}) => {
    try {
      driver.validateTask(taskConfig(t, config, overrides));
    } catch (err) {
      if (err instanceof InvalidConfigError) return err.errors.map((e) => `${e.path}: ${e.message}`);
      throw err;
    }
    return [];
  };
  t.same(refused({ image, privileged: true, capAdd: ['NET_ADMIN'], volumes: ['/etc:/x'], labels: { 'com.taskhost.agent': 'x' } }), [
    '/config/volumes/0: cannot mount "/etc:/x": host paths can only be mounted when the docker plugin config sets volumes.enabled',
    '/config/privileged: privileged containers are not allowed: the docker plugin config must set allowPrivileged',
    `/config/capAdd/0: capability NET_ADMIN is not allowed: add it to allowCaps in the docker plugin config (allowed: ${dockerDefaultCaps.join(', ')})`,
    '/config/labels/com.taskhost.agent: labels under "com.taskhost." are set by taskhost itself',
  ]);
  t.same(refused({ image: 'a b' }), ['/config/image: invalid image reference "a b": it contains whitespace']);
  t.same(refused({ image }, { resources: { memoryMB: 4 } }), [
    '/resources/memoryMB: the Docker Engine needs a memory limit of at least 6 MB, got 4',
  ]);
  t.same(refused({ image, capAdd: ['chown'] }), [], 'within the policy');
  const { driver: permissive } = newDriver(t, { allowPrivileged: true, volumes: { enabled: true } });
  t.doesNotThrow(() => permissive.validateTask(taskConfig(t, { image, privileged: true, volumes: ['/etc:/x'] })));
});

t.test('container spec: policy refusals name their path; env, labels, limits and name', async (t) => {
  const plugin = parseWith(compileSchema<DockerConfig>(DockerConfig), { extraLabels: { team: 'a' } }, 'config');
  const task = taskConfig(
    t,
    {},
    { resources: { memoryMB: 64, cpuShares: 512 }, killTimeoutMs: 2500, killSignal: 'SIGINT', user: 'nobody' },
  );
  task.devices = [{ hostPath: '/dev/null', taskPath: '/dev/nothing', permissions: 'rw' }];
  const spec = (config: Partial<DockerTaskConfig>, p = plugin) =>
    containerSpec({
      task,
      config: { image, networkMode: 'none', pullPolicy: 'missing', ...config },
      plugin: p,
      image,
      imageEnv: ['PATH=/bin', 'A=image'],
    });

  const refused = (config: Partial<DockerTaskConfig>): string[] => {
    try {
      spec(config);
    } catch (err) {
      if (err instanceof InvalidConfigError) return err.errors.map((e) => `${e.path}: ${e.message}`);
      throw err;
    }
    return [];
  };
  t.match(refused({ volumes: ['/etc:/host-etc:ro'] }), [/^\/config\/volumes\/0: cannot mount "\/etc:\/host-etc:ro": .*volumes\.enabled/]);
  t.match(refused({ mounts: [{ source: '/etc', target: '/x', readOnly: true }] }), [/^\/config\/mounts\/0: cannot mount \/etc at \/x/]);
  t.match(refused({ privileged: true }), [/^\/config\/privileged: .*allowPrivileged/]);
  t.match(refused({ capAdd: ['CHOWN', 'sys_admin'] }), [/^\/config\/capAdd\/1: capability SYS_ADMIN is not allowed/]);
  t.match(refused({ labels: { 'com.taskhost.task_id': 'x' } }), [/^\/config\/labels\/com\.taskhost\.task_id: /]);
  t.same(refused({ capAdd: ['cap_chown'], capDrop: ['ALL'] }), [], 'caps are read the way Docker reads them');

  const permissive = { ...plugin, volumes: { enabled: true }, allowPrivileged: true };
  const full = spec(
    { command: 'sh', args: ['-c', 'env'], env: { A: 'config' }, volumes: ['data:/data:ro'], privileged: true, labels: { app: 'web' } },
    permissive,
  );
  t.same(full.Cmd, ['sh', '-c', 'env']);
  t.equal(full.Image, image);
  t.equal(full.User, 'nobody');
  t.equal(full.StopSignal, 'SIGINT', "the task's killSignal is the container's StopSignal");
  t.equal(full.StopTimeout, 3);
  t.same(full.Env, ['A=config', 'PATH=/bin', 'TASKHOST_ALLOC_DIR=/alloc', 'TASK_MARKER=marked']);
  t.match(full.Labels, {
    team: 'a',
    app: 'web',
    [taskLabels.taskId]: task.id,
    [taskLabels.driver]: 'docker',
    [taskLabels.managed]: 'true',
  });
  t.match(full.HostConfig, {
    NetworkMode: 'none',
    Memory: 64 * 1024 * 1024,
    MemorySwap: 64 * 1024 * 1024,
    CpuShares: 512,
    Privileged: true,
    Binds: [`${task.taskDir}/data:/data:ro`],
    Devices: [{ PathOnHost: '/dev/null', PathInContainer: '/dev/nothing', CgroupPermissions: 'rw' }],
  });
  t.equal(full.HostConfig?.AutoRemove, undefined, 'no AutoRemove: the exit code must outlive the container');
  t.match(full.HostConfig?.Mounts, [
    { Source: task.allocDir, Target: '/alloc' },
    { Source: task.taskDir, Target: '/local' },
    { Source: task.secretsDir, Target: '/secrets' },
  ]);
  t.same(spec({ args: ['x'] }).Cmd, ['x'], 'args alone replace the image command');
  t.equal(spec({}).Cmd, undefined, "no command: the image's own");

  t.same(containerEnv(['A=1', 'B=2', 'FLAG'], { B: 'task' }, { C: '3' }), { A: '1', B: 'task', FLAG: '', C: '3' });
  t.equal(containerName({ id: 'a/web/0123abcd', name: 'web' }), 'web-0123abcd');
  t.equal(containerName({ id: 'a/x/0123abcd', name: '.we b' }), 'we-b-0123abcd');
});

t.test('log frames, the since parameter and stats conversion', async (t) => {
  const frame = (kind: number, text: string) => {
    const header = Buffer.alloc(8);
    header[0] = kind;
    header.writeUInt32BE(Buffer.byteLength(text), 4);
    return Buffer.concat([header, Buffer.from(text)]);
  };
  const frames = parseLogFrames(Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n'), frame(1, 'partial').subarray(0, 10)]));
  t.same(
    frames.map((f) => [f.stream, f.data.toString()]),
    [
      ['stdout', 'out\n'],
      ['stderr', 'err\n'],
    ],
    'a trailing partial frame is dropped',
  );
  t.equal(sinceParam(1_700_000_000_250.5), '1700000000.250500000');

  const cpu = (total: number, system: number) => ({
    cpu_usage: { total_usage: total, usage_in_usermode: 2e6, usage_in_kernelmode: 1e6 },
    system_cpu_usage: system,
    online_cpus: 4,
  });
  t.equal(cpuPercent(cpu(150, 1000), cpu(100, 900)), 200, 'half the host over 4 CPUs is 200% (two cores)');
  t.equal(cpuPercent(cpu(150, 1000), { cpu_usage: { total_usage: 0 } }), undefined, 'no previous sample: not measured');
  t.equal(rssBytes({ usage: 1000, stats: { rss: 300, total_rss: 400 } }), 400, 'cgroup v1');
  t.equal(rssBytes({ usage: 1000, stats: { anon: 250, inactive_file: 100 } }), 250, 'cgroup v2');
  t.equal(rssBytes({ usage: 1000, stats: { cache: 600 } }), 400, 'usage less the cache');
  const usage = toResourceUsage('a/b/00000000', {
    read: '2026-01-01T00:00:00Z',
    cpu_stats: cpu(150, 1000),
    precpu_stats: cpu(100, 900),
    memory_stats: { usage: 1000, stats: { rss: 300 } },
  });
  t.same(usage, {
    taskId: 'a/b/00000000',
    timestamp: Date.parse('2026-01-01T00:00:00Z'),
    cpu: { percent: 200, userMs: 2, systemMs: 1 },
    memory: { rssBytes: 300, usageBytes: 1000 },
    measured: ['cpu.percent', 'cpu.userMs', 'cpu.systemMs', 'memory.rssBytes', 'memory.usageBytes'],
  });
});

// ---------------------------------------------------------------------------------------------
// With the Engine

engineTest('a container that exits at once reports its code, every time', async (t) => {
  const { driver, images } = newDriver(t);
  const events = collectEvents(t, driver);
  const runs = 30;
  // A few at a time: also shows that concurrent starts do not mix their exits up.
  for (let batch = 0; batch < runs; batch += 6) {
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const cfg = taskConfig(t, sh(`exit ${7 + ((batch + i) % 2)}`));
        const want = exited(7 + ((batch + i) % 2));
        const { handle } = await driver.startTask(cfg);
        t.same(await driver.waitTask(cfg.id, forever), want);
        t.same(await driver.waitTask(cfg.id, forever), want, 'again after the exit');
        t.equal((await driver.inspectTask(cfg.id)).state, 'exited');
        await driver.destroyTask(cfg.id, false);
        t.notOk(await containerExists(stateOf(handle).containerId), 'destroy removed the container');
      }),
    );
  }
  t.equal(images.imageUsers((await docker.getImage(image).inspect()).Id), 0, 'every task released its image');
  const exits = () => events.filter((e) => /^exited with code [78]$/.test(e.message)).length;
  await until(() => exits() >= runs, 'the exit events');
  t.equal(exits(), runs, 'one exit event per task');
});

engineTest('output lands in the task files; the container runs as created', async (t) => {
  const { driver, images } = newDriver(t);
  const events = collectEvents(t, driver);
  const cfg = taskConfig(
    t,
    sh('echo hello; echo oops >&2; echo "marker=$TASK_MARKER dir=$TASKHOST_ALLOC_DIR"; ls -d /alloc /local /secrets'),
  );
  const { handle } = await driver.startTask(cfg);
  t.match(handle, { version: 1, config: cfg, state: 'running', driverState: { image, containerName: containerName(cfg) } });
  t.match(stateOf(handle).imageId, /^sha256:[0-9a-f]{64}$/);
  t.equal(images.imageUsers(stateOf(handle).imageId), 1, 'the task holds its image');
  t.same(await driver.waitTask(cfg.id, forever), exited(0));
  t.equal(readFileSync(cfg.stdoutPath, 'utf8'), 'hello\nmarker=marked dir=/alloc\n/alloc\n/local\n/secrets\n');
  t.equal(readFileSync(cfg.stderrPath, 'utf8'), 'oops\n');
  const info = await docker.getContainer(stateOf(handle).containerId).inspect();
  t.equal(info.Name, `/${containerName(cfg)}`);
  t.equal(info.HostConfig.NetworkMode, 'none');
  t.equal(info.HostConfig.AutoRemove, false);
  t.match(info.Config.Labels, {
    [taskLabels.taskId]: cfg.id,
    [taskLabels.allocId]: cfg.allocId,
    [taskLabels.taskName]: 'web',
    [runLabel]: runId,
  });
  await t.rejects(driver.startTask(cfg), TaskExistsError, 'an id is never started twice');
  await until(() => events.some((e) => e.taskId === cfg.id && e.message === 'exited with code 0'), 'the exit event');
  const messages = events.filter((e) => e.taskId === cfg.id).map((e) => e.message);
  t.match(messages, [/^created container web-/, /^started container web-/, 'exited with code 0']);
  await driver.destroyTask(cfg.id, false);
  t.equal(images.imageUsers(stateOf(handle).imageId), 0, 'destroy released the image');
  await t.rejects(driver.inspectTask(cfg.id), TaskNotFoundError);
});

engineTest('docker ps shows the image as the user wrote it', async (t) => {
  const { driver } = newDriver(t);
  for (const written of ['busybox:1.35', 'docker.io/library/busybox:1.35']) {
    const cfg = taskConfig(t, { image: written, command: 'sleep', args: ['30'] });
    const { handle } = await driver.startTask(cfg);
    const id = stateOf(handle).containerId;
    const { stdout } = await run('docker', ['ps', '--filter', `id=${id}`, '--format', '{{.Image}}']);
    t.equal(stdout.trim(), 'busybox:1.35', `${written} shows as busybox:1.35 in docker ps`);
    const [listed] = await docker.listContainers({ filters: { id: [id] } });
    t.equal(listed?.Image, 'busybox:1.35', 'and through the API');
    await driver.destroyTask(cfg.id, true);
  }
});

engineTest("image env is merged under the task's: each name once, the task's value wins", async (t) => {
  const [name] = IMAGE_GREETING.split('=') as [string];
  const { driver } = newDriver(t);
  const cfg = taskConfig(t, { command: 'env', env: { FROM_CONFIG: 'yes' } });
  cfg.env = { ...cfg.env, [name]: 'from-task' };
  await driver.startTask(cfg);
  t.same(await driver.waitTask(cfg.id, forever), exited(0));
  const lines = readFileSync(cfg.stdoutPath, 'utf8').trim().split('\n');
  t.same(
    lines.filter((l) => l.startsWith(`${name}=`)),
    [`${name}=from-task`],
    'once, with the task value',
  );
  t.ok(lines.includes('PATH=/bin'), "the image's other names stay");
  t.ok(lines.includes('FROM_CONFIG=yes') && lines.includes('TASK_MARKER=marked'));

  const plain = taskConfig(t, { command: 'env' });
  await driver.startTask(plain);
  await driver.waitTask(plain.id, forever);
  t.ok(readFileSync(plain.stdoutPath, 'utf8').split('\n').includes(IMAGE_GREETING), 'without a task value, the image value');
});

engineTest('a pull reports its progress as task events the CLI can draw a bar from', async (t) => {
  const ref = await pushThrowawayImage(docker, 'docker-driver', `t${runId}`);
  t.teardown(() => removeImageRefs(docker, [ref]));
  const { driver, images } = newDriver(t);
  const events = collectEvents(t, driver);
  // Not runnable (one data file): the start fails after the pull, and must leave nothing behind.
  const cfg = taskConfig(t, { image: ref, command: 'sh', pullPolicy: 'always' });
  await t.rejects(driver.startTask(cfg), { code: 'INVALID_CONFIG', errors: [{ path: '/config/command' }] });
  await until(() => events.some((e) => e.message.startsWith('pulled image')), 'the pulled event');
  const progress = events.filter((e) => e.annotations?.layersTotal !== undefined);
  t.ok(progress.length >= 1, `${progress.length} progress events`);
  const last = progress.at(-1)!;
  t.match(last.annotations, { image: ref, layersDone: '1', layersTotal: '1', currentBytes: /^\d+$/, totalBytes: /^\d+$/ });
  t.ok(Number(last.annotations!.totalBytes) > 0);
  t.ok(events.every((e) => e.taskId === cfg.id));
  const { Id } = await docker.getImage(ref).inspect();
  t.equal(images.imageUsers(Id), 0, 'the failed start released the image');
  t.same(await docker.listContainers({ all: true, filters: { label: [`${taskLabels.taskId}=${cfg.id}`] } }), []);
});

engineTest('stop: a task that exits on SIGTERM stops at once; one that traps it is SIGKILLed after the timeout', async (t) => {
  const { driver } = newDriver(t);
  const events = collectEvents(t, driver);
  const polite = taskConfig(t, sh("trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 1 & wait; done"));
  await driver.startTask(polite);
  await until(() => readFileSync(polite.stdoutPath, 'utf8').includes('ready'), 'the trap to be set');
  await t.rejects(driver.stopTask(polite.id, 10, 'SIGNOPE'), InvalidConfigError, 'an unknown kill signal is refused');
  let began = Date.now();
  await driver.stopTask(polite.id, 5000);
  t.ok(Date.now() - began < 2500, `did not wait for the timeout (${Date.now() - began}ms)`);
  t.same(await driver.waitTask(polite.id, forever), exited(0), 'exit 0 from its trap: no signal to report');
  t.equal(readFileSync(polite.stdoutPath, 'utf8'), 'ready\nbye\n');
  await driver.stopTask(polite.id, 5000);
  t.pass('stopping an exited task is a no-op');

  const stubborn = taskConfig(t, sh("trap '' TERM; echo ready; while :; do sleep 1; done"));
  await driver.startTask(stubborn);
  await until(() => readFileSync(stubborn.stdoutPath, 'utf8').includes('ready'), 'the trap to be set');
  began = Date.now();
  await driver.stopTask(stubborn.id, 1000);
  const took = Date.now() - began;
  t.ok(took >= 950 && took < 4000, `waited for the timeout, then killed (${took}ms)`);
  t.same(await driver.waitTask(stubborn.id, forever), { exitCode: 137, signal: 'SIGKILL', oomKilled: false });
  t.same((await driver.inspectTask(stubborn.id)).exitResult, { exitCode: 137, signal: 'SIGKILL', oomKilled: false });
  await until(() => events.some((e) => e.taskId === stubborn.id && e.message.startsWith('killed by')), 'the exit event');
  const messages = events.filter((e) => e.taskId === stubborn.id).map((e) => e.message);
  t.match(messages, [
    /^created/,
    /^started/,
    /^stop requested: sending SIGTERM, SIGKILL after 1000ms/,
    /did not exit within 1000ms of SIGTERM: sending SIGKILL/,
    'killed by SIGKILL (exit code 137)',
  ]);
});

engineTest('a 137 the driver did not cause is not reported as its SIGKILL', async (t) => {
  const { driver } = newDriver(t);
  const cfg = taskConfig(t, { command: 'sleep', args: ['30'] });
  const { handle } = await driver.startTask(cfg);
  await docker.getContainer(stateOf(handle).containerId).kill({ signal: 'SIGKILL' });
  t.same(await driver.waitTask(cfg.id, forever), exited(137), 'killed from outside: exit code only');
  await driver.destroyTask(cfg.id, false);
});

engineTest("a container removed behind the driver's back ends the task with an error saying so", async (t) => {
  const { driver } = newDriver(t);
  const cfg = taskConfig(t, { command: 'sleep', args: ['30'] });
  const { handle } = await driver.startTask(cfg);
  await docker.getContainer(stateOf(handle).containerId).remove({ force: true });
  const exit = await driver.waitTask(cfg.id, forever);
  // `rm -f` kills, then removes: the driver may still catch the exit (137) or find it gone.
  if (exit.exitCode === 137) t.same(exit, exited(137), 'the kill was seen before the removal');
  else t.match(exit, { exitCode: -1, signal: null, err: /was removed outside taskhost/ });
  t.equal((await driver.inspectTask(cfg.id)).state, 'exited');
  await driver.destroyTask(cfg.id, false);
  await t.rejects(driver.inspectTask(cfg.id), TaskNotFoundError);
});

engineTest('OOM: the Engine says the container was OOM-killed, and so does the exit', async (t) => {
  const { driver } = newDriver(t);
  const events = collectEvents(t, driver);
  const cfg = taskConfig(t, sh('x=a; while :; do x=$x$x; done'), { resources: { memoryMB: 8 } });
  await driver.startTask(cfg);
  const exit = await driver.waitTask(cfg.id, forever);
  t.same(exit, { exitCode: 137, signal: null, oomKilled: true }, 'OOM from State.OOMKilled; no SIGKILL claimed');
  await until(
    () => events.some((e) => e.taskId === cfg.id && e.annotations?.oomKilled === 'true' && /OOM killed/.test(e.message)),
    'the OOM event',
  );
  await driver.destroyTask(cfg.id, false);
});

engineTest('destroy: refuses a running task unless forced; removes the container either way', async (t) => {
  const { driver, images } = newDriver(t);
  const cfg = taskConfig(t, { command: 'sleep', args: ['30'] });
  const { handle } = await driver.startTask(cfg);
  const { containerId, imageId } = stateOf(handle);
  await t.rejects(driver.destroyTask(cfg.id, false), TaskRunningError);
  t.ok(await containerExists(containerId), 'a refused destroy leaves the container');
  const waiting = driver.waitTask(cfg.id, forever);
  await driver.destroyTask(cfg.id, true);
  t.same(await waiting, { exitCode: 137, signal: 'SIGKILL', oomKilled: false }, 'a waiter gets the forced kill');
  t.notOk(await containerExists(containerId));
  t.equal(images.imageUsers(imageId), 0);
  await t.rejects(driver.destroyTask(cfg.id, true), TaskNotFoundError);

  const { driver: keeper } = newDriver(t, { gc: { container: false } });
  const kept = taskConfig(t, sh('exit 0'));
  const { handle: keptHandle } = await keeper.startTask(kept);
  await keeper.waitTask(kept.id, forever);
  await keeper.destroyTask(kept.id, false);
  t.ok(await containerExists(stateOf(keptHandle).containerId), 'gc.container false keeps the container');
});

engineTest('inspect: running, then exited with the times and result from the Engine', async (t) => {
  const { driver } = newDriver(t);
  const cfg = taskConfig(t, sh('sleep 0.3; exit 4'));
  const { handle } = await driver.startTask(cfg);
  const running = await driver.inspectTask(cfg.id);
  t.match(running, {
    id: cfg.id,
    name: 'web',
    state: 'running',
    driverAttributes: { containerId: stateOf(handle).containerId, image, containerName: containerName(cfg) },
  });
  t.notOk(running.exitResult);
  await driver.waitTask(cfg.id, forever);
  const done = await driver.inspectTask(cfg.id);
  t.match(done, { state: 'exited', exitResult: exited(4) });
  t.ok(Date.parse(done.completedAt!) - Date.parse(done.startedAt) >= 250, `${done.startedAt} .. ${done.completedAt}`);
  await driver.destroyTask(cfg.id, false);
});

engineTest('signals: delivered, named; unknown ones refused; an exited task refuses them', async (t) => {
  const { driver } = newDriver(t);
  const cfg = taskConfig(t, sh("trap 'echo got USR1' USR1; trap 'exit 5' HUP; echo ready; while :; do sleep 1 & wait; done"));
  await driver.startTask(cfg);
  await until(() => readFileSync(cfg.stdoutPath, 'utf8').includes('ready'), 'the traps to be set');
  await driver.signalTask(cfg.id, 'SIGUSR1');
  await until(() => readFileSync(cfg.stdoutPath, 'utf8').includes('got USR1'), 'the trap to run');
  await t.rejects(driver.signalTask(cfg.id, 'SIGNOPE'), InvalidConfigError);
  await driver.signalTask(cfg.id, 'SIGHUP');
  t.same(await driver.waitTask(cfg.id, forever), exited(5));
  await t.rejects(driver.signalTask(cfg.id, 'SIGUSR1'), TaskNotRunningError);
  await driver.destroyTask(cfg.id, false);
});

engineTest('exec: output, exit codes, timeouts; refused in an exited task', async (t) => {
  const { driver } = newDriver(t);
  const cfg = taskConfig(t, { command: 'sleep', args: ['30'] });
  await driver.startTask(cfg);
  t.same(await driver.execTask(cfg.id, ['echo', 'hi'], 0), { stdout: 'hi\n', stderr: '', exitResult: exited(0) });
  t.same(await driver.execTask(cfg.id, ['sh', '-c', 'echo out; echo err >&2; exit 3'], 5000), {
    stdout: 'out\n',
    stderr: 'err\n',
    exitResult: exited(3),
  });
  const big = await driver.execTask(
    cfg.id,
    ['sh', '-c', 'i=0; while [ $i -lt 3000 ]; do echo 0123456789012345678901234567890123456789; i=$((i+1)); done'],
    10_000,
  );
  t.equal(big.stdout.length, 64 * 1024, 'output is capped at 64 KiB (the last bytes)');
  const began = Date.now();
  const slow = await driver.execTask(cfg.id, ['sleep', '10'], 300);
  t.ok(Date.now() - began < 3000, 'the timeout ends the exec');
  t.match(slow.exitResult, { exitCode: 137, signal: 'SIGKILL', err: /did not finish within 300ms/ });
  const missing = await driver.execTask(cfg.id, ['no-such-command'], 5000);
  t.equal(missing.exitResult.exitCode, 126, 'a command that is not there: the Engine says 126');
  t.match(missing.stdout + missing.stderr, /executable file not found/);
  const cancelled = new AbortController();
  const pending = driver.execTask(cfg.id, ['sleep', '10'], 0, cancelled.signal);
  setTimeout(() => cancelled.abort(), 200);
  await t.rejects(pending, CancelledError);
  await t.rejects(driver.execTask(cfg.id, [], 0), InvalidConfigError);
  await driver.stopTask(cfg.id, 0);
  await t.rejects(driver.execTask(cfg.id, ['echo'], 0), TaskNotRunningError);
  await driver.destroyTask(cfg.id, false);
});

engineTest('stats: samples from the Engine at most once per interval, ending when the task exits', async (t) => {
  const { driver } = newDriver(t);
  const cfg = taskConfig(t, sh('x=0; while [ $x -lt 1500000 ]; do x=$((x+1)); done; sleep 30'), { resources: { memoryMB: 64 } });
  await driver.startTask(cfg);
  const samples: { at: number; usage: TaskResourceUsage }[] = [];
  const began = Date.now();
  for await (const usage of driver.taskStats(cfg.id, 1500, forever)) {
    samples.push({ at: Date.now(), usage });
    if (samples.length === 3) break;
  }
  t.equal(samples.length, 3);
  t.ok(samples[2]!.at - samples[0]!.at >= 2500, 'at most one sample per 1.5s');
  t.ok(Date.now() - began < 6000);
  const last = samples[2]!.usage;
  t.match(last, { taskId: cfg.id, cpu: { percent: Number }, memory: { rssBytes: Number, usageBytes: Number } });
  t.ok(last.measured.includes('cpu.percent') && last.measured.includes('memory.rssBytes'));
  t.ok(last.memory.rssBytes > 0 && last.memory.rssBytes < 64 * 1024 * 1024);
  t.ok(
    samples.some((s) => s.usage.cpu.percent > 5),
    `the busy loop shows as CPU use (${samples.map((s) => s.usage.cpu.percent.toFixed(1)).join(', ')})`,
  );

  const ending = (async () => {
    let n = 0;
    for await (const _ of driver.taskStats(cfg.id, 100, forever)) n++;
    return n;
  })();
  await delay(1200);
  await driver.stopTask(cfg.id, 0);
  t.ok((await ending) >= 1, 'the stream ended by itself when the task exited');
  await t.rejects(
    (async () => {
      for await (const _ of driver.taskStats(cfg.id, 0, forever)) break;
    })(),
    InvalidConfigError,
  );
  await driver.destroyTask(cfg.id, false);
});

engineTest('recover: a fresh driver re-attaches to a running container and records an exited one', async (t) => {
  const first = newDriver(t);
  const live = taskConfig(t, sh('echo before; sleep 1; while :; do echo tick; sleep 0.2; done'));
  const done = taskConfig(t, sh('echo early; sleep 0.5; echo late; exit 9'));
  const { handle: liveHandle } = await first.driver.startTask(live);
  const { handle: doneHandle } = await first.driver.startTask(done);
  await until(() => readFileSync(done.stdoutPath, 'utf8').includes('early'), 'the first line of the exiting task');
  // A crashed driver: it stops watching and writing, the containers go on.
  first.driver.shutdown();
  await delay(900);

  const second = newDriver(t);
  const events = collectEvents(t, second.driver);
  const handle = JSON.parse(JSON.stringify(liveHandle)) as typeof liveHandle;
  await second.driver.recoverTask(handle);
  await second.driver.recoverTask(handle);
  t.equal((await second.driver.inspectTask(live.id)).state, 'running');
  t.equal(second.images.imageUsers(stateOf(handle).imageId), 1, 'the recovered task holds its image again');
  await until(() => (readFileSync(live.stdoutPath, 'utf8').match(/tick/g) ?? []).length >= 3, 'new lines after recovery');
  await second.driver.stopTask(live.id, 0);
  t.match(await second.driver.waitTask(live.id, forever), { exitCode: 137, signal: 'SIGKILL' });
  const lines = readFileSync(live.stdoutPath, 'utf8').trim().split('\n');
  t.equal(lines.filter((l) => l === 'before').length, 1, 'lines written before the restart are not written again');
  t.same([...new Set(lines)].sort(), ['before', 'tick']);

  await second.driver.recoverTask(doneHandle);
  t.same(await second.driver.waitTask(done.id, forever), exited(9), 'the exit that happened meanwhile is known');
  t.match(await second.driver.inspectTask(done.id), { state: 'exited', exitResult: exited(9) });
  t.equal(readFileSync(done.stdoutPath, 'utf8'), 'early\nlate\n', 'what it logged while nobody followed is there, once');
  t.ok(events.some((e) => e.taskId === live.id && /^recovered: container web-\w+ \(running\)/.test(e.message)));

  await second.driver.destroyTask(done.id, false);
  const third = newDriver(t);
  await t.rejects(third.driver.recoverTask(doneHandle), TaskNotFoundError, 'a removed container: the task is lost');
  await t.rejects(third.driver.recoverTask(doneHandle), /no longer exists/);
  await t.rejects(third.driver.recoverTask({ ...doneHandle, version: 99 }), InvalidConfigError);
  await t.rejects(third.driver.recoverTask({ ...doneHandle, driverState: {} }), InvalidConfigError);
});

engineTest(
  'recover of an intent handle (a start in flight when the host died): found by label; created but never started is removed',
  async (t) => {
    const first = newDriver(t);
    const live = taskConfig(t, sh('echo ran >> /alloc/ran; sleep 600'));
    const done = taskConfig(t, sh('echo ran >> /alloc/ran; exit 4'));
    await first.driver.startTask(live);
    await first.driver.startTask(done);
    t.same(await first.driver.waitTask(done.id, forever), exited(4));
    await until(() => readFileSync(path.join(live.allocDir, 'ran'), 'utf8') === 'ran\n', 'the live task to run');
    first.driver.shutdown();

    // The same agent again (its containers carry its data dir), with only the host's intent handles.
    let images!: DockerImageService;
    const second = createDockerDriver({
      imageService: (client, cfg, log) => (images = dockerImageService(client, cfg, log)),
      log: () => {},
    });
    configure(second, { extraLabels: { [runLabel]: runId } }, first.agentDir);
    t.teardown(() => second.shutdown());
    const events = collectEvents(t, second);
    await second.recoverTask(JSON.parse(JSON.stringify(intentHandle(live))) as TaskHandle);
    t.equal((await second.inspectTask(live.id)).state, 'running', 'the running container is adopted');
    t.equal(images.imageUsers((await docker.getContainer(containerName(live)).inspect()).Image), 1, 'it holds its image again');
    await second.recoverTask(intentHandle(done));
    t.same(await second.waitTask(done.id, forever), exited(4), 'the exited one is adopted with its exit code');
    t.match(await second.inspectTask(done.id), { driverAttributes: { containerName: containerName(done), image } });
    await second.stopTask(live.id, 0);
    t.match(await second.waitTask(live.id, forever), { signal: 'SIGKILL' });
    t.equal(readFileSync(path.join(live.allocDir, 'ran'), 'utf8'), 'ran\n', 'never started again');

    // Created, never started: the host died between the Engine's create and its start.
    const unstarted = taskConfig(t, sh('echo ran >> /alloc/ran'));
    const labels = {
      [taskLabels.taskId]: unstarted.id,
      [taskLabels.driver]: 'docker',
      [taskLabels.managed]: 'true',
      [taskLabels.agent]: first.agentDir,
      [runLabel]: runId,
    };
    const created = await docker.createContainer({
      name: containerName(unstarted),
      Image: image,
      Cmd: ['sh', '-c', 'echo ran >> /alloc/ran'],
      Labels: labels,
    });
    await t.rejects(second.recoverTask(intentHandle(unstarted)), {
      code: 'TASK_NOT_FOUND',
      message: /created but never started .* removed/,
    });
    t.notOk(await containerExists(created.id), 'it is removed, not started');
    t.ok(events.some((e) => e.taskId === unstarted.id && /^removed container .* never started/.test(e.message)));
    const elsewhere = await docker.createContainer({
      Image: image,
      Cmd: ['true'],
      Labels: { ...labels, [taskLabels.agent]: '/another/agent' },
    });
    await t.rejects(second.recoverTask(intentHandle(unstarted)), { code: 'TASK_NOT_FOUND', message: /no container carries its label/ });
    t.ok(await containerExists(elsewhere.id), "another agent's container with the same label is not this agent's");

    await second.destroyTask(done.id, false);
    await second.destroyTask(live.id, false);
  },
);

engineTest('the exit is not lost when the connection to the Engine drops during the wait', async (t) => {
  const proxy = await engineProxy(t);
  const { driver } = newDriver(t, { endpoint: `unix://${proxy.path}` });
  const cfg = taskConfig(t, sh('sleep 1.5; echo done; exit 6'));
  await driver.startTask(cfg);
  await delay(300);
  proxy.down();
  await delay(500);
  proxy.up();
  t.same(await driver.waitTask(cfg.id, forever), exited(6));
  t.equal(readFileSync(cfg.stdoutPath, 'utf8'), 'done\n', 'the log follow resumed too');
  await driver.destroyTask(cfg.id, false);
});

engineTest('reconciler: removes labelled containers it does not own after the grace, and nothing else', async (t) => {
  const { driver, agentDir } = newDriver(t, { gc: { danglingGrace: '1s' } });
  const tracked = taskConfig(t, { command: 'sleep', args: ['30'] });
  const { handle } = await driver.startTask(tracked);
  const labels = (taskId: string, agent = agentDir) => ({
    [taskLabels.taskId]: taskId,
    [taskLabels.driver]: 'docker',
    [taskLabels.managed]: 'true',
    [taskLabels.agent]: agent,
    [runLabel]: runId,
  });
  const make = (name: string, Labels: Record<string, string>) =>
    docker.createContainer({ name: `${name}-${runId}`, Image: image, Cmd: ['sleep', '30'], Labels, HostConfig: { NetworkMode: 'none' } });
  const dangling = await make('dangling', labels('gone/web/00000000'));
  const unlabelled = await make('unlabelled', { [runLabel]: runId });
  const otherAgent = await make('other-agent', labels('gone/web/00000001', '/some/other/agent'));

  t.same(await driver.reconcile(), { removed: [], wouldRemove: [] }, 'nothing is older than the grace yet');
  const later = Date.now() + 5_000;
  const { driver: dry } = newDriver(t, { gc: { danglingGrace: '1s', dryRun: true } });
  t.same((await dry.reconcile({ now: later })).removed, [], 'dry run removes nothing');

  const result = await driver.reconcile({ now: later });
  t.same(
    result.removed.map((c) => c.id),
    [dangling.id],
  );
  t.match(result.removed[0], { name: `dangling-${runId}`, taskId: 'gone/web/00000000' });
  t.notOk(await containerExists(dangling.id), 'the dangling container is gone');
  t.ok(await containerExists(unlabelled.id), 'a container without the labels is never touched');
  t.ok(await containerExists(otherAgent.id), "another agent's container is left to that agent");
  t.ok(await containerExists(stateOf(handle).containerId), 'a tracked task is left alone');
  await driver.destroyTask(tracked.id, true);
});

engineTest('reconciler: a driver that has just started takes nothing, so its host can recover the containers first', async (t) => {
  const { agentDir } = newDriver(t);
  const labels = {
    [taskLabels.taskId]: 'recovering/web/00000003',
    [taskLabels.driver]: 'docker',
    [taskLabels.managed]: 'true',
    [taskLabels.agent]: agentDir,
    [runLabel]: runId,
  };
  const waiting = await docker.createContainer({ Image: image, Cmd: ['true'], Labels: labels });
  await delay(1_500); // older than the grace below
  const { driver: fresh } = newDriver(t);
  configure(fresh, { gc: { danglingGrace: '1s' }, extraLabels: { [runLabel]: runId } }, agentDir);
  t.same(await fresh.reconcile(), { removed: [], wouldRemove: [] }, 'the driver itself is younger than the grace');
  t.ok(await containerExists(waiting.id));
  t.same(
    (await fresh.reconcile({ now: Date.now() + 1_000 })).removed.map((c) => c.id),
    [waiting.id],
    'once it is not, the container goes',
  );
});

engineTest('reconciler: dry run only reports; init runs it', async (t) => {
  const { driver, agentDir, logs } = newDriver(t, { gc: { danglingGrace: '1ms', dryRun: true } });
  const dangling = await docker.createContainer({
    Image: image,
    Cmd: ['true'],
    Labels: {
      [taskLabels.taskId]: 'gone/web/00000002',
      [taskLabels.driver]: 'docker',
      [taskLabels.managed]: 'true',
      [taskLabels.agent]: agentDir,
      [runLabel]: runId,
    },
  });
  const result = await driver.reconcile({ now: Date.now() + 2_000 });
  t.same(
    result.wouldRemove.map((c) => c.id),
    [dangling.id],
  );
  t.ok(await containerExists(dangling.id));
  t.match(logs, [/^dry run: would remove dangling container .* of task "gone\/web\/00000002"/]);

  // The same agent, not in dry-run mode: init starts the reconciler, which runs every interval.
  const { driver: real } = newDriver(t);
  configure(real, { gc: { danglingGrace: '1ms', reconcileInterval: '200ms' }, extraLabels: { [runLabel]: runId } }, agentDir);
  real.init();
  await until(async () => !(await containerExists(dangling.id)), 'the reconciler started by init to remove it');
  t.pass('removed without a direct call');
});

engineTest(
  'fingerprint: healthy with the Engine attributes; undetected without a socket; unhealthy when it does not answer; healthy again by itself',
  async (t) => {
    const first = async (driver: DockerDriver): Promise<DriverFingerprint> => {
      const stop = new AbortController();
      for await (const fp of driver.fingerprint(stop.signal)) {
        stop.abort();
        return fp;
      }
      throw new Error('no fingerprint');
    };
    const { driver } = newDriver(t);
    const version = await docker.version();
    t.match(await first(driver), {
      health: 'healthy',
      attributes: {
        'driver.docker': true,
        'driver.docker.version': version.Version,
        'driver.docker.api_version': version.ApiVersion,
        'driver.docker.runtimes': /runc/,
        'driver.docker.os': 'linux',
      },
    });
    t.match(await first(newDriver(t, { endpoint: 'unix:///nonexistent.sock' }).driver), {
      health: 'undetected',
      healthDescription: /\/nonexistent\.sock does not exist/,
    });
    t.match(await first(newDriver(t, { endpoint: 'tcp://127.0.0.1:1' }).driver), {
      health: 'unhealthy',
      healthDescription: /ECONNREFUSED/,
    });

    const proxy = await engineProxy(t);
    const { driver: watched } = newDriver(t, { endpoint: `unix://${proxy.path}`, fingerprintInterval: '50ms' });
    const stop = new AbortController();
    t.teardown(() => stop.abort());
    const seen: string[] = [];
    for await (const fp of watched.fingerprint(stop.signal)) {
      seen.push(fp.health);
      if (seen.length === 2) proxy.down();
      if (seen.length === 4) proxy.up();
      if (seen.at(-1) === 'healthy' && seen.includes('unhealthy')) break;
    }
    const changes = seen.filter((health, i) => health !== seen[i - 1]);
    t.same(changes, ['healthy', 'unhealthy', 'healthy'], 'no restart needed to be healthy again');
  },
);

engineTest('refusals before any work: policy, a missing image, a command that cannot start', async (t) => {
  const { driver, images } = newDriver(t);
  await t.rejects(driver.startTask(taskConfig(t, { volumes: ['/etc:/etc2'] })), {
    code: 'INVALID_CONFIG',
    errors: [{ path: '/config/volumes/0' }],
  });
  await t.rejects(driver.startTask(taskConfig(t, { capAdd: ['SYS_ADMIN'] })), /capability SYS_ADMIN is not allowed/);
  await t.rejects(driver.startTask(taskConfig(t, { image: 'Busy Box' })), { code: 'INVALID_CONFIG', errors: [{ path: '/config/image' }] });
  await t.rejects(
    driver.startTask(taskConfig(t, { image: 'busybox:0.0-nope', pullPolicy: 'never' })),
    /is not present and the pull policy is "never"/,
  );

  const cfg = taskConfig(t, { command: 'no-such-command' });
  await t.rejects(driver.startTask(cfg), { code: 'INVALID_CONFIG', errors: [{ path: '/config/command' }] });
  await t.rejects(driver.inspectTask(cfg.id), TaskNotFoundError, 'not tracked');
  const left = await docker.listContainers({ all: true, filters: { label: [`${taskLabels.taskId}=${cfg.id}`] } });
  t.same(left, [], 'the container that could not start was removed');
  const { Id } = await docker.getImage(image).inspect();
  t.equal(images.imageUsers(Id), 0, 'and its image released');
  await driver.startTask({ ...cfg, config: { image, command: 'true' } }).catch(() => undefined);
  t.pass('the id is free after a failed start');
});

/** A unix socket in front of the Engine's that can stop answering (and come back), as a restarting daemon does. */
async function engineProxy(t: Test): Promise<{ path: string; down(): void; up(): void }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-proxy-'));
  const file = path.join(dir, 'docker.sock');
  const open = new Set<Socket>();
  let answering = true;
  const server = createServer((client) => {
    if (!answering) return client.destroy();
    const upstream = connect(socket);
    open.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(file, resolve));
  t.teardown(() => {
    for (const s of open) s.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    path: file,
    down() {
      answering = false;
      for (const s of open) s.destroy();
    },
    up() {
      answering = true;
    },
  };
}
