// raw_exec's executor against real processes: a task's exit is recorded by its executor and read
// back by a driver that recovers it later, whether the task exited while its worker was gone,
// while no driver ran at all (a kill -9 of the whole host), or was killed by a signal meanwhile;
// a start the host crashed in is found from its config alone, never started twice.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import t from 'tap';
import { DriverManager } from '../../../drivers/driver-manager.js';
import { FileHandleStore } from '../../../drivers/handle-store.js';
import rawExecDriver, { type RawExecTaskConfig } from '../../../drivers/raw_exec/index.js';
import {
  checkProgram,
  findExecutorTools,
  fromShellStatus,
  readExitFile,
  readPidFile,
  runFiles,
} from '../../../drivers/raw_exec/executor.js';
import { readProcStat } from '../../../drivers/raw_exec/proc-stat.js';
import { executorLost, killGroup, TaskProcess, type DriverState } from '../../../drivers/raw_exec/task-process.js';
import { fillSupervision, parseAgentConfig } from '../../../plugin-loader/agent-config.js';
import { builtinPluginDirs, discover } from '../../../plugin-loader/discovery.js';
import { PluginLoader } from '../../../plugin-loader/loader.js';
import { PluginInstance } from '../../../plugin-loader/plugin-instance.js';
import { signalExit, type ExitResult, type TaskConfig, type TaskHandle } from '../../../shared/driver.js';
import { InvalidConfigError, TaskExistsError, TaskNotFoundError } from '../../../shared/errors.js';
import { spawnFixture } from '../../agent/spawn-ts.js';
import { fastSupervision } from '../../helpers/fixture-plugins.js';
import { rawExecTask } from './raw-exec-task.js';

type Test = { teardown(fn: () => unknown): void };
type Driver = ReturnType<typeof rawExecDriver>;

const forever = new AbortController().signal;
const quiet = pino({ level: 'silent' });
const exited = (exitCode: number): ExitResult => ({ exitCode, signal: null, oomKilled: false });
const sh = (script: string): RawExecTaskConfig => ({ command: 'sh', args: ['-c', script] });
/** A task that runs until a file named "go" appears in its directory, then exits with `code`. */
const untilGo = (code: number) => sh(`while [ ! -e go ]; do sleep 0.05; done; exit ${code}`);

function newDriver(t: Test): Driver {
  const driver = rawExecDriver();
  t.teardown(() => driver.shutdown());
  return driver;
}

/** The process is there and not a zombie. */
const alive = (pid: number) => ![undefined, 'Z'].includes(readProcStat(pid)?.state);
/** Some process (a zombie included) is still in the group. */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

/** Kills the task's group and its executor at teardown, whatever the test left. */
function cleanUp(t: Test, handle: TaskHandle): DriverState {
  const state = handle.driverState as DriverState;
  t.teardown(() => {
    killGroup(state.pgid, 'SIGKILL');
    if (alive(state.executorPid!)) process.kill(state.executorPid!, 'SIGKILL');
  });
  return state;
}

/** A running worker of the built-in raw_exec plugin. */
async function rawExecWorker(t: Test): Promise<PluginInstance> {
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
  return instance;
}

/** Kills the worker as a crash would, and keeps it from coming back. */
async function killWorker(instance: PluginInstance): Promise<void> {
  await instance.kill();
  await instance.close();
}

t.test('a task that exits with code 7 while its worker is gone is recovered with exit code 7', async (t) => {
  const worker = await rawExecWorker(t);
  const cfg = rawExecTask(t, untilGo(7));
  const { handle } = await worker.call<{ handle: TaskHandle }>('startTask', [cfg]);
  const state = cleanUp(t, handle);
  t.match(handle, { version: 2, state: 'running' });
  t.ok(state.executorPid! > 0 && state.executorPid !== state.pid, 'the task has an executor of its own');
  await killWorker(worker);

  writeFileSync(path.join(cfg.taskDir, 'go'), '');
  await until(() => !alive(state.executorPid!), 'the executor to record the exit and end');
  t.notOk(alive(state.pid), 'the task exited while no driver ran');

  const driver = newDriver(t);
  driver.recoverTask(JSON.parse(JSON.stringify(handle)) as TaskHandle);
  t.match(driver.inspectTask(cfg.id), { state: 'exited', exitResult: exited(7) });
  t.same(await driver.waitTask(cfg.id, forever), exited(7));
  await driver.destroyTask(cfg.id, false);
  t.notOk(existsSync(runFiles(cfg.taskDir, cfg.id).exit), "destroy removes the executor's files");
});

t.test('a task killed by SIGTERM while its worker is gone is recovered as killed by SIGTERM (143)', async (t) => {
  const worker = await rawExecWorker(t);
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  const { handle } = await worker.call<{ handle: TaskHandle }>('startTask', [cfg]);
  const state = cleanUp(t, handle);
  await killWorker(worker);

  process.kill(-state.pgid, 'SIGTERM');
  await until(() => !alive(state.executorPid!), 'the executor to record the exit and end');
  const driver = newDriver(t);
  driver.recoverTask(handle);
  t.same(await driver.waitTask(cfg.id, forever), { exitCode: 143, signal: 'SIGTERM', oomKilled: false });
});

t.test('a task still running when it is recovered is re-attached; its later exit comes from the record', async (t) => {
  const worker = await rawExecWorker(t);
  const cfg = rawExecTask(t, untilGo(9));
  const { handle } = await worker.call<{ handle: TaskHandle }>('startTask', [cfg]);
  const state = cleanUp(t, handle);
  await killWorker(worker);

  const driver = newDriver(t);
  driver.recoverTask(handle);
  t.match(driver.inspectTask(cfg.id), { state: 'running', driverAttributes: { pid: String(state.pid) } });
  const waiting = driver.waitTask(cfg.id, forever);
  writeFileSync(path.join(cfg.taskDir, 'go'), '');
  t.same(await waiting, exited(9));
});

t.test('recover from an intent handle: a started task is found from its config alone', async (t) => {
  const first = newDriver(t);
  const cfg = rawExecTask(t, untilGo(4));
  const { handle } = await first.startTask(cfg);
  const state = cleanUp(t, handle);
  const files = runFiles(cfg.taskDir, cfg.id);
  t.same(
    JSON.parse(readFileSync(files.pid, 'utf8')),
    {
      pid: state.pid,
      pgid: state.pgid,
      startTime: state.startTime,
      executorPid: state.executorPid,
      executorStartTime: state.executorStartTime,
    },
    'the pid file holds what the handle holds',
  );
  first.shutdown();

  const intent: TaskHandle = { version: 2, config: cfg, state: 'unknown', driverState: null };
  const second = newDriver(t);
  await t.rejects(second.startTask(cfg), TaskExistsError, 'a start the executor has recorded is never made again');
  second.recoverTask(intent);
  t.match(second.inspectTask(cfg.id), {
    state: 'running',
    driverAttributes: { pid: String(state.pid), executorPid: String(state.executorPid) },
  });
  writeFileSync(path.join(cfg.taskDir, 'go'), '');
  t.same(await second.waitTask(cfg.id, forever), exited(4));

  const third = newDriver(t);
  third.recoverTask({ version: 0, config: cfg, state: 'unknown', driverState: null });
  t.match(third.inspectTask(cfg.id), { state: 'exited', exitResult: exited(4) }, 'an intent of a task that has exited since: its exit');
});

t.test('recover from an intent handle of a task that never started is TASK_NOT_FOUND, and starts nothing', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'sh', args: ['-c', 'touch ran'] });
  t.throws(() => driver.recoverTask({ version: 2, config: cfg, state: 'unknown', driverState: null }), {
    name: 'TaskNotFoundError',
    code: 'TASK_NOT_FOUND',
    message: /raw_exec never started task "alloc-1\/web\/[0-9a-f]{8}": there is no .*\.raw_exec\/[0-9a-f]{8}\.pid/,
  });
  t.throws(() => driver.inspectTask(cfg.id), TaskNotFoundError);
  await delay(200);
  t.notOk(existsSync(path.join(cfg.taskDir, 'ran')), 'the task did not run');
  t.throws(
    () =>
      driver.recoverTask({ version: 2, config: { ...cfg, taskDir: undefined as unknown as string }, state: 'unknown', driverState: null }),
    { name: 'InvalidConfigError', message: 'the task handle has no task directory' },
  );
});

t.test('a kill -9 of the whole host: the task exits with code 3 meanwhile, a new host recovers exit code 3', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'taskhost-executor-host-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const host = spawnFixture(t, new URL('./fixtures/raw-exec-host.ts', import.meta.url), [dataDir]);
  const handle = JSON.parse((await host.line('started ')).slice('started '.length)) as TaskHandle;
  const state = cleanUp(t, handle);
  await host.kill9();
  t.ok(alive(state.pid) && alive(state.executorPid!), 'the task and its executor outlived the host');

  writeFileSync(path.join(handle.config.taskDir, 'go'), '');
  await until(() => !alive(state.executorPid!), 'the executor to record the exit and end');

  const config = parseAgentConfig({ pluginDir: path.join(dataDir, 'no-plugins'), dataDir, supervision: fastSupervision });
  const loader = new PluginLoader({ config, logger: quiet, builtinDirs: builtinPluginDirs.filter((d) => /raw_exec$/.test(d)) });
  const manager = new DriverManager({ loader, store: new FileHandleStore(path.join(dataDir, 'handles')), logger: quiet });
  t.teardown(async () => (await manager.close(), await loader.close()));
  await manager.start();
  t.same(
    manager.tasks().map((h) => h.config.id),
    [handle.config.id],
    'the stored handle was recovered',
  );
  t.same(await manager.waitTask(handle.config.id), exited(3));
  await manager.destroyTask(handle.config.id, true);
  t.notOk(groupExists(state.pgid), "no process of the task's group is left");
  t.notOk(alive(state.executorPid!), 'nor its executor');
});

t.test('the task starts with every signal at its default, and with exactly its env', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'cat', args: ['/proc/self/status'] });
  const handle = await driver.startTask(cfg);
  cleanUp(t, handle.handle);
  t.same(await driver.waitTask(cfg.id, forever), exited(0));
  const sig = Object.fromEntries(
    readFileSync(cfg.stdoutPath, 'utf8')
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('Sig'))
      .map((l) => l.split(/:\s+/)),
  );
  t.match(sig, { SigBlk: /^0+$/, SigIgn: /^0+$/, SigCgt: /^0+$/ }, 'nothing blocked, ignored or caught, as from a plain spawn');

  // `env` itself as the task: no shell of its own adds PWD, so any extra variable is the executor's.
  // (tap's hook adds its own to whatever this process spawns: those are left out.)
  const envOf = async (cfg: TaskConfig) => {
    cleanUp(t, (await driver.startTask(cfg)).handle);
    t.same(await driver.waitTask(cfg.id, forever), exited(0));
    return readFileSync(cfg.stdoutPath, 'utf8')
      .split('\0')
      .filter((v) => v !== '' && !/^(_TAPJS_|NODE_OPTIONS=)/.test(v))
      .sort();
  };
  t.same(await envOf(rawExecTask(t, { command: 'env', args: ['-0'] }, { env: { PATH: '/usr/bin:/bin', A: 'x y', B: '' } })), [
    'A=x y',
    'B=',
    'PATH=/usr/bin:/bin',
  ]);
  t.same(
    await envOf(rawExecTask(t, { command: '/usr/bin/env', args: ['-0'] }, { env: { ONLY: '1' } })),
    ['ONLY=1'],
    'not even a PATH the shell would add',
  );
});

t.test('a kill signal the shell might have ignored (SIGINT) stops the task; its fds are its own', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  cleanUp(t, (await driver.startTask(cfg)).handle);
  await driver.stopTask(cfg.id, 30_000, 'SIGINT');
  t.same(await driver.waitTask(cfg.id, forever), signalExit('SIGINT'), 'SIGINT was not ignored: it ended the task');

  const fds = rawExecTask(t, { command: 'ls', args: ['/proc/self/fd'] });
  cleanUp(t, (await driver.startTask(fds)).handle);
  t.same(await driver.waitTask(fds.id, forever), exited(0));
  // What a plain spawn from here passes on (fds this process inherited without close-on-exec, too).
  const plain = spawnSync('ls', ['/proc/self/fd'], { stdio: ['ignore', 'pipe', 'ignore'] }).stdout.toString();
  t.same(readFileSync(fds.stdoutPath, 'utf8').trim().split('\n').sort(), plain.trim().split('\n').sort(), 'no fd of the executor leaks in');
});

t.test('the executor survives a stray SIGTERM, SIGHUP, SIGINT or SIGTSTP and still records the exit', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, untilGo(6));
  const { handle } = await driver.startTask(cfg);
  const state = cleanUp(t, handle);
  for (const signal of ['SIGTERM', 'SIGHUP', 'SIGINT', 'SIGUSR1', 'SIGTSTP'] as const) process.kill(state.executorPid!, signal);
  await delay(200);
  t.ok(alive(state.executorPid!) && alive(state.pid), 'both live on');
  t.not(readProcStat(state.executorPid!)?.state, 'T', 'the executor was not stopped');
  writeFileSync(path.join(cfg.taskDir, 'go'), '');
  t.same(await driver.waitTask(cfg.id, forever), exited(6));
  t.same(readExitFile(runFiles(cfg.taskDir, cfg.id).exit)?.result, exited(6));
});

t.test('a killed executor leaves the task running and stoppable; its exit status is then unknown', async (t) => {
  for (const how of ['started here', 'recovered'] as const) {
    const first = newDriver(t);
    const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
    const { handle } = await first.startTask(cfg);
    const state = cleanUp(t, handle);
    let driver = first;
    if (how === 'recovered') {
      first.shutdown();
      driver = newDriver(t);
      driver.recoverTask(handle);
    }
    process.kill(state.executorPid!, 'SIGKILL');
    await until(() => !alive(state.executorPid!), 'the executor to die');
    await delay(300); // past a poll
    t.equal(driver.inspectTask(cfg.id).state, 'running', `${how}: the orphaned task still runs`);
    await driver.stopTask(cfg.id, 5_000);
    const result = await driver.waitTask(cfg.id, forever);
    // Whoever reaps the orphan now (init, or a subreaper) has its status; a zombie left unreaped still shows it.
    t.ok(result.err === executorLost || result.signal === 'SIGTERM', `${how}: ${JSON.stringify(result)}`);
    t.notOk(alive(state.pid), `${how}: the task is gone`);
    await driver.destroyTask(cfg.id, false);
  }
});

t.test('two concurrent starts of one id start it once', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  const results = await Promise.allSettled([driver.startTask(cfg), driver.startTask(cfg)]);
  for (const r of results) if (r.status === 'fulfilled') cleanUp(t, r.value.handle);
  t.same(
    results.map((r) => r.status),
    ['fulfilled', 'rejected'],
  );
  t.match((results[1] as PromiseRejectedResult).reason, { code: 'TASK_EXISTS' });
  await driver.destroyTask(cfg.id, true);
});

t.test('a task env may not use the names of the executor variables', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'true' }, { env: { PATH: '/usr/bin:/bin', __taskhost_p: 'mine' } });
  t.throws(() => driver.validateTask(cfg), {
    name: 'InvalidConfigError',
    errors: [{ path: '/env/__taskhost_p', message: /belong to raw_exec's executor .*: rename "__taskhost_p"/ }],
  });
  await t.rejects(driver.startTask(cfg), InvalidConfigError);
});

t.test("the executor's record files: a reader never takes a torn or foreign one for a task", async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-executor-files-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files = runFiles(dir, 'alloc/web/0123abcd');
  t.same(files, {
    dir: path.join(dir, '.raw_exec'),
    pid: path.join(dir, '.raw_exec/0123abcd.pid'),
    exit: path.join(dir, '.raw_exec/0123abcd.exit'),
  });
  t.match(runFiles(dir, 'an id / of .. another shape').pid, /\.raw_exec\/[0-9a-f]{16}\.pid$/, 'an odd id is hashed');
  t.equal(readPidFile(files.pid), undefined);
  t.equal(readExitFile(files.exit), undefined);
  mkdirSync(files.dir);
  writeFileSync(files.pid, '{"pid":1}');
  t.throws(() => readPidFile(files.pid), { name: 'InvalidConfigError', message: /cannot read the task record/ });
  writeFileSync(files.pid, '{"pid":');
  t.throws(() => readPidFile(files.pid), { name: 'InvalidConfigError', message: /cannot read the task record/ });
  t.throws(() => readPidFile(files.dir), { code: 'EISDIR' }, 'a file that cannot be read is an error, not "never started"');
  writeFileSync(files.exit, 'not json');
  t.throws(() => readExitFile(files.exit), { name: 'InvalidConfigError', message: /cannot read the exit the executor recorded/ });

  // A recovered task whose exit record is unreadable ends with the reason, never a crash.
  const driver = newDriver(t);
  const cfg = rawExecTask(t, sh('exit 0'));
  const { handle } = await driver.startTask(cfg);
  cleanUp(t, handle);
  await driver.waitTask(cfg.id, forever);
  writeFileSync(runFiles(cfg.taskDir, cfg.id).exit, '{"exitCode":"x"}');
  const again = newDriver(t);
  again.recoverTask(handle);
  t.match(again.inspectTask(cfg.id).exitResult, { exitCode: -1, err: /cannot read the exit the executor recorded/ });
});

t.test('a shell status maps to an ExitResult as the executor records it', async (t) => {
  t.same(fromShellStatus(0), exited(0));
  t.same(fromShellStatus(127), exited(127));
  t.same(fromShellStatus(137), signalExit('SIGKILL'));
  t.same(fromShellStatus(143), signalExit('SIGTERM'));
  t.same(fromShellStatus(250), exited(250), 'beyond any signal');
});

t.test('the executor needs /bin/sh, setsid and mv: a host without one is told which', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-executor-tools-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tool = (name: string) => writeFileSync(path.join(dir, name), '#!/bin/sh\n', { mode: 0o755 });
  t.same(findExecutorTools(path.join(dir, 'sh'), [dir]), { missing: path.join(dir, 'sh') });
  tool('sh');
  t.same(findExecutorTools(path.join(dir, 'sh'), [dir]), { missing: 'setsid (util-linux or busybox)' });
  tool('setsid');
  t.same(findExecutorTools(path.join(dir, 'sh'), [dir]), { missing: 'mv (coreutils or busybox)' });
  tool('mv');
  t.same(findExecutorTools(path.join(dir, 'sh'), [dir]), { setsid: path.join(dir, 'setsid'), mv: path.join(dir, 'mv') });
});

t.test('a command is looked up as exec would: a directory of its name in PATH is not executable', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-executor-path-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'tool'));
  t.throws(() => checkProgram('tool', dir, { PATH: dir }), { code: 'EACCES' });
  t.throws(() => checkProgram('tool', dir, { PATH: '/nonexistent' }), { code: 'ENOENT' });
  t.doesNotThrow(() => checkProgram('sh', dir, {}), 'no PATH: the default one');
  writeFileSync(path.join(dir, 'run'), '#!/bin/sh\n', { mode: 0o755 });
  t.doesNotThrow(() => checkProgram('run', dir, { PATH: '' }), 'an empty PATH entry is the working directory');
});

t.test('an executor that cannot write its record fails the start, says where to look, and leaves nothing', async (t) => {
  const driver = newDriver(t);
  const cfg = rawExecTask(t, { command: 'sh', args: ['-c', 'touch ran'] });
  const files = runFiles(cfg.taskDir, cfg.id);
  mkdirSync(`${files.pid}.tmp`, { recursive: true }); // where the record is written first: a directory, so the write fails
  await t.rejects(driver.startTask(cfg), {
    name: 'PluginError',
    message: new RegExp(`executor exited \\(exit status 125\\) before it started the task: .*messages are in ${cfg.stderrPath}`),
  });
  t.match(readFileSync(cfg.stderrPath, 'utf8'), /\.pid\.tmp/, "the shell's reason is in the task's stderr log");
  t.notOk(existsSync(path.join(cfg.taskDir, 'ran')), 'the command never ran');
  t.notOk(existsSync(`${files.pid}.tmp`) || existsSync(files.exit), 'the run left no files');
  t.throws(() => driver.inspectTask(cfg.id), TaskNotFoundError);
});

t.test('a signal sent before setsid(1) has made the task its group reaches the task itself', async (t) => {
  // A live process that leads no group, and an executor that is alive (this very process):
  // how a task looks for the moment between its record and its own group.
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const pid = child.pid!;
  await until(() => readProcStat(pid) !== undefined, 'the child to start');
  const cfg = rawExecTask(t, { command: 'sleep', args: ['30'] });
  const driver = newDriver(t);
  driver.recoverTask({
    version: 2,
    config: cfg,
    state: 'running',
    driverState: {
      pid,
      pgid: pid,
      startTime: readProcStat(pid)!.startTime,
      startedAt: new Date().toISOString(),
      executorPid: process.pid,
      executorStartTime: readProcStat(process.pid)!.startTime,
    },
  });
  const gone = new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  driver.signalTask(cfg.id, 'SIGTERM');
  t.equal(await gone, 'SIGTERM');
});

t.test('the executor works in each POSIX shell /bin/sh may be: dash, bash, busybox', async (t) => {
  const tools = findExecutorTools('/bin/sh', ['/usr/bin', '/bin']);
  if ('missing' in tools) throw new Error(`this host lacks ${tools.missing}`);
  const shells = {
    dash: ['/bin/dash', '/usr/bin/dash'],
    bash: ['/bin/bash', '/usr/bin/bash'],
    busybox: ['/bin/busybox', '/usr/bin/busybox'],
  };
  for (const [name, candidates] of Object.entries(shells)) {
    const found = candidates.find((c) => existsSync(c));
    await t.test(name, { skip: found ? false : `${name} is not installed here` }, async (t) => {
      const cfg = rawExecTask(t, { command: 'env', args: ['-0'] }, { env: { A: '1' } });
      let shell = found!;
      if (name === 'busybox') {
        // busybox is a shell only when asked for one: a wrapper that asks.
        shell = path.join(cfg.allocDir, 'busybox-sh');
        writeFileSync(shell, `#!/bin/sh\nexec ${found} sh "$@"\n`, { mode: 0o755 });
      }
      const spawnIn = (c: TaskConfig) => {
        const task = c.config as RawExecTaskConfig;
        const files = runFiles(c.taskDir, c.id);
        const env = { cwd: c.taskDir, env: c.env, stdoutPath: c.stdoutPath, stderrPath: c.stderrPath };
        return { files, started: TaskProcess.spawn({ command: task.command, args: task.args ?? [], ...env, files, shell }, tools) };
      };
      const { files, started } = spawnIn(cfg);
      const proc = await started;
      t.teardown(() => void killGroup(proc.state.pgid, 'SIGKILL'));
      t.same(await proc.wait(), exited(0), 'the exit is recorded');
      t.same(readExitFile(files.exit)?.result, exited(0));
      t.match(readPidFile(files.pid), { pid: proc.state.pid, pgid: proc.state.pid, executorPid: proc.state.executorPid });
      const env = readFileSync(cfg.stdoutPath, 'utf8')
        .split('\0')
        .filter((v) => v !== '' && !/^(_TAPJS_|NODE_OPTIONS=)/.test(v));
      t.same(env, ['A=1'], "exactly the task's env");

      const killed = rawExecTask(t, { command: 'sleep', args: ['30'] });
      const sleeping = await spawnIn(killed).started;
      t.teardown(() => void killGroup(sleeping.state.pgid, 'SIGKILL'));
      t.ok(killGroup(sleeping.state.pgid, 'SIGINT'), 'the group exists');
      t.same(await sleeping.wait(), signalExit('SIGINT'), 'killed by SIGINT, which the task did not ignore');
      t.equal(readFileSync(killed.stderrPath, 'utf8'), '', "no word of the shell in the task's log");
    });
  }
});
