/**
 * The driver conformance suite behind `taskhost conformance`: loads a driver through the real
 * loader and checks the contract method by method, as far as its capabilities go. Each failure
 * says what the driver did and what the contract wants instead.
 *
 * Scenarios come from the plugin folder's `conformance.json`, because only the driver knows what
 * a long-running or a failing task looks like for it:
 *   longRunning  a task config that runs for a minute and stops on its kill signal
 *   fastExit     { config, exitCode }: exits at once with that code
 *   ignoresStop  a task config that ignores the kill signal (optional)
 *   output       { config, stdout }: writes exactly `stdout` and exits 0 (optional)
 *   exec         { command, stdout }: a command for execTask and its output (when exec is a capability)
 *   badConfig    { config, path }: an invalid task config and the JSON path (within config) at fault
 *
 * Besides the contract's answers, it checks what only shows in production: that every method
 * taking an AbortSignal settles when it aborts, that destroyTask() and shutdown() leave no timers
 * or handles in the worker, and that no process of the run's tasks is left running afterwards,
 * also when a check times out or the plugin crashes (every task of a run has the run's alloc id,
 * and what is found is reported and killed).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Type, type Static } from '@sinclair/typebox';
import {
  DriverCapabilitiesSchema,
  type DriverCapabilities,
  type ExitResult,
  type TaskConfig,
  type TaskEvent,
  type TaskHandle,
} from '../shared/driver.js';
import { InvalidConfigError, PluginContractError, TaskNotFoundError, type TaskhostError } from '../shared/errors.js';
import { compileSchema, formatIssues, parseWith, type JsonSchema } from '../shared/schema.js';
import { parseAgentConfig, type AgentConfig } from '../plugin-loader/agent-config.js';
import {
  checkRunner,
  conformanceRunId,
  describe,
  drain,
  Miss,
  setUp,
  Skip,
  withTimeout,
  type ConformanceOptions,
  type ConformanceReport,
} from './check-runner.js';
import { describeLeak, leakedResources, shutdownLeftovers } from './leaked-resources.js';
import { leftoverProblem } from './leftover-processes.js';
import { describeUnsettled, inFlightIds, opened, stillInFlight } from './unsettled-calls.js';
import { PluginLoader } from '../plugin-loader/loader.js';
import type { PluginInstance } from '../plugin-loader/plugin-instance.js';
import { DriverClient } from '../drivers/driver-client.js';
import { driverMethods } from '../shared/driver.js';
import { parseTaskSpec, prepareTask } from '../drivers/prepare-task.js';

/** conformance.json of a driver (also read by bridges/nomad/conformance-scenario.ts). */
export const DriverScenarios = Type.Object({
  longRunning: Type.Record(Type.String(), Type.Unknown()),
  fastExit: Type.Object({ config: Type.Record(Type.String(), Type.Unknown()), exitCode: Type.Integer() }),
  ignoresStop: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  output: Type.Optional(Type.Object({ config: Type.Record(Type.String(), Type.Unknown()), stdout: Type.String() })),
  exec: Type.Optional(Type.Object({ command: Type.Array(Type.String(), { minItems: 1 }), stdout: Type.String() })),
  badConfig: Type.Object({ config: Type.Record(Type.String(), Type.Unknown()), path: Type.String() }),
});
export type DriverScenarios = Static<typeof DriverScenarios>;

export type { CheckResult, CheckStatus, ConformanceOptions, ConformanceReport } from './check-runner.js';

const short = 15_000;
/** Loading has its own deadline (supervision's startTimeout, 30 s by default): the check waits past it. */
const loadTimeoutMs = 60_000;
const schemaCheck = 'configSchema() and taskConfigSchema() are valid JSON Schemas';
const startCheck = 'startTask() returns a handle that can be stored as JSON';

export async function runDriverConformance(options: ConformanceOptions): Promise<ConformanceReport> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'taskhost-conformance-'));
  const base = options.config ?? parseAgentConfig({ pluginDir: path.join(dataDir, 'no-plugins') });
  const config: AgentConfig = { ...base, dataDir };
  const isPath = options.target.includes('/') || options.target.startsWith('.');
  const runId = conformanceRunId();
  // Whatever the worker spawns inherits the mark; the tasks get the run's alloc id from their env.
  const marks = [`TASKHOST_ALLOC_ID=${runId}`, `TASKHOST_CONFORMANCE_RUN=${runId}`];
  const makeLoader = () =>
    new PluginLoader({
      config,
      ...(options.logger ? { logger: options.logger } : {}),
      ...(isPath ? { extraDirs: [path.resolve(options.target)] } : {}),
      probe: { trackTimers: true, env: { TASKHOST_CONFORMANCE_RUN: runId } },
    });
  const report: ConformanceReport = { plugin: { name: options.target }, checks: [], passed: 0, failed: 0, skipped: 0, runId };
  let loader = makeLoader();
  /** Every task the suite asked to start, by id: its handle once the start returned one. */
  const started = new Map<string, TaskConfig | TaskHandle>();
  let driver: DriverClient | undefined;
  let hosted = false;
  /** Set once the suite tears down: a timed-out check still running must not start a loader after it. */
  let tearingDown = false;

  const check = checkRunner(report, options.onCheck, options.checkTimeoutMs ?? short * 2);

  try {
    let instance: PluginInstance | undefined;
    let scenarios: DriverScenarios | undefined;
    let schema: JsonSchema | undefined;
    let caps: DriverCapabilities | undefined;

    const loaded = await check(
      'loads through the plugin loader',
      async () => {
        await loader.start();
        const name = isPath ? loader.list().find((r) => r.source === 'path')?.name : options.target;
        const row = loader.list().find((r) => r.name === name);
        if (!row)
          throw new Miss(`no plugin found at ${options.target} (a folder with a package.json "taskhost" manifest, or a plugin name)`);
        report.plugin = { name: row.name, dir: row.dir, source: row.source };
        if (row.version) report.plugin.version = row.version;
        if (row.apiVersion) report.plugin.apiVersion = row.apiVersion;
        if (row.state === 'skipped') throw new Miss(`the loader skipped it: ${row.reason}`);
        if (row.type !== 'driver') throw new Miss(`its manifest says type "${row.type}"; this suite checks drivers`);
        instance = loader.get(row.name);
        hosted = instance.state === 'running';
        if (instance.state !== 'running') throw new Miss(`it did not start: ${instance.lastError?.message ?? instance.state}`);
        driver = new DriverClient(instance);
      },
      loadTimeoutMs,
    );
    if (!loaded || !driver || !instance) return report;
    const d = driver;
    const inst = instance;
    /** What the worker holds once the plugin is loaded: what it holds later is measured against it. */
    let baseline = (await inst.diagnostics()).resources;

    await check('implements every driver method', async () => {
      const missing = driverMethods.filter((m) => !inst.implements(m));
      if (missing.length) throw new Miss(`missing: ${missing.join(', ')}`);
    });
    await check('capabilities() are well formed', async () => {
      const result = compileSchema<DriverCapabilities>(DriverCapabilitiesSchema)(await d.capabilities());
      if (!result.ok) throw new Miss(`capabilities() ${formatIssues(result.issues).join('; ')}`);
      caps = result.value;
    });
    // The one place a schema problem is reported: the checks that need the schema point here.
    await check(schemaCheck, async () => {
      const given = await d.taskConfigSchema();
      if (typeof given !== 'object' || given === null || Array.isArray(given)) {
        throw new Miss('taskConfigSchema() must return a JSON Schema object');
      }
      if (inst.configSchema) compileSchema(inst.configSchema, 'configSchema()');
      compileSchema(given, 'taskConfigSchema()');
      schema = given;
    });
    await check('conformance.json describes the test tasks', async () => {
      const dir = report.plugin.dir;
      let text: string;
      try {
        text = await readFile(path.join(dir ?? '.', 'conformance.json'), 'utf8');
      } catch {
        throw new Miss(
          `add ${path.join(dir ?? '.', 'conformance.json')} with task configs for longRunning, fastExit and badConfig (see docs/writing-a-driver.md)`,
        );
      }
      scenarios = parseWith(compileSchema<DriverScenarios>(DriverScenarios), JSON.parse(text), 'conformance.json');
    });
    await check('fingerprint() reports a healthy driver at once', async () => {
      const stop = new AbortController();
      try {
        const first = await withTimeout(
          d.fingerprint(stop.signal)[Symbol.asyncIterator]().next(),
          5_000,
          'no fingerprint within 5s: fingerprint() must yield its first item at once',
        );
        if (first.done) throw new Miss('the fingerprint stream ended without an item');
        if (first.value.health !== 'healthy') {
          throw new Miss(
            `health is "${first.value.health}" (${first.value.healthDescription}); the rest of the suite needs a healthy driver`,
          );
        }
      } finally {
        stop.abort();
      }
    });
    if (!scenarios || !caps) return report;
    const sc = scenarios;
    const sch = schema;
    const cp = caps;

    const newTask = async (name: string, taskConfig: Record<string, unknown>, killTimeout = '2s'): Promise<TaskConfig> => {
      if (!sch) throw new Skip(`it needs a valid taskConfigSchema(): see "${schemaCheck}"`);
      const spec = parseTaskSpec({ name, driver: report.plugin.name, config: taskConfig, killTimeout });
      return prepareTask({
        spec,
        schema: sch,
        capabilities: cp,
        dataDir,
        allocId: runId,
        hostEnv: process.env,
        hostEnvAllow: config.hostEnvAllow,
      });
    };
    /** Set when a start broke the contract: every later start would break it the same way. */
    let brokenStart: string | undefined;
    const start = async (task: TaskConfig): Promise<TaskHandle> => {
      if (brokenStart) throw new Skip(`it needs startTask() to return a handle the host can keep: see "${brokenStart}"`);
      started.set(task.id, task);
      try {
        const { handle } = await driver!.startTask(task);
        started.set(task.id, handle);
        return handle;
      } catch (err) {
        if (err instanceof PluginContractError) brokenStart = startCheck;
        throw err;
      }
    };

    await check('a bad task config is rejected with its JSON path', async () => {
      const want = `/config${sc.badConfig.path}`;
      try {
        await newTask('bad-config', sc.badConfig.config);
      } catch (err) {
        if (!(err instanceof InvalidConfigError)) throw err;
        const paths = err.errors.map((e) => e.path);
        if (!paths.includes(want)) throw new Miss(`rejected, but at ${paths.join(', ')} instead of ${want}`);
        return;
      }
      throw new Miss(
        `taskConfigSchema() accepted ${JSON.stringify(sc.badConfig.config)}; it must reject it at ${want} (close objects with additionalProperties: false)`,
      );
    });

    const events: TaskEvent[] = [];
    const eventsStop = new AbortController();
    const eventsDone = (async () => {
      try {
        for await (const e of d.taskEvents(eventsStop.signal)) events.push(e);
      } catch {
        // the events check reports what was (not) received
      }
    })();

    let long: TaskHandle | undefined;
    // The host round-trips the handle through JSON (DriverClient.startTask): what comes back is
    // the stored copy, and a handle JSON would change, or one that cannot cross, fails here.
    await check(startCheck, async () => {
      const task = await newTask('long', sc.longRunning);
      long = await start(task);
      if (long?.config?.id !== task.id) throw new Miss(`handle.config.id is ${long?.config?.id}, expected ${task.id}`);
      if (typeof long.version !== 'number') throw new Miss('handle.version must be a number');
      if (long.state !== 'running') throw new Miss(`handle.state is "${long.state}", expected "running"`);
    });
    const longId = long?.config.id;

    await check('inspectTask() reports a running task', async () => {
      if (!longId) throw new Skip('no task was started');
      const status = await d.inspectTask(longId);
      if (status.id !== longId) throw new Miss(`status.id is ${status.id}, expected ${longId}`);
      if (status.state !== 'running') throw new Miss(`state is "${status.state}", expected "running"`);
    });
    await check('a second startTask() with the same id is refused', async () => {
      if (!long) throw new Skip('no task was started');
      const err = await d.startTask(long.config).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!err) throw new Miss('it started the same task id twice: reject a duplicate with TaskExistsError');
      if ((err as TaskhostError).code !== 'TASK_EXISTS')
        throw new Miss(`rejected with ${(err as TaskhostError).code}; use TaskExistsError (TASK_EXISTS)`);
    });
    await check('unknown task ids are TASK_NOT_FOUND', async () => {
      const id = 'no-alloc/nothing/00000000';
      for (const [what, call] of [
        ['inspectTask', () => d.inspectTask(id)],
        ['stopTask', () => d.stopTask(id, 100)],
        ['destroyTask', () => d.destroyTask(id, true)],
        ['waitTask', () => d.waitTask(id, AbortSignal.timeout(5_000))],
      ] as const) {
        const err = await (call as () => Promise<unknown>)().then(
          () => undefined,
          (e: unknown) => e,
        );
        if ((err as TaskhostError | undefined)?.code !== 'TASK_NOT_FOUND') {
          throw new Miss(
            `${what}() of an unknown id ${err ? `failed with ${(err as TaskhostError).code}` : 'succeeded'}; throw TaskNotFoundError`,
          );
        }
      }
    });
    await check('recoverTask() of a start that never ran is TASK_NOT_FOUND, and starts nothing', async () => {
      // The intent handle the host stores before startTask (docs/writing-a-driver.md, "A start
      // that was in flight"): after a crash before the start, recovery must not run the task.
      const task = await newTask('intent', sc.longRunning);
      const intent: TaskHandle = { version: 0, config: task, state: 'unknown', driverState: null };
      const err = await d.recoverTask(intent).then(
        () => undefined,
        (e: unknown) => e,
      );
      const started = await d.inspectTask(task.id).then(
        () => true,
        () => false,
      );
      if (started) {
        await d.destroyTask(task.id, true).catch(() => undefined);
        throw new Miss('it started the task from an intent handle: recoverTask() must find a task, never start one');
      }
      if ((err as TaskhostError | undefined)?.code !== 'TASK_NOT_FOUND') {
        throw new Miss(
          `recoverTask() of an intent handle (driverState null) for a task never started ${err ? `failed with ${describe(err)}` : 'succeeded'}; throw TaskNotFoundError`,
        );
      }
    });
    await check('taskStats() streams usage at the interval', async () => {
      if (!longId) throw new Skip('no task was started');
      const stop = new AbortController();
      const samples: unknown[] = [];
      try {
        await withTimeout(
          (async () => {
            for await (const s of d.taskStats(longId, 200, stop.signal)) {
              samples.push(s);
              if (samples.length === 2) return;
            }
          })(),
          5_000,
          'fewer than 2 samples within 5s at a 200ms interval',
        );
      } finally {
        stop.abort();
      }
      const s = samples[0] as { taskId?: unknown; timestamp?: unknown; cpu?: { percent?: unknown }; memory?: { rssBytes?: unknown } };
      if (
        s.taskId !== longId ||
        typeof s.timestamp !== 'number' ||
        typeof s.cpu?.percent !== 'number' ||
        typeof s.memory?.rssBytes !== 'number'
      ) {
        throw new Miss(`a sample must have taskId, timestamp, cpu.percent and memory.rssBytes; got ${JSON.stringify(s)}`);
      }
    });
    await check('signalTask() delivers a signal and refuses an unknown one', async () => {
      if (!cp.sendSignals) throw new Skip('capabilities.sendSignals is false');
      if (!longId) throw new Skip('no task was started');
      await d.signalTask(longId, 'SIGCONT');
      const err = await d.signalTask(longId, 'SIGNOPE').then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!err) throw new Miss('signalTask(id, "SIGNOPE") succeeded; an unknown signal name must be an error');
    });
    await check('execTask() runs a command in the task and returns its output', async () => {
      if (!cp.exec) throw new Skip('capabilities.exec is false');
      if (!sc.exec) throw new Miss('capabilities.exec is true but conformance.json has no "exec" scenario');
      if (!longId) throw new Skip('no task was started');
      const result = await d.execTask(longId, sc.exec.command, 10_000);
      if (result.stdout !== sc.exec.stdout)
        throw new Miss(`stdout was ${JSON.stringify(result.stdout)}, expected ${JSON.stringify(sc.exec.stdout)}`);
      if (result.exitResult.exitCode !== 0) throw new Miss(`exit code ${result.exitResult.exitCode}, expected 0`);
    });
    await check('recoverTask() re-attaches after a simulated host restart', async () => {
      if (!long) throw new Skip('no task was started');
      await loader.close();
      const next = makeLoader();
      await next.start();
      if (tearingDown) {
        await next.close();
        throw new Miss('the suite ended before the plugin had restarted');
      }
      loader = next;
      const again = new DriverClient(loader.get(report.plugin.name));
      driver = again;
      // A new worker: its baseline is taken before it takes on the recovered task.
      baseline = (await again.instance.diagnostics()).resources;
      // `long` is the JSON copy the host stored, as after a real restart.
      await again.recoverTask(long);
      await again.recoverTask(long); // a second call must be a no-op
      const status = await again.inspectTask(long.config.id);
      if (status.state !== 'running') throw new Miss(`after recovery the task is "${status.state}", expected "running"`);
    });
    const dd = (): DriverClient => driver!;
    /** waitTask, with a failure explained in terms of the contract. */
    const wait = async (id: string, ms: number, hang: string): Promise<ExitResult> => {
      try {
        return await withTimeout(dd().waitTask(id), ms, hang);
      } catch (err) {
        if (err instanceof Miss) throw err;
        throw new Miss(
          `waitTask() failed with ${describe(err)}; it must resolve with the ExitResult, also when called after the task has exited`,
        );
      }
    };
    await check('stopTask() ends a task within its timeout and waitTask() reports it', async () => {
      if (!longId) throw new Skip('no task was started');
      const t0 = performance.now();
      await dd().stopTask(longId, 2_000);
      const exit = await wait(longId, 5_000, 'waitTask() did not return after stopTask()');
      const ms = performance.now() - t0;
      if (ms > 3_500) throw new Miss(`stopping took ${Math.round(ms)}ms with a 2s timeout`);
      const status = await dd().inspectTask(longId);
      if (status.state !== 'exited') throw new Miss(`after a stop inspectTask() says "${status.state}", expected "exited"`);
      checkExit(exit);
    });
    await check('stopTask() kills a task that ignores its kill signal after the timeout', async () => {
      if (!sc.ignoresStop) throw new Skip('conformance.json has no "ignoresStop" scenario');
      const task = await newTask('stubborn', sc.ignoresStop);
      await start(task);
      await sleep(200);
      const t0 = performance.now();
      await dd().stopTask(task.id, 1_000);
      const exit = await wait(task.id, 5_000, 'waitTask() did not return after stopTask()');
      const ms = performance.now() - t0;
      if (ms < 900) throw new Miss(`the task was gone after ${Math.round(ms)}ms; expected the full 1s timeout before the kill`);
      if (ms > 3_000) throw new Miss(`stopping took ${Math.round(ms)}ms with a 1s timeout`);
      if (exit.signal !== 'SIGKILL') throw new Miss(`exit signal ${exit.signal}, expected SIGKILL after the timeout`);
    });
    await check('destroyTask() refuses a running task unless forced', async () => {
      const task = await newTask('destroy-me', sc.longRunning);
      await start(task);
      const err = await dd()
        .destroyTask(task.id, false)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      if ((err as TaskhostError | undefined)?.code !== 'TASK_RUNNING') {
        throw new Miss(
          `destroyTask(id, false) on a running task ${err ? `failed with ${(err as TaskhostError).code}` : 'succeeded'}; throw TaskRunningError`,
        );
      }
      await dd().destroyTask(task.id, true);
      const gone = await dd()
        .inspectTask(task.id)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      if ((gone as TaskhostError | undefined)?.code !== 'TASK_NOT_FOUND')
        throw new Miss('after destroyTask(id, true) the task is still known');
    });
    await check('a task that exits at once reports its exit code, every time', async () => {
      for (let i = 0; i < 5; i++) {
        const task = await newTask(`fast-${i}`, sc.fastExit.config);
        await start(task);
        const exit = await wait(task.id, 10_000, 'waitTask() of a task that exits at once did not return');
        if (exit.exitCode !== sc.fastExit.exitCode || exit.err) {
          throw new Miss(
            `run ${i + 1}: exit ${JSON.stringify(exit)}, expected exit code ${sc.fastExit.exitCode}: arm the wait before the task can exit`,
          );
        }
        const again = await dd().waitTask(task.id);
        if (again.exitCode !== exit.exitCode) throw new Miss('a second waitTask() after the exit returned a different result');
        const status = await dd().inspectTask(task.id);
        if (status.state !== 'exited') throw new Miss(`inspectTask() of an exited task says "${status.state}"`);
      }
    });
    await check("a task's output lands in its stdout file", async () => {
      if (!sc.output) throw new Skip('conformance.json has no "output" scenario');
      const task = await newTask('output', sc.output.config);
      await start(task);
      await wait(task.id, 10_000, 'the output task did not exit');
      const text = await readFile(task.stdoutPath, 'utf8');
      if (text !== sc.output.stdout)
        throw new Miss(`stdout file holds ${JSON.stringify(text)}, expected ${JSON.stringify(sc.output.stdout)}`);
    });
    await check('taskEvents() reports events for the tasks', async () => {
      if (!longId) throw new Skip('no task was started');
      if (!events.some((e) => e.taskId === longId)) {
        throw new Miss(`no event arrived for task ${longId}; emit at least one (e.g. when a task starts) through taskEvents()`);
      }
      const bad = events.find((e) => typeof e.message !== 'string' || typeof e.timestamp !== 'string');
      if (bad) throw new Miss(`an event lacks a string message or timestamp: ${JSON.stringify(bad)}`);
    });
    eventsStop.abort();
    await eventsDone;

    const signalled = ['waitTask', 'taskStats', 'fingerprint', 'taskEvents'];
    await check('waitTask(), taskStats(), fingerprint() and taskEvents() settle when their signal aborts', async () => {
      const task = await newTask('abort', sc.longRunning);
      await start(task);
      const now = dd();
      const diagnose = () => now.instance.diagnostics();
      const before = await inFlightIds(diagnose);
      const stop = new AbortController();
      const open = [
        now.waitTask(task.id, stop.signal),
        drain(now.taskStats(task.id, 200, stop.signal)),
        drain(now.fingerprint(stop.signal)),
        drain(now.taskEvents(stop.signal)),
      ].map((p) => p.catch(() => undefined));
      const calls = await opened(diagnose, signalled, before);
      stop.abort();
      await Promise.all(open);
      const left = await stillInFlight(diagnose, calls);
      if (left.length) throw new Miss(describeUnsettled(left));
    });

    await check('destroyTask() leaves no timers or handles behind', async () => {
      const now = dd();
      await destroyAll(now, started);
      // What init() started may run on while the plugin is up; the tasks' and the streams' may not.
      const leak = await leakedResources(() => now.instance.diagnostics(), { baseline, mayRun: (origin) => setUp.has(origin) });
      if (leak) {
        throw new Miss(
          `${describeLeak(leak)} still active after every task was destroyed and every stream closed: clear each task's timers and close what it opened in destroyTask(), and what a stream opened when its signal aborts`,
        );
      }
    });

    await check('shutdown() leaves no timers or handles behind', async () => {
      const left = await shutdownLeftovers(dd().instance, 'the tasks');
      if (left === 'not running') throw new Skip('the plugin was not running at the end of the suite');
      if (left) throw new Miss(left);
    });
    return report;
  } finally {
    tearingDown = true;
    await check.settle(5_000);
    if (driver) await destroyAll(driver, started);
    await loader.close();
    if (hosted) {
      await check('no process of its tasks is left running', async () => {
        const left = await leftoverProblem(marks, {
          whose: " of the suite's tasks",
          after: 'every task was destroyed and the plugin shut down',
          fix: 'destroyTask(id, true) must stop the task and everything it started',
        });
        if (left === 'no /proc') throw new Skip('there is no /proc here to look for processes in');
        if (left) throw new Miss(left);
      });
    }
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * Destroys every task the suite started, best effort: one its driver no longer knows (the
 * plugin crashed and restarted) is recovered from its handle first, so the driver can stop it.
 */
async function destroyAll(driver: DriverClient, started: Map<string, TaskConfig | TaskHandle>): Promise<void> {
  for (const [id, task] of started) {
    const destroyed = await driver.destroyTask(id, true).then(
      () => true,
      (err: unknown) => err,
    );
    if (destroyed instanceof TaskNotFoundError && 'version' in task) {
      await driver
        .recoverTask(task)
        .then(() => driver.destroyTask(id, true))
        .catch(() => undefined);
    }
    started.delete(id);
  }
}

function checkExit(exit: ExitResult): void {
  if (typeof exit.exitCode !== 'number' || typeof exit.oomKilled !== 'boolean' || !('signal' in exit)) {
    throw new Miss(`an ExitResult needs exitCode, signal and oomKilled; got ${JSON.stringify(exit)}`);
  }
}
