// An example third-party driver, in plain JavaScript. Each task counts down `seconds`,
// appending a line per tick to its stdout file, then exits with `exitCode`. Everything needed to
// pick a task up again after a restart is in its handle's driverState (the deadline), so
// recoverTask works even in a brand-new process.
//
// Its only dependency is the plugin SDK, 'taskhost/sdk', declared in package.json as a peer
// dependency: the host that loads the plugin provides it, so this folder has no node_modules.
// The error classes are the host's own, so the host sees the right class for each.
import { appendFileSync } from 'node:fs';
import {
  CancelledError,
  EventHub,
  InvalidConfigError,
  TaskExistsError,
  TaskNotFoundError,
  TaskRunningError,
  signalExit,
  signalNumber,
} from 'taskhost/sdk';

export default function countdownDriver() {
  const tasks = new Map();
  const events = new EventHub();
  let tickMs = 1000;

  const event = (task, message) =>
    events.emit({
      taskId: task.id,
      taskName: task.config.name,
      allocId: task.config.allocId,
      timestamp: new Date().toISOString(),
      message,
    });

  const get = (id) => {
    const task = tasks.get(id);
    if (!task) throw new TaskNotFoundError(`no task ${id}`);
    return task;
  };

  const finish = (task, result) => {
    if (task.result) return;
    clearInterval(task.ticker);
    clearTimeout(task.timer);
    task.result = result;
    task.completedAt = new Date();
    event(task, result.signal ? `killed by ${result.signal}` : `exited with code ${result.exitCode}`);
    for (const resolve of task.waiters) resolve(result);
    task.waiters.clear();
  };

  /** Runs (or resumes) a task whose deadline is `state.deadline`. */
  const run = (config, state) => {
    const task = { id: config.id, config, state, startedAt: new Date(state.startedAt), waiters: new Set() };
    tasks.set(task.id, task);
    const say = (line) => appendFileSync(config.stdoutPath, `${line}\n`);
    const left = state.deadline - Date.now();
    if (left <= 0) {
      if (!state.resumed && config.config.message) say(config.config.message);
      finish(task, { exitCode: config.config.exitCode ?? 0, signal: null, oomKilled: false });
      return task;
    }
    task.ticker = setInterval(() => say(`${Math.ceil((state.deadline - Date.now()) / 1000)}`), tickMs);
    task.timer = setTimeout(() => {
      if (config.config.message) say(config.config.message);
      finish(task, { exitCode: config.config.exitCode ?? 0, signal: null, oomKilled: false });
    }, left);
    return task;
  };

  return {
    info: () => ({ type: 'driver', name: 'countdown', pluginVersion: '1.0.0', apiVersions: ['1.0'] }),
    configSchema: () => ({
      type: 'object',
      properties: { tickMs: { type: 'integer', minimum: 10, default: 1000, description: 'how often a task prints' } },
      additionalProperties: false,
    }),
    setConfig({ config }) {
      tickMs = config.tickMs;
    },
    taskConfigSchema: () => ({
      type: 'object',
      properties: {
        seconds: { type: 'number', minimum: 0 },
        exitCode: { type: 'integer', minimum: 0, maximum: 255, default: 0 },
        message: { type: 'string', description: 'printed when the countdown ends' },
      },
      required: ['seconds'],
      additionalProperties: false,
    }),
    capabilities: () => ({ sendSignals: true, exec: true, fsIsolation: 'none', networkModes: [], mounts: false }),
    async *fingerprint(signal) {
      yield { health: 'healthy', healthDescription: 'ready to count', attributes: { 'driver.countdown.tickMs': tickMs } };
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    },
    startTask(config) {
      if (tasks.has(config.id)) throw new TaskExistsError(`task ${config.id} already started`);
      const startedAt = Date.now();
      const state = { startedAt, deadline: startedAt + config.config.seconds * 1000 };
      const task = run(config, state);
      event(task, `counting down ${config.config.seconds}s`);
      return { handle: { version: 1, config, state: task.result ? 'exited' : 'running', driverState: state } };
    },
    waitTask(id, signal) {
      const task = get(id);
      if (task.result) return task.result;
      return new Promise((resolve, reject) => {
        const onAbort = () => (task.waiters.delete(done), reject(new CancelledError('wait cancelled')));
        const done = (result) => (signal.removeEventListener('abort', onAbort), resolve(result));
        task.waiters.add(done);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    },
    stopTask(id, timeoutMs, killSignal) {
      finish(get(id), signalExit(killSignal ?? 'SIGTERM'));
    },
    destroyTask(id, force) {
      const task = get(id);
      if (!task.result && !force) throw new TaskRunningError(`task ${id} is running; stop it first or force`);
      finish(task, signalExit('SIGKILL'));
      tasks.delete(id);
    },
    inspectTask(id) {
      const task = get(id);
      return {
        id,
        name: task.config.name,
        state: task.result ? 'exited' : 'running',
        startedAt: task.startedAt.toISOString(),
        ...(task.result ? { completedAt: task.completedAt.toISOString(), exitResult: task.result } : {}),
        driverAttributes: { deadline: new Date(task.state.deadline).toISOString() },
      };
    },
    recoverTask(handle) {
      if (tasks.has(handle.config.id)) return;
      // An intent handle (the host crashed before startTask returned): a countdown lives in this
      // process only, so a start that was in flight left nothing to find.
      if (handle.driverState === null) throw new TaskNotFoundError(`task ${handle.config.id} never started here`);
      if (typeof handle.driverState?.deadline !== 'number') {
        throw new Error(`cannot recover ${handle.config.id}: its handle has no deadline`);
      }
      const task = run(handle.config, { ...handle.driverState, resumed: true });
      event(task, 'recovered');
    },
    async *taskStats(id, intervalMs, signal) {
      const task = get(id);
      while (!task.result && !signal.aborted) {
        await new Promise((r) => setTimeout(r, intervalMs));
        if (task.result || signal.aborted) return;
        // A countdown costs next to nothing: say so honestly.
        yield { taskId: id, timestamp: Date.now(), cpu: { percent: 0 }, memory: { rssBytes: 0 }, measured: [] };
      }
    },
    taskEvents: (signal) => events.subscribe(signal),
    signalTask(id, signal) {
      const task = get(id);
      if (signalNumber(signal) === undefined) throw new InvalidConfigError(`unknown signal ${signal}`);
      if (['SIGTERM', 'SIGINT', 'SIGKILL'].includes(signal)) finish(task, signalExit(signal));
      else event(task, `received ${signal}`);
    },
    execTask(id, command) {
      const task = get(id);
      const [name, ...args] = command;
      const ok = (stdout) => ({ stdout, stderr: '', exitResult: { exitCode: 0, signal: null, oomKilled: false } });
      if (name === 'echo') return ok(`${args.join(' ')}\n`);
      if (name === 'remaining') return ok(`${Math.max(0, Math.ceil((task.state.deadline - Date.now()) / 1000))}\n`);
      return { stdout: '', stderr: `unknown command ${name}\n`, exitResult: { exitCode: 127, signal: null, oomKilled: false } };
    },
  };
}
