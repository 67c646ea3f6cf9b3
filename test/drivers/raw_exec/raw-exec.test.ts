import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import rawExecDriver, { type RawExecTaskConfig } from '../../../drivers/raw_exec/index.js';
import { parseProcStat, readProcStat } from '../../../drivers/raw_exec/proc-stat.js';
import { executorLost, exitedUnwatched, fromWaitStatus, killGroup, type DriverState } from '../../../drivers/raw_exec/task-process.js';
import { fillSupervision } from '../../../plugin-loader/agent-config.js';
import { discover } from '../../../plugin-loader/discovery.js';
import { PluginInstance } from '../../../plugin-loader/plugin-instance.js';
import {
  signalExit,
  type ExitResult,
  type TaskConfig,
  type TaskEvent,
  type TaskHandle,
  type TaskResourceUsage,
} from '../../../shared/driver.js';
import { CancelledError, InvalidConfigError, TaskExistsError, TaskNotFoundError, TaskRunningError } from '../../../shared/errors.js';
import { ociArch } from '../../../shared/oci-arch.js';
import { compileSchema } from '../../../shared/schema.js';
import { fastSupervision } from '../../helpers/fixture-plugins.js';
import { rawExecTask } from './raw-exec-task.js';

/** What the helpers need of a test: somewhere to register cleanup. */
type Test = { teardown(fn: () => unknown): void };
type Driver = ReturnType<typeof rawExecDriver>;

const forever = new AbortController().signal;

/** A fresh driver, shut down after the test. */
function newDriver(t: Test): Driver {
  const driver = rawExecDriver();
  t.teardown(() => driver.shutdown());
  return driver;
}

/** A task config with its own alloc directory; env is PATH plus a marker, nothing else. */

/** Starts a task and makes sure its whole process group is gone after the test. */
async function start(t: Test, driver: Driver, cfg: TaskConfig): Promise<TaskHandle> {
  const { handle } = await driver.startTask(cfg);
  const { pgid } = handle.driverState as DriverState;
  t.teardown(() => void killGroup(pgid, 'SIGKILL'));
  return handle;
}

const sh = (script: string): RawExecTaskConfig => ({ command: 'sh', args: ['-c', script] });

async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

/** The process exists and is not a zombie. */
const alive = (pid: number) => ![undefined, 'Z'].includes(readProcStat(pid)?.state);

const exited = (exitCode: number): ExitResult => ({ exitCode, signal: null, oomKilled: false });

t.test('schemas, capabilities and the first fingerprint', async (t) => {
  const driver = newDriver(t);
  const validate = compileSchema<RawExecTaskConfig>(driver.taskConfigSchema());
  t.same(validate({ command: 'sleep' }), { ok: true, value: { command: 'sleep', args: [] } });
  t.notOk(validate({ command: '' }).ok);
  t.notOk(validate({ command: 'sleep', argz: [] }).ok, 'unknown keys are refused');
  t.same(compileSchema(driver.configSchema())({}), { ok: true, value: { fingerprintInterval: '30s', allowCwdOutsideTaskDir: false } });
  t.same(driver.capabilities(), { sendSignals: true, exec: true, fsIsolation: 'none', networkModes: ['host'], mounts: false });
  t.match(driver.info(), { type: 'driver', name: 'raw_exec', apiVersions: ['1.0'] });

  driver.setConfig({
    apiVersion: '1.0',
    config: { fingerprintInterval: '50ms', allowCwdOutsideTaskDir: false },
    agent: { dataDir: '/d', pluginDataDir: '/d/p' },
  });
  const controller = new AbortController();
  const seen = [];
  for await (const fp of driver.fingerprint(controller.signal)) {
    seen.push(fp);
    if (seen.length === 2) controller.abort();
  }
  t.equal(seen.length, 2, 'reports again after the interval and ends when aborted');
  t.match(seen[0], {
    health: 'healthy',
    attributes: { 'driver.raw_exec': true, 'driver.raw_exec.version': '0.1.0', 'kernel.name': 'linux' },
  });
  t.equal(seen[0]!.attributes['cpu.arch'], ociArch(), 'the architecture as images name it (amd64, not x64)');
  t.notOk(['x64', 'ia32'].includes(String(seen[0]!.attributes['cpu.arch'])));
});

t.test('start runs the command in the task dir with exactly the task env; wait gives its exit code', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, sh('pwd; echo "marker=$TASK_MARKER home=${HOME-unset}"; echo oops >&2; exit 7'));
  const handle = await start(t, driver, cfg);
  const state = handle.driverState as DriverState;
  t.match(handle, { version: 2, config: cfg, state: 'running' });
  t.equal(state.pgid, state.pid, 'the task leads its own process group');
  t.ok(state.startTime > 0);
  t.same(await driver.waitTask(cfg.id, forever), exited(7));
  t.same(await driver.waitTask(cfg.id, forever), exited(7), 'wait after exit gives the stored result');
  t.equal(readFileSync(cfg.stdoutPath, 'utf8'), `${cfg.taskDir}\nmarker=marked home=unset\n`);
  t.equal(readFileSync(cfg.stderrPath, 'utf8'), 'oops\n');
  const status = driver.inspectTask(cfg.id);
  t.match(status, { id: cfg.id, name: 'web', state: 'exited', exitResult: exited(7), driverAttributes: { pid: String(state.pid) } });
  t.ok(Date.parse(status.completedAt!) >= Date.parse(status.startedAt));
  await t.rejects(driver.startTask(cfg), TaskExistsError, 'an id is never reused');
});

t.test('output is appended, and cwd is relative to the task dir', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'pwd', cwd: 'local' });
  mkdirSync(path.join(cfg.taskDir, 'local'));
  writeFileSync(cfg.stdoutPath, 'earlier\n');
  await start(t, driver, cfg);
  t.same(await driver.waitTask(cfg.id, forever), exited(0));
  t.equal(readFileSync(cfg.stdoutPath, 'utf8'), `earlier\n${cfg.taskDir}/local\n`);
});

t.test('validateTask refuses a user and a cwd outside the task directory, each at its path, touching nothing', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'true', cwd: '../../..' }, { user: 'nobody', taskDir: '/nowhere/at/all' });
  t.throws(() => driver.validateTask(cfg), {
    code: 'INVALID_CONFIG',
    errors: [
      { path: '/user', message: `raw_exec runs tasks as the agent's own user and cannot run them as "nobody": remove "user"` },
      {
        path: '/config/cwd',
        message:
          'working directory "../../.." is outside the task directory: name one inside it, or set allowCwdOutsideTaskDir in the raw_exec plugin config',
      },
    ],
  });
  t.throws(() => driver.validateTask(rawExecTask(t, { command: 'true', cwd: '/tmp' })), { errors: [{ path: '/config/cwd' }] }, 'absolute');
  t.doesNotThrow(() => driver.validateTask(rawExecTask(t, { command: 'true', cwd: 'a/../b' })), 'inside, however written');
  t.doesNotThrow(() => driver.validateTask(rawExecTask(t, { command: 'true' })));
});

t.test('cwd stays inside the task directory, also through a symlink, unless the plugin config allows otherwise', async (t) => {
  const driver = newDriver(t);
  const escape = rawExecTask(t, { command: 'pwd', cwd: '..' });
  await t.rejects(driver.startTask(escape), { errors: [{ path: '/config/cwd', message: /"\.\." is outside the task directory/ }] });
  const linked = rawExecTask(t, { command: 'pwd', cwd: 'elsewhere' });
  symlinkSync(tmpdir(), path.join(linked.taskDir, 'elsewhere'));
  await t.rejects(driver.startTask(linked), { errors: [{ path: '/config/cwd', message: /"elsewhere" is outside the task directory/ }] });
  t.throws(() => driver.inspectTask(linked.id), TaskNotFoundError, 'nothing started');

  driver.setConfig({
    apiVersion: '1.0',
    config: { fingerprintInterval: '30s', allowCwdOutsideTaskDir: true },
    agent: { dataDir: '/d', pluginDataDir: '/d/p' },
  });
  await start(t, driver, escape);
  t.same(await driver.waitTask(escape.id, forever), exited(0));
  t.equal(readFileSync(escape.stdoutPath, 'utf8'), `${path.dirname(escape.taskDir)}\n`, 'allowed, it runs there');
});

t.test('a task with reserved devices is told, in an event, that they are at their host paths', async (t) => {
  const driver = newDriver(t);
  const controller = new AbortController();
  const events: TaskEvent[] = [];
  const reading = (async () => {
    for await (const e of driver.taskEvents(controller.signal)) {
      events.push(e);
      if (/exited/.test(e.message)) controller.abort();
    }
  })();
  const cfg = rawExecTask(t, sh('exit 0'), {
    mounts: [{ hostPath: '/srv/devices/a', taskPath: '/devices/a', readOnly: true }],
    devices: [{ hostPath: '/dev/null', taskPath: '/dev/null', permissions: 'rw' }],
  });
  await start(t, driver, cfg);
  t.same(await driver.waitTask(cfg.id, forever), exited(0));
  await reading;
  t.match(events[1], {
    message:
      "raw_exec mounts nothing: the task shares the host's file system and finds its devices at their host paths: /srv/devices/a (not at /devices/a), /dev/null",
    annotations: { hostPaths: '/srv/devices/a,/dev/null' },
  });
});

t.test('a task that exits at once is never missed', async (t) => {
  const driver = newDriver(t);
  const base = rawExecTask(t, sh('exit 3'));
  for (let i = 0; i < 20; i++) {
    const cfg = { ...base, id: `alloc-1/web/${randomBytes(4).toString('hex')}` };
    const handle = await start(t, driver, cfg);
    t.ok((handle.driverState as DriverState).startTime > 0);
    t.same(await driver.waitTask(cfg.id, forever), exited(3));
  }
});

t.test('a command that cannot start rejects startTask, naming it, and leaves no task behind', async (t) => {
  const driver = newDriver(t);
  const missing = rawExecTask(t, { command: 'no-such-command-here' });
  await t.rejects(driver.startTask(missing), InvalidConfigError);
  await t.rejects(driver.startTask(missing), /command "no-such-command-here" was not found in the task's PATH/);
  t.throws(() => driver.inspectTask(missing.id), TaskNotFoundError);

  const notExecutable = rawExecTask(t, { command: './run.sh' });
  writeFileSync(path.join(notExecutable.taskDir, 'run.sh'), '#!/bin/sh\nexit 0\n');
  chmodSync(path.join(notExecutable.taskDir, 'run.sh'), 0o644);
  await t.rejects(driver.startTask(notExecutable), /command "\.\/run\.sh" is not executable/);

  await t.rejects(driver.startTask(rawExecTask(t, { command: 'true', cwd: 'nope' })), /working directory .*\/nope does not exist/);
  await t.rejects(driver.startTask(rawExecTask(t, { command: '/' + 'x'.repeat(5000) })), {
    errors: [{ path: '/config/command', message: "cannot start task: the command's path is too long for the kernel" }],
  });
  const e2big = 'cannot start task: its arguments and environment are too large for the kernel (E2BIG): shorten config.args or env';
  await t.rejects(driver.startTask(rawExecTask(t, { command: 'true', args: ['x'.repeat(200_000)] })), {
    errors: [{ path: '/config/args', message: e2big }],
  });
  await t.rejects(driver.startTask(rawExecTask(t, { command: 'true' }, { env: { BIG: 'x'.repeat(200_000) } })), {
    errors: [{ path: '/env', message: e2big }],
  });
  await t.rejects(driver.startTask(rawExecTask(t, { command: 'true' }, { user: 'nobody' })), /cannot run them as "nobody"/);

  await start(t, driver, { ...missing, config: { command: 'true' } });
  t.same(await driver.waitTask(missing.id, forever), exited(0), 'the id is free to use after a failed start');
});

t.test('stop sends SIGTERM to the task and resolves once it has exited', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  await start(t, driver, cfg);
  t.equal(driver.inspectTask(cfg.id).state, 'running');
  const began = Date.now();
  await driver.stopTask(cfg.id, 5000);
  t.ok(Date.now() - began < 2000, 'did not wait for the timeout');
  t.same(driver.inspectTask(cfg.id).exitResult, signalExit('SIGTERM'));
  t.same(await driver.waitTask(cfg.id, forever), { exitCode: 143, signal: 'SIGTERM', oomKilled: false });
  await driver.stopTask(cfg.id, 5000);
  t.pass('stopping an exited task is a no-op');
  await t.rejects(
    Promise.resolve().then(() => driver.stopTask('alloc-1/web/00000000', 10)),
    TaskNotFoundError,
  );
});

t.test('stop SIGKILLs the whole group of a task that ignores SIGTERM once the timeout passes', async (t) => {
  const driver = newDriver(t);
  // An ignored signal stays ignored across exec, so the background sleep ignores SIGTERM too.
  const cfg = rawExecTask(t, sh('trap "" TERM; sleep 30 & echo $! > child.pid; wait'));
  await start(t, driver, cfg);
  const childPidFile = path.join(cfg.taskDir, 'child.pid');
  await until(() => existsSync(childPidFile) && readFileSync(childPidFile, 'utf8').endsWith('\n'), 'the child pid');
  const childPid = Number(readFileSync(childPidFile, 'utf8'));
  t.ok(alive(childPid), 'the child runs');

  const began = Date.now();
  await driver.stopTask(cfg.id, 300, 'SIGTERM');
  const took = Date.now() - began;
  t.ok(took >= 290 && took < 3000, `waited for the timeout, then killed (${took}ms)`);
  t.same(await driver.waitTask(cfg.id, forever), signalExit('SIGKILL'));
  await until(() => !alive(childPid), 'the background child to die');
  t.pass('the background child died with its group');
});

t.test('destroy kills what a task left running in its group after it exited', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, sh('sleep 30 & echo $! > child.pid'));
  await start(t, driver, cfg);
  t.same(await driver.waitTask(cfg.id, forever), exited(0));
  const childPid = Number(readFileSync(path.join(cfg.taskDir, 'child.pid'), 'utf8'));
  t.ok(alive(childPid), 'the straggler outlived the task');
  await driver.destroyTask(cfg.id, false);
  await until(() => !alive(childPid), 'the straggler to die');
  t.pass('destroy killed it');
});

t.test('destroy refuses a running task unless forced, then forgets it', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  await start(t, driver, cfg);
  await t.rejects(
    Promise.resolve().then(() => driver.destroyTask(cfg.id, false)),
    TaskRunningError,
  );
  t.equal(driver.inspectTask(cfg.id).state, 'running', 'a refused destroy leaves the task alone');
  const waiting = driver.waitTask(cfg.id, forever);
  await driver.destroyTask(cfg.id, true);
  t.same(await waiting, signalExit('SIGKILL'), 'a pending wait sees the kill');
  t.throws(() => driver.inspectTask(cfg.id), TaskNotFoundError);
  await t.rejects(
    Promise.resolve().then(() => driver.destroyTask(cfg.id, true)),
    TaskNotFoundError,
  );
  await t.rejects(
    Promise.resolve().then(() => driver.waitTask(cfg.id, forever)),
    TaskNotFoundError,
  );
});

t.test('a cancelled wait rejects at once and does not hold the task', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  await start(t, driver, cfg);
  const controller = new AbortController();
  const waiting = driver.waitTask(cfg.id, controller.signal);
  controller.abort();
  await t.rejects(waiting, CancelledError);
  await t.rejects(driver.waitTask(cfg.id, controller.signal), CancelledError, 'an aborted signal rejects at once');
  t.equal(driver.inspectTask(cfg.id).state, 'running');
});

t.test('signalTask delivers a signal the task traps; unknown names are refused', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, sh("trap 'echo got-usr1 > usr1; exit 0' USR1; touch ready; while :; do sleep 0.05; done"));
  await start(t, driver, cfg);
  await until(() => existsSync(path.join(cfg.taskDir, 'ready')), 'the trap to be set');
  t.throws(() => driver.signalTask(cfg.id, 'SIGBOGUS'), { name: 'InvalidConfigError', message: /unknown signal "SIGBOGUS"/ });
  t.throws(() => driver.signalTask('alloc-1/web/00000000', 'SIGUSR1'), TaskNotFoundError);
  driver.signalTask(cfg.id, 'SIGUSR1');
  t.same(await driver.waitTask(cfg.id, forever), exited(0));
  t.equal(readFileSync(path.join(cfg.taskDir, 'usr1'), 'utf8'), 'got-usr1\n');
  t.throws(() => driver.signalTask(cfg.id, 'SIGUSR1'), { code: 'TASK_NOT_RUNNING', message: /it has exited/ });
});

t.test('exec runs in the task context, captures output and exit code, and honours timeouts', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  await start(t, driver, cfg);

  const result = await driver.execTask(cfg.id, ['sh', '-c', 'pwd; echo $TASK_MARKER; echo err >&2; exit 4'], 5000);
  t.same(result, { stdout: `${cfg.taskDir}\nmarked\n`, stderr: 'err\n', exitResult: exited(4) });

  const noLimit = await driver.execTask(cfg.id, ['sh', '-c', 'sleep 0.2; echo done'], 0);
  t.same(noLimit, { stdout: 'done\n', stderr: '', exitResult: exited(0) }, 'a timeout of 0 means no timeout');

  const began = Date.now();
  const slow = await driver.execTask(cfg.id, ['sh', '-c', 'echo partial; sleep 30'], 200);
  t.ok(Date.now() - began < 3000, 'the timeout killed the shell and its sleep');
  t.equal(slow.stdout, 'partial\n');
  t.match(slow.exitResult, { exitCode: 137, signal: 'SIGKILL', err: /did not finish within 200ms/ });

  const big = await driver.execTask(cfg.id, ['sh', '-c', "head -c 200000 /dev/zero | tr '\\0' a; echo; echo end"], 5000);
  t.equal(big.stdout.length, 64 * 1024, 'output is capped');
  t.ok(big.stdout.endsWith('a\nend\n'), 'the cap keeps the end');

  const missing = await driver.execTask(cfg.id, ['no-such-command-here'], 1000);
  t.match(missing, { stdout: '', stderr: /cannot run "no-such-command-here"/, exitResult: exited(127) });
  writeFileSync(path.join(cfg.taskDir, 'check.sh'), '#!/bin/sh\nexit 0\n');
  t.match(await driver.execTask(cfg.id, ['./check.sh'], 1000), { exitResult: exited(126) }, 'not executable');

  const controller = new AbortController();
  const cancelled = driver.execTask(cfg.id, ['sleep', '30'], 0, controller.signal);
  setTimeout(() => controller.abort(), 100);
  await t.rejects(cancelled, CancelledError, 'the host cancelled the call');

  await t.rejects(
    Promise.resolve().then(() => driver.execTask(cfg.id, [], 1000)),
    InvalidConfigError,
  );
  await driver.stopTask(cfg.id, 1000);
  await t.rejects(
    Promise.resolve().then(() => driver.execTask(cfg.id, ['true'], 1000)),
    /cannot exec in task .* it has exited/,
  );
});

t.test('stats report the whole group and end when the task exits', async (t) => {
  const driver = newDriver(t);
  // A busy shell and a sleeping child: CPU from one, memory from both.
  const cfg = rawExecTask(t, sh('sleep 30 & while :; do :; done'));
  await start(t, driver, cfg);
  const samples: TaskResourceUsage[] = [];
  let stopping: Promise<void> | undefined;
  for await (const usage of driver.taskStats(cfg.id, 200, forever)) {
    samples.push(usage);
    if (samples.length === 2) stopping = driver.stopTask(cfg.id, 1000);
  }
  await stopping;
  t.equal(samples.length, 2, 'the stream ended when the task exited');
  // On a busy host the loop gets what the scheduler leaves it (a tenth of a core at a load of 20
  // on 2), so only a share above none is certain.
  t.ok(
    samples.some((s) => s.cpu.percent > 0),
    `cpu ${samples.map((s) => s.cpu.percent).join(', ')}%`,
  );
  for (const s of samples) {
    t.equal(s.taskId, cfg.id);
    t.ok(s.memory.rssBytes > 100 * 1024, `rss ${s.memory.rssBytes}`);
    t.ok(s.cpu.percent >= 0 && s.cpu.percent <= 100 * cpus().length + 10, `cpu ${s.cpu.percent}%`);
    t.same(s.measured, ['cpu.percent', 'cpu.userMs', 'cpu.systemMs', 'memory.rssBytes']);
  }
  t.ok(samples[1]!.cpu.userMs! + samples[1]!.cpu.systemMs! > samples[0]!.cpu.userMs! + samples[0]!.cpu.systemMs!);
});

t.test('the event stream sees start, signals, stop requests and exit', async (t) => {
  const driver = newDriver(t);
  const controller = new AbortController();
  const events: TaskEvent[] = [];
  const reading = (async () => {
    for await (const e of driver.taskEvents(controller.signal)) {
      events.push(e);
      if (/killed by/.test(e.message)) controller.abort();
    }
  })();
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  const handle = await start(t, driver, cfg);
  driver.signalTask(cfg.id, 'SIGCONT');
  await driver.stopTask(cfg.id, 1000);
  await reading;
  const pid = String((handle.driverState as DriverState).pid);
  t.match(events, [
    { taskId: cfg.id, taskName: 'web', allocId: 'alloc-1', message: `started: pid ${pid}`, annotations: { pid } },
    { message: 'sent SIGCONT', annotations: { signal: 'SIGCONT' } },
    { message: /stop requested: sending SIGTERM/ },
    { message: 'killed by SIGTERM (exit code 143)', annotations: { exitCode: '143', signal: 'SIGTERM' } },
  ]);
  t.equal(events.length, 4);
  t.ok(events.every((e) => !Number.isNaN(Date.parse(e.timestamp))));
});

t.test('recover: a second driver adopts a running task; inspect, stop and wait work', async (t) => {
  const first = newDriver(t);
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  const handle = await start(t, first, cfg);
  const second = newDriver(t);
  second.recoverTask(handle);
  second.recoverTask(handle);
  const state = handle.driverState as DriverState;
  t.match(second.inspectTask(cfg.id), {
    state: 'running',
    driverAttributes: { pid: String(state.pid), executorPid: String(state.executorPid) },
  });
  await second.stopTask(cfg.id, 2000);
  t.same(
    await second.waitTask(cfg.id, forever),
    signalExit('SIGTERM'),
    "the executor's record: the real status, also where the task is not ours",
  );
  t.same(await first.waitTask(cfg.id, forever), signalExit('SIGTERM'));
});

t.test('recover of a task that exited unwatched reports its real exit code, and when it exited', async (t) => {
  const first = newDriver(t);
  const cfg = rawExecTask(t, sh('exit 5'));
  const handle = await start(t, first, cfg);
  t.same(await first.waitTask(cfg.id, forever), exited(5));
  const completedAt = first.inspectTask(cfg.id).completedAt!;
  const second = newDriver(t);
  second.recoverTask(handle);
  const status = second.inspectTask(cfg.id);
  t.match(status, { state: 'exited', exitResult: exited(5) });
  t.ok(Math.abs(Date.parse(status.completedAt!) - Date.parse(completedAt)) < 1000, 'the time the executor recorded it');
  t.same(await second.waitTask(cfg.id, forever), exited(5));
});

t.test('a version 1 handle (from before the executor) is still recovered; its unwatched exit is unknown', async (t) => {
  const first = newDriver(t);
  const cfg = rawExecTask(t, sh('exit 5'));
  const handle = await start(t, first, cfg);
  t.same(await first.waitTask(cfg.id, forever), exited(5));
  const { pid, pgid, startTime, startedAt } = handle.driverState as DriverState;
  const second = newDriver(t);
  second.recoverTask({ ...handle, version: 1, driverState: { pid, pgid, startTime, startedAt } });
  const unknown = { exitCode: -1, signal: null, oomKilled: false, err: exitedUnwatched };
  t.match(second.inspectTask(cfg.id), { state: 'exited', exitResult: unknown });
  t.same(await second.waitTask(cfg.id, forever), unknown);
});

t.test('recover does not adopt a pid that now belongs to another process', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  // This test's own pid, with a start time that is not its own: a reused pid.
  const state: DriverState = { pid: process.pid, pgid: process.pid, startTime: 1, startedAt: new Date().toISOString() };
  driver.recoverTask({ version: 1, config: cfg, state: 'running', driverState: state });
  t.match(driver.inspectTask(cfg.id), { state: 'exited', exitResult: { exitCode: -1, err: exitedUnwatched } });
  await driver.stopTask(cfg.id, 100);
  await driver.destroyTask(cfg.id, true);
  t.pass('stop and destroy left the other process alone');

  const other = rawExecTask(t, { command: 'true' });
  t.throws(() => driver.recoverTask({ version: 3, config: other, state: 'running', driverState: state }), {
    name: 'InvalidConfigError',
    message: 'raw_exec cannot recover a task handle of version 3; it writes version 2',
  });
  t.throws(() => driver.recoverTask({ version: 1, config: other, state: 'running', driverState: { pid: 'x' } }), {
    name: 'InvalidConfigError',
    message: /no raw_exec driver state of version 1/,
  });
  t.throws(() => driver.recoverTask({ version: 2, config: other, state: 'running', driverState: state }), {
    name: 'InvalidConfigError',
    message: /no raw_exec driver state of version 2 \(\{ pid, pgid, startTime, startedAt, executorPid, executorStartTime \}\)/,
  });

  // A version 2 handle whose executor's pid, and the task's, now name other processes.
  const reused = rawExecTask(t, { command: 'sleep', args: ['30'] });
  driver.recoverTask({
    version: 2,
    config: reused,
    state: 'running',
    driverState: { ...state, executorPid: process.pid, executorStartTime: 1 },
  });
  t.match(driver.inspectTask(reused.id), { state: 'exited', exitResult: { exitCode: -1, err: executorLost } });
  await driver.destroyTask(reused.id, true);
});

t.test('/proc/<pid>/stat parsing survives a command name with spaces and parentheses', async (t) => {
  const fields = [
    'S',
    '1',
    '4321',
    '4321',
    ...Array<string>(7).fill('0'),
    '7',
    '3',
    '2',
    '1',
    ...Array<string>(4).fill('0'),
    '98765',
    ...Array<string>(29).fill('0'),
    '10752',
  ];
  const stat = parseProcStat(`4321 (we (ird) ) name) ${fields.join(' ')}\n`);
  t.same(stat, { pid: 4321, state: 'S', pgrp: 4321, utime: 7, stime: 3, cutime: 2, cstime: 1, startTime: 98765, exitCode: 10752 });
});

t.test('a waitpid status becomes an ExitResult', async (t) => {
  t.same(fromWaitStatus(42 << 8), exited(42));
  t.same(fromWaitStatus(9), signalExit('SIGKILL'));
  t.same(fromWaitStatus(15 | 0x80), signalExit('SIGTERM'), 'the core-dump bit is not part of the signal');
  t.same(fromWaitStatus(40), { exitCode: 168, signal: 'signal 40', oomKilled: false }, 'a real-time signal has no name');
});

t.test('shutdown ends the streams and leaves tasks running', async (t) => {
  const driver = rawExecDriver();
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  const handle = await start(t, driver, cfg);
  const events = driver.taskEvents(forever)[Symbol.asyncIterator]();
  const stats = driver.taskStats(cfg.id, 60_000, forever)[Symbol.asyncIterator]();
  const pending = [events.next(), stats.next()];
  driver.shutdown();
  t.same(await Promise.all(pending), [
    { done: true, value: undefined },
    { done: true, value: undefined },
  ]);
  t.ok(alive((handle.driverState as DriverState).pid), 'the task survives its driver');
  await t.rejects(driver.taskStats(cfg.id, 0, forever).next(), InvalidConfigError, 'a stats interval must be positive');
});

t.test('through a real worker: start and wait, then a task outlives its worker and is recovered', async (t) => {
  const { plugins } = await discover({ pluginDir: '/nonexistent' });
  const candidate = plugins.find((p) => p.name === 'raw_exec');
  if (!candidate) throw new Error('raw_exec is not among the built-in plugins');
  const instance = new PluginInstance({
    manifest: candidate.manifest,
    entry: candidate.entry,
    apiVersion: candidate.apiVersion,
    config: undefined,
    dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-test-')),
    supervision: fillSupervision(fastSupervision),
  });
  t.teardown(() => instance.close());
  await instance.start();
  t.equal(instance.state, 'running', instance.lastError?.message ?? 'started');

  const quick = rawExecTask(t, sh('echo hello; exit 3'));
  await instance.call('startTask', [quick]);
  t.same(await instance.call('waitTask', [quick.id]), exited(3));
  t.equal(readFileSync(quick.stdoutPath, 'utf8'), 'hello\n');

  const slow = rawExecTask(t, sh('sleep 0.5; exit 42'));
  const { handle } = await instance.call<{ handle: TaskHandle }>('startTask', [slow]);
  t.teardown(() => void killGroup((handle.driverState as DriverState).pgid, 'SIGKILL'));
  await instance.close();
  // The worker is gone; its child lives on and, once it exits, stays a zombie nobody reaps,
  // which is where a recovering driver reads the real exit status from.
  const driver = newDriver(t);
  driver.recoverTask(handle);
  t.equal(driver.inspectTask(slow.id).state, 'running');
  t.same(await driver.waitTask(slow.id, forever), exited(42));
});
