// The mock driver in-process, one behaviour per test, with real files and real (short) time;
// then once through a real worker thread, the way the host runs it.
import { getEventListeners } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import createMockDriver from '../../../drivers/mock/index.js';
import { fillSupervision } from '../../../plugin-loader/agent-config.js';
import { discover } from '../../../plugin-loader/discovery.js';
import { PluginInstance } from '../../../plugin-loader/plugin-instance.js';
import { signalExit, type ExitResult, type TaskConfig, type TaskEvent, type TaskHandle } from '../../../shared/driver.js';
import {
  CancelledError,
  InvalidConfigError,
  PluginError,
  TaskExistsError,
  TaskNotFoundError,
  TaskRunningError,
} from '../../../shared/errors.js';
import { compileSchema } from '../../../shared/schema.js';
import { fastSupervision } from '../../helpers/fixture-plugins.js';

type MockDriver = ReturnType<typeof createMockDriver>;

// The driver's timers are unref'd (a plugin must not hold its process open); this one keeps the
// test process alive while a test waits on nothing else.
const keepAlive = setInterval(() => undefined, 1000);
t.teardown(() => clearInterval(keepAlive));

const forever = new AbortController().signal;
let nextId = 0;

function taskConfig(config: Record<string, unknown> = {}, overrides: Partial<TaskConfig> = {}): TaskConfig {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-mock-'));
  const id = `alloc-1/web/${(nextId++).toString(16).padStart(8, '0')}`;
  return {
    id,
    name: 'web',
    allocId: 'alloc-1',
    jobName: 'demo',
    groupName: 'group',
    driver: 'mock',
    config,
    env: {},
    deviceEnv: {},
    resources: {},
    devices: [],
    mounts: [],
    killTimeoutMs: 1000,
    allocDir: dir,
    taskDir: dir,
    secretsDir: dir,
    stdoutPath: path.join(dir, 'stdout.log'),
    stderrPath: path.join(dir, 'stderr.log'),
    ...overrides,
  };
}

async function started(driver: MockDriver, config: Record<string, unknown> = {}, overrides: Partial<TaskConfig> = {}) {
  const cfg = taskConfig(config, overrides);
  const { handle } = await driver.startTask(cfg);
  return { cfg, id: cfg.id, handle };
}

/** Every event the driver emits from now on, until the test ends. */
function recordEvents(t: { teardown(fn: () => Promise<void>): void }, driver: MockDriver): TaskEvent[] {
  const seen: TaskEvent[] = [];
  const controller = new AbortController();
  const recording = (async () => {
    for await (const event of driver.taskEvents(controller.signal)) seen.push(event);
  })();
  t.teardown(async () => {
    controller.abort();
    await recording;
  });
  return seen;
}

const messages = (events: TaskEvent[], id: string) => events.filter((e) => e.taskId === id).map((e) => e.message);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const exited = (exitCode: number, oomKilled = false): ExitResult => ({ exitCode, signal: null, oomKilled });

t.test('describes itself: info, capabilities, schemas', async (t) => {
  const driver = createMockDriver();
  t.same(driver.info(), { type: 'driver', name: 'mock', pluginVersion: '0.1.0', apiVersions: ['1.0'] });
  t.same(driver.capabilities(), {
    sendSignals: true,
    exec: true,
    fsIsolation: 'none',
    networkModes: ['none', 'host'],
    mounts: false,
  });
  const config = compileSchema(driver.configSchema());
  t.same(config({}), { ok: true, value: { fingerprintInterval: '30s', healthy: true } });
  t.match(config({ healthy: 'yes' }), { ok: false, issues: [{ path: '/healthy' }] });
  const task = compileSchema(driver.taskConfigSchema());
  t.match(task({}), {
    ok: true,
    value: { runFor: '0s', exitCode: 0, oomKilled: false, stopIgnored: false, stats: { cpuPercent: 0.5 } },
  });
  t.match(task({ exitSignal: 'SIGNOPE', exitCode: 256, stdot: 'x' }), {
    ok: false,
    issues: [{ path: '/stdot', message: /did you mean "stdout"/ }, { path: '/exitCode' }, { path: '/exitSignal' }],
  });
  t.not(createMockDriver(), driver, 'each call of the factory is a fresh driver');
});

t.test('fingerprint: the first item at once, then every fingerprintInterval, until aborted', async (t) => {
  const driver = createMockDriver();
  driver.setConfig({
    apiVersion: '1.0',
    config: { fingerprintInterval: '500ms', healthy: false },
    agent: { dataDir: '/tmp', pluginDataDir: '/tmp' },
  });
  const controller = new AbortController();
  const began = Date.now();
  const times: number[] = [];
  for await (const fp of driver.fingerprint(controller.signal)) {
    t.same(fp, { health: 'unhealthy', healthDescription: 'mock driver configured unhealthy', attributes: { 'driver.mock': true } });
    times.push(Date.now() - began);
    if (times.length === 3) controller.abort();
  }
  // The interval is long enough that "at once" has a wide margin on a busy machine.
  t.ok(times[0]! < 250, `first at once (${times[0]}ms)`);
  t.ok(times[2]! >= 990, `then every interval (${times[2]}ms for the third)`);

  const healthy = createMockDriver();
  const slow = new AbortController();
  const stream = healthy.fingerprint(slow.signal);
  t.match((await stream.next()).value, { health: 'healthy', healthDescription: 'mock driver is ready' });
  const waiting = stream.next();
  await sleep(10);
  t.equal(getEventListeners(slow.signal, 'abort').length, 1, 'one listener while it waits');
  const abortedAt = Date.now();
  slow.abort();
  t.same(await waiting, { done: true, value: undefined }, 'an abort ends the 30 s wait');
  t.ok(Date.now() - abortedAt < 200);
  t.equal(getEventListeners(slow.signal, 'abort').length, 0, 'and leaves no listener');
});

t.test('a task runs for runFor, then exits with its exit code; waitTask answers every time', async (t) => {
  const driver = createMockDriver();
  const began = Date.now();
  const { cfg, id, handle } = await started(driver, { runFor: '100ms', exitCode: 3 });
  t.match(handle, { version: 1, config: cfg, state: 'running', driverState: { runForMs: 100, exit: exited(3) } });
  t.equal((await driver.inspectTask(id)).state, 'running');
  t.same(await driver.waitTask(id, forever), exited(3));
  t.ok(Date.now() - began >= 98, 'not before runFor');
  t.same(await driver.waitTask(id, forever), exited(3), 'again after the exit');
  const status = await driver.inspectTask(id);
  t.match(status, { id, name: 'web', state: 'exited', exitResult: exited(3) });
  t.equal(Date.parse(status.completedAt!) - Date.parse(status.startedAt), 100, 'completedAt is the scripted end');
});

t.test('runFor "0s" (the default) exits at once with code 0', async (t) => {
  const driver = createMockDriver();
  const { id, handle } = await started(driver);
  t.equal(handle.state, 'running', 'it did start');
  const began = Date.now();
  t.same(await driver.waitTask(id, forever), exited(0));
  t.ok(Date.now() - began < 200);
});

t.test('exitSignal: the task dies of a signal (exit code 128 + n); oomKilled is reported', async (t) => {
  const driver = createMockDriver();
  const segv = await started(driver, { exitSignal: 'SIGSEGV', exitCode: 5 });
  t.same(await driver.waitTask(segv.id, forever), { exitCode: 139, signal: 'SIGSEGV', oomKilled: false });
  const oomKill = await started(driver, { exitSignal: 'SIGKILL', oomKilled: true });
  t.same(await driver.waitTask(oomKill.id, forever), { exitCode: 137, signal: 'SIGKILL', oomKilled: true });
  t.same(await driver.waitTask(oomKill.id, forever), signalExit('SIGKILL', true));
  const oomCode = await started(driver, { exitCode: 2, oomKilled: true });
  t.same(await driver.waitTask(oomCode.id, forever), exited(2, true));
});

t.test('startError: startTask rejects, recoverable as scripted, and tracks nothing', async (t) => {
  const driver = createMockDriver();
  const cfg = taskConfig({ startError: 'no such image', stdout: 'never' });
  const err = await driver.startTask(cfg).catch((e: unknown) => e);
  t.ok(err instanceof PluginError);
  t.match(err, { code: 'PLUGIN_ERROR', message: 'no such image', recoverable: false });
  await t.rejects(driver.inspectTask(cfg.id), TaskNotFoundError);
  t.notOk(existsSync(cfg.stdoutPath), 'no output written');
  await t.rejects(driver.startTask(taskConfig({ startError: 'try later', startErrorRecoverable: true })), {
    message: 'try later',
    recoverable: true,
  });
});

t.test('a config that breaks the schema is refused with the path of each error', async (t) => {
  const driver = createMockDriver();
  const err = await driver.startTask(taskConfig({ runFor: 5, stopIgnored: 'yes' })).catch((e: unknown) => e);
  t.ok(err instanceof InvalidConfigError);
  t.same(
    (err as InvalidConfigError).errors.map((i) => i.path),
    ['/runFor', '/stopIgnored'],
  );
});

t.test('stdout and stderr are appended to the task files at start', async (t) => {
  const driver = createMockDriver();
  const cfg = taskConfig({ stdout: 'hello\n', stderr: 'oops\n' });
  writeFileSync(cfg.stdoutPath, 'earlier\n');
  await driver.startTask(cfg);
  t.equal(readFileSync(cfg.stdoutPath, 'utf8'), 'earlier\nhello\n');
  t.equal(readFileSync(cfg.stderrPath, 'utf8'), 'oops\n');
  const quiet = await started(driver);
  t.equal(readFileSync(quiet.cfg.stdoutPath, 'utf8'), '', 'created even when the task writes nothing');
  t.equal(readFileSync(quiet.cfg.stderrPath, 'utf8'), '');
  await t.rejects(driver.startTask(taskConfig({}, { stdoutPath: '/nonexistent/dir/stdout' })), { code: 'ENOENT' });
});

t.test('an id is started once; after destroy it is free again', async (t) => {
  const driver = createMockDriver();
  const { cfg, id } = await started(driver, { runFor: '10m' });
  await t.rejects(driver.startTask(cfg), TaskExistsError);
  await t.rejects(driver.startTask(cfg), { message: `task "${id}" already exists in the mock driver` });
  await driver.destroyTask(id, true);
  await driver.startTask(cfg);
  t.equal((await driver.inspectTask(id)).state, 'running');
  await driver.destroyTask(id, true);
});

t.test('every task method refuses an unknown id with TaskNotFoundError', async (t) => {
  const driver = createMockDriver();
  const id = 'alloc-1/web/ffffffff';
  await t.rejects(driver.waitTask(id, forever), TaskNotFoundError);
  await t.rejects(driver.stopTask(id, 100), TaskNotFoundError);
  await t.rejects(driver.destroyTask(id, true), TaskNotFoundError);
  await t.rejects(driver.inspectTask(id), TaskNotFoundError);
  await t.rejects(driver.signalTask(id, 'SIGHUP'), TaskNotFoundError);
  await t.rejects(driver.execTask(id, ['ls'], 1000), TaskNotFoundError);
  await t.rejects(driver.taskStats(id, 100, forever).next(), { code: 'TASK_NOT_FOUND', message: /no task "alloc-1\/web\/ffffffff"/ });
});

t.test('stopTask ends a task with killSignal, else the task killSignal, else SIGTERM; an exited task is left alone', async (t) => {
  const driver = createMockDriver();
  const plain = await started(driver, { runFor: '10m' });
  const began = Date.now();
  await driver.stopTask(plain.id, 5000);
  t.ok(Date.now() - began < 200, 'right away');
  t.same(await driver.waitTask(plain.id, forever), { exitCode: 143, signal: 'SIGTERM', oomKilled: false });
  const own = await started(driver, { runFor: '10m' }, { killSignal: 'SIGINT' });
  await driver.stopTask(own.id, 5000);
  t.same(await driver.waitTask(own.id, forever), signalExit('SIGINT'));
  const given = await started(driver, { runFor: '10m' }, { killSignal: 'SIGINT' });
  await driver.stopTask(given.id, 5000, 'SIGUSR1');
  t.same(await driver.waitTask(given.id, forever), signalExit('SIGUSR1'));

  await driver.stopTask(plain.id, 5000, 'SIGKILL');
  t.same(await driver.waitTask(plain.id, forever), signalExit('SIGTERM'), 'a second stop changes nothing');
  const done = await started(driver, { exitCode: 4 });
  await driver.waitTask(done.id, forever);
  await driver.stopTask(done.id, 5000);
  t.same(await driver.waitTask(done.id, forever), exited(4));
});

t.test('stopTask as the host calls it without killSignal (undefined, then the AbortSignal): SIGTERM', async (t) => {
  const driver = createMockDriver();
  const { id } = await started(driver, { runFor: '10m' });
  const asTheHost = driver.stopTask.bind(driver) as (...args: unknown[]) => Promise<void>;
  await asTheHost(id, 5000, undefined, new AbortController().signal);
  t.same(await driver.waitTask(id, forever), signalExit('SIGTERM'));
});

t.test('stopIgnored: stop takes the whole timeout, then the task dies of SIGKILL', async (t) => {
  const driver = createMockDriver();
  const events = recordEvents(t, driver);
  const { id } = await started(driver, { runFor: '10m', stopIgnored: true });
  const began = Date.now();
  const stopping = driver.stopTask(id, 150);
  await sleep(50);
  t.equal((await driver.inspectTask(id)).state, 'running', 'still running during the timeout');
  await driver.stopTask(id, 10_000); // a later stop with a longer timeout does not delay the kill
  await stopping;
  const took = Date.now() - began;
  t.ok(took >= 140 && took < 1000, `took the timeout (${took}ms)`);
  t.same(await driver.waitTask(id, forever), { exitCode: 137, signal: 'SIGKILL', oomKilled: false });
  t.same(messages(events, id).slice(1), [
    'ignored SIGTERM; killing it with SIGKILL in 150ms',
    'ignored SIGTERM',
    'killed by SIGKILL (exit code 137)',
  ]);

  const hurried = await started(driver, { runFor: '10m', stopIgnored: true });
  const hurriedBegan = Date.now();
  const patient = driver.stopTask(hurried.id, 10_000);
  await driver.stopTask(hurried.id, 100);
  await patient;
  const hurriedTook = Date.now() - hurriedBegan;
  t.ok(hurriedTook >= 95 && hurriedTook < 1000, `a later, shorter stop kills sooner (${hurriedTook}ms)`);

  const killed = await started(driver, { runFor: '10m', stopIgnored: true });
  const killBegan = Date.now();
  await driver.stopTask(killed.id, 10_000, 'SIGKILL');
  t.ok(Date.now() - killBegan < 200, 'SIGKILL cannot be ignored');
  t.same(await driver.waitTask(killed.id, forever), signalExit('SIGKILL'));

  const quick = await started(driver, { runFor: '80ms', exitCode: 6, stopIgnored: true });
  const quickBegan = Date.now();
  await driver.stopTask(quick.id, 10_000);
  t.ok(Date.now() - quickBegan < 1000, 'a task that exits by itself ends the stop early');
  t.same(await driver.waitTask(quick.id, forever), exited(6));
});

t.test('destroyTask refuses a running task unless forced, then forgets it', async (t) => {
  const driver = createMockDriver();
  const { id } = await started(driver, { runFor: '10m' });
  const waiting = driver.waitTask(id, forever);
  await t.rejects(driver.destroyTask(id, false), TaskRunningError);
  t.equal((await driver.inspectTask(id)).state, 'running', 'untouched');
  await driver.destroyTask(id, true);
  t.same(await waiting, signalExit('SIGKILL'), 'force kills it first');
  await t.rejects(driver.inspectTask(id), TaskNotFoundError);

  const done = await started(driver);
  await driver.waitTask(done.id, forever);
  await driver.destroyTask(done.id, false);
  await t.rejects(driver.waitTask(done.id, forever), TaskNotFoundError);
});

t.test('inspectTask: running, then exited with its result', async (t) => {
  const driver = createMockDriver();
  const before = Date.now();
  const { id } = await started(driver, { runFor: '10m' });
  const running = await driver.inspectTask(id);
  t.same(Object.keys(running).sort(), ['driverAttributes', 'id', 'name', 'startedAt', 'state']);
  t.match(running, { id, name: 'web', state: 'running', driverAttributes: { runFor: '10m', recovered: 'false' } });
  t.ok(Date.parse(running.startedAt) >= before && Date.parse(running.startedAt) <= Date.now());
  t.equal(new Date(running.startedAt).toISOString(), running.startedAt, 'ISO time');
  await driver.stopTask(id, 1000);
  const stopped = await driver.inspectTask(id);
  t.match(stopped, { state: 'exited', exitResult: signalExit('SIGTERM') });
  t.ok(Date.parse(stopped.completedAt!) >= Date.parse(stopped.startedAt));
});

t.test('waitTask: an abort stops the wait at once and leaves no listener', async (t) => {
  const driver = createMockDriver();
  const { id } = await started(driver, { runFor: '10m' });
  const controller = new AbortController();
  const waiting = driver.waitTask(id, controller.signal);
  t.equal(getEventListeners(controller.signal, 'abort').length, 1);
  controller.abort();
  const err = await waiting.catch((e: unknown) => e);
  t.ok(err instanceof CancelledError);
  t.equal(getEventListeners(controller.signal, 'abort').length, 0);
  await t.rejects(driver.waitTask(id, controller.signal), CancelledError, 'an aborted signal fails at once');

  const quick = await started(driver, { runFor: '30ms' });
  const kept = new AbortController();
  await driver.waitTask(quick.id, kept.signal);
  t.equal(getEventListeners(kept.signal, 'abort').length, 0, 'an answered wait leaves no listener either');
  t.same(await driver.waitTask(quick.id, controller.signal), exited(0), 'after the exit the signal does not matter');
});

t.test('taskStats: the first sample at once, then every interval, until the task exits', async (t) => {
  const driver = createMockDriver();
  // At a 500ms interval "at once" and "ends with the task" keep wide margins on a busy machine.
  const { id } = await started(driver, { runFor: '2250ms', stats: { cpuPercent: 12.5, rssBytes: 4096 } });
  const began = Date.now();
  const times: number[] = [];
  for await (const usage of driver.taskStats(id, 500, forever)) {
    times.push(Date.now() - began);
    t.match(usage, { taskId: id, cpu: { percent: 12.5 }, memory: { rssBytes: 4096 }, measured: [] });
    t.ok(Math.abs(usage.timestamp - Date.now()) < 200);
  }
  const ended = Date.now() - began;
  t.ok(times[0]! < 250, `first sample at once (${times[0]}ms)`);
  t.ok(times.length >= 3 && times.length <= 5, `one per interval (${times.join(', ')})`);
  for (let i = 1; i < times.length; i++) t.ok(times[i]! - times[i - 1]! >= 490, 'no faster than the interval');
  t.ok(ended >= 2240 && ended < 2740, `ends when the task exits (${ended}ms)`);

  const defaults = await started(driver, { runFor: '10m' });
  const controller = new AbortController();
  const stream = driver.taskStats(defaults.id, 10_000, controller.signal);
  const first = (await stream.next()).value;
  t.ok(first!.cpu.percent > 0 && first!.memory.rssBytes > 0, 'small non-zero numbers by default');
  const next = stream.next();
  await sleep(10);
  controller.abort();
  t.same(await next, { done: true, value: undefined }, 'an abort ends it');
  t.equal(getEventListeners(controller.signal, 'abort').length, 0);

  const gone = await started(driver);
  await driver.waitTask(gone.id, forever);
  t.same(await driver.taskStats(gone.id, 10, forever).next(), { done: true, value: undefined }, 'an exited task has none');
  await t.rejects(driver.taskStats(defaults.id, 0, forever).next(), RangeError);
  await driver.destroyTask(defaults.id, true);
});

t.test('taskEvents: start, stop, signal, exit and recovery, for every subscriber until it aborts', async (t) => {
  const driver = createMockDriver();
  const first = recordEvents(t, driver);
  const controller = new AbortController();
  const second: TaskEvent[] = [];
  const secondDone = (async () => {
    for await (const event of driver.taskEvents(controller.signal)) second.push(event);
  })();
  const { id } = await started(driver, { runFor: '10m' });
  await driver.signalTask(id, 'SIGHUP');
  await driver.stopTask(id, 1000);
  const quick = await started(driver, { runFor: '0s', exitCode: 1 });
  await driver.waitTask(quick.id, forever);
  await sleep(5);
  t.same(messages(first, id), [
    'started; exits by itself after 10m',
    'received SIGHUP',
    'stopping with SIGTERM',
    'killed by SIGTERM (exit code 143)',
  ]);
  t.same(messages(first, quick.id), ['started; exits by itself after 0ms', 'exited with code 1']);
  t.match(first[0], { taskId: id, taskName: 'web', allocId: 'alloc-1', timestamp: /^\d{4}-\d\d-\d\dT.*Z$/ });
  t.same(second, first, 'each subscriber sees every event');
  controller.abort();
  await secondDone;

  const other = createMockDriver();
  const recovered = recordEvents(t, other);
  const { handle } = await started(driver, { runFor: '10m', exitCode: 2 });
  await other.recoverTask(handle);
  await other.recoverTask({
    ...handle,
    config: { ...handle.config, id: 'alloc-1/web/00000fff' },
    driverState: { ...(handle.driverState as object), startedAt: 0 },
  });
  await sleep(5);
  const end = new Date((handle.driverState as { startedAt: number }).startedAt + 600_000).toISOString();
  t.same(
    recovered.map((e) => e.message),
    [`recovered; exits by itself at ${end}`, 'recovered after its run had ended: exited with code 2'],
  );
  t.equal(second.length, 6, 'an aborted subscriber gets nothing more');
});

t.test('signalTask: scripted error, SIGTERM/SIGINT/SIGKILL end the task, others are only reported', async (t) => {
  const driver = createMockDriver();
  const events = recordEvents(t, driver);
  const failing = await started(driver, { runFor: '10m', signalError: 'signals are off' });
  await t.rejects(driver.signalTask(failing.id, 'SIGTERM'), { code: 'PLUGIN_ERROR', message: 'signals are off' });
  t.equal((await driver.inspectTask(failing.id)).state, 'running');

  const { id } = await started(driver, { runFor: '10m' });
  await driver.signalTask(id, 'SIGHUP');
  await driver.signalTask(id, 'SIGUSR2');
  t.equal((await driver.inspectTask(id)).state, 'running');
  await t.rejects(driver.signalTask(id, 'SIGNOPE'), { code: 'PLUGIN_ERROR', message: /"SIGNOPE" is not a signal/ });
  await driver.signalTask(id, 'SIGINT');
  t.same(await driver.waitTask(id, forever), { exitCode: 130, signal: 'SIGINT', oomKilled: false });
  await t.rejects(driver.signalTask(id, 'SIGHUP'), { message: /has exited/ });
  const term = await started(driver, { runFor: '10m' });
  await driver.signalTask(term.id, 'SIGTERM');
  t.same(await driver.waitTask(term.id, forever), signalExit('SIGTERM'));

  const stubborn = await started(driver, { runFor: '10m', stopIgnored: true });
  await driver.signalTask(stubborn.id, 'SIGTERM');
  await driver.signalTask(stubborn.id, 'SIGINT');
  t.equal((await driver.inspectTask(stubborn.id)).state, 'running', 'a task that ignores stops ignores SIGTERM and SIGINT');
  await driver.signalTask(stubborn.id, 'SIGKILL');
  t.same(await driver.waitTask(stubborn.id, forever), signalExit('SIGKILL'));
  await sleep(5);
  t.same(messages(events, id).slice(1), ['received SIGHUP', 'received SIGUSR2', 'received SIGINT', 'killed by SIGINT (exit code 130)']);
  t.same(messages(events, stubborn.id).slice(1), [
    'received SIGTERM; ignored',
    'received SIGINT; ignored',
    'received SIGKILL',
    'killed by SIGKILL (exit code 137)',
  ]);
  await driver.destroyTask(failing.id, true);
});

t.test('execTask: the command echoed by default, or the scripted result', async (t) => {
  const driver = createMockDriver();
  const echo = await started(driver, { runFor: '10m' });
  t.same(await driver.execTask(echo.id, ['echo', 'hi', 'there'], 1000), {
    stdout: 'echo hi there\n',
    stderr: '',
    exitResult: exited(0),
  });
  await t.rejects(driver.execTask(echo.id, [], 1000), { code: 'PLUGIN_ERROR', message: 'execTask needs a command' });
  const scripted = await started(driver, { runFor: '10m', exec: { stdout: 'ok\n', stderr: 'warn\n', exitCode: 2 } });
  t.same(await driver.execTask(scripted.id, ['anything'], 1000), { stdout: 'ok\n', stderr: 'warn\n', exitResult: exited(2) });
  const partial = await started(driver, { runFor: '10m', exec: { stdout: 'only\n' } });
  t.same(await driver.execTask(partial.id, ['x'], 1000), { stdout: 'only\n', stderr: '', exitResult: exited(0) });
  const done = await started(driver);
  await driver.waitTask(done.id, forever);
  await t.rejects(driver.execTask(done.id, ['ls'], 1000), { message: /has exited/ });
  for (const { id } of [echo, scripted, partial]) await driver.destroyTask(id, true);
});

t.test('recoverTask mid-run in a fresh instance: the task finishes at its scripted time', async (t) => {
  const first = createMockDriver();
  // Recovered halfway: it must end at start + runFor (2s), not recovery + runFor (3s or later).
  const { id, handle } = await started(first, { runFor: '2s', exitCode: 5, stats: { cpuPercent: 3, rssBytes: 77 } });
  await sleep(1000);
  const fresh = createMockDriver();
  await fresh.recoverTask(structuredClone(handle));
  const status = await fresh.inspectTask(id);
  t.match(status, { state: 'running', driverAttributes: { recovered: 'true', runFor: '2s' } });
  t.equal(Date.parse(status.startedAt), (handle.driverState as { startedAt: number }).startedAt, 'the original start time');
  t.match((await fresh.taskStats(id, 1000, forever).next()).value, { memory: { rssBytes: 77 } }, 'the whole script came back');
  const result = await fresh.waitTask(id, forever);
  const sinceStart = Date.now() - Date.parse(status.startedAt);
  t.same(result, exited(5));
  t.ok(sinceStart >= 1990 && sinceStart < 2900, `ends at start + runFor, not recovery + runFor (${sinceStart}ms)`);
  const done = await fresh.inspectTask(id);
  t.equal(Date.parse(done.completedAt!) - Date.parse(done.startedAt), 2000);
});

t.test('recoverTask after the run time has passed: the task is already exited', async (t) => {
  const first = createMockDriver();
  const { id, handle } = await started(first, { runFor: '30ms', exitSignal: 'SIGABRT' });
  await first.waitTask(id, forever);
  const fresh = createMockDriver();
  await fresh.recoverTask(handle);
  const status = await fresh.inspectTask(id);
  t.match(status, { state: 'exited', exitResult: signalExit('SIGABRT') });
  t.equal(Date.parse(status.completedAt!) - Date.parse(status.startedAt), 30, 'completedAt = startedAt + runFor');
  t.same(await fresh.waitTask(id, forever), signalExit('SIGABRT'));
});

t.test('recoverTask: a tracked task is a no-op, recoverError and unknown versions reject', async (t) => {
  const driver = createMockDriver();
  const events = recordEvents(t, driver);
  const failing = await started(driver, { runFor: '10m', recoverError: 'lost the container' });
  await driver.recoverTask(failing.handle);
  t.equal((await driver.inspectTask(failing.id)).driverAttributes.recovered, 'false', 'the tracked task stays as it is');
  await driver.stopTask(failing.id, 1000);
  await driver.recoverTask(failing.handle);
  t.equal((await driver.inspectTask(failing.id)).state, 'exited', 'an exited one too');
  await sleep(5);
  t.equal(messages(events, failing.id).filter((m) => m.startsWith('recovered')).length, 0);

  const fresh = createMockDriver();
  await t.rejects(fresh.recoverTask(failing.handle), { code: 'PLUGIN_ERROR', message: 'lost the container' });
  await t.rejects(fresh.inspectTask(failing.id), TaskNotFoundError);
  const old: TaskHandle = { ...failing.handle, version: 7 };
  await t.rejects(fresh.recoverTask(old), { message: /driverState version 7, this mock driver writes 1/ });
});

t.test('a fresh instance recovers 100 running tasks and loses none', async (t) => {
  const crashed = createMockDriver();
  const handles: TaskHandle[] = [];
  for (let i = 0; i < 100; i++) handles.push((await started(crashed, { runFor: '200ms', exitCode: i % 4 })).handle);
  const fresh = createMockDriver();
  for (const handle of handles) await fresh.recoverTask(structuredClone(handle));
  const results = await Promise.all(handles.map((h) => fresh.waitTask(h.config.id, new AbortController().signal)));
  t.same(
    results,
    handles.map((_, i) => exited(i % 4)),
  );
});

t.test('conformance.json describes configs that do what it says', async (t) => {
  const spec = JSON.parse(readFileSync(new URL('../../../drivers/mock/conformance.json', import.meta.url), 'utf8')) as {
    longRunning: Record<string, unknown>;
    fastExit: { config: Record<string, unknown>; exitCode: number };
    ignoresStop: Record<string, unknown>;
    output: { config: Record<string, unknown>; stdout: string };
    exec: { command: string[]; stdout: string };
    badConfig: { config: Record<string, unknown>; path: string };
  };
  const driver = createMockDriver();
  const long = await started(driver, spec.longRunning);
  t.match(await driver.inspectTask(long.id), { driverAttributes: { runFor: /^\d+m$/ } }, 'runs for minutes');
  t.same(await driver.execTask(long.id, spec.exec.command, 1000), { stdout: spec.exec.stdout, stderr: '', exitResult: exited(0) });
  await driver.stopTask(long.id, 1000);
  t.same(await driver.waitTask(long.id, forever), signalExit('SIGTERM'));
  const fast = await started(driver, spec.fastExit.config);
  t.equal((await driver.waitTask(fast.id, forever)).exitCode, spec.fastExit.exitCode);
  const stubborn = await started(driver, spec.ignoresStop);
  const began = Date.now();
  await driver.stopTask(stubborn.id, 60);
  t.ok(Date.now() - began >= 50);
  t.same(await driver.waitTask(stubborn.id, forever), signalExit('SIGKILL'));
  const output = await started(driver, spec.output.config);
  t.same(await driver.waitTask(output.id, forever), exited(0));
  t.equal(readFileSync(output.cfg.stdoutPath, 'utf8'), spec.output.stdout);
  const validate = compileSchema(driver.taskConfigSchema());
  t.match(validate(spec.badConfig.config), { ok: false, issues: [{ path: spec.badConfig.path }] });
});

t.test('through a real worker thread, as the host runs it', async (t) => {
  const { plugins } = await discover({ pluginDir: '/nonexistent' });
  const mock = plugins.find((p) => p.name === 'mock');
  if (!mock) throw new Error('the built-in mock driver was not discovered');
  const instance = new PluginInstance({
    manifest: mock.manifest,
    entry: mock.entry,
    apiVersion: mock.apiVersion,
    config: {},
    dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-mock-data-')),
    supervision: fillSupervision(fastSupervision),
  });
  t.teardown(() => instance.close());
  await instance.start();
  t.equal(instance.state, 'running');
  const cfg = taskConfig({ runFor: '50ms', exitCode: 7, stdout: 'from the worker\n' });
  const { handle } = await instance.call<{ handle: TaskHandle }>('startTask', [cfg]);
  t.match(handle, { version: 1, state: 'running', config: { id: cfg.id } });
  t.same(await instance.call('waitTask', [cfg.id]), exited(7));
  t.equal(readFileSync(cfg.stdoutPath, 'utf8'), 'from the worker\n');
});
