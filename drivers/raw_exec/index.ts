/**
 * The raw_exec driver, built in: runs a task's command as a plain process of this host, with no
 * isolation, in its own process group, under a small per-task executor (executor.ts) that
 * outlives the driver and the agent and records the task's exit. After a restart recoverTask
 * finds the task again by pid and start time, and reads its exit from the executor's file.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { arch, platform, release } from 'node:os';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import {
  defineDriver,
  signalNumber,
  type DriverFingerprint,
  type ExecResult,
  type ExitResult,
  type TaskConfig,
  type TaskEvent,
  type TaskHandle,
  type TaskResourceUsage,
  type TaskStatus,
} from '../../shared/driver.js';
import { Duration, parseDuration } from '../../shared/duration.js';
import {
  PluginError,
  InvalidConfigError,
  TaskExistsError,
  type TaskhostError,
  TaskNotFoundError,
  TaskNotRunningError,
  TaskRunningError,
  TimeoutError,
  type SchemaIssue,
} from '../../shared/errors.js';
import { EventHub } from '../../shared/event-hub.js';
import { ociArch } from '../../shared/oci-arch.js';
import type { SetConfigRequest } from '../../shared/plugin.js';
import { execCommand } from './exec-command.js';
import { checkProgram, executorTools, executorVariablePrefix, readPidFile, removeRunFiles, runFiles, type RunFiles } from './executor.js';
import { groupUsage } from './group-usage.js';
import { closingController, pause as sleep } from '../../shared/pause.js';
import { TaskProcess, type DriverState } from './task-process.js';

const version = '0.1.0';

/**
 * The version of the driverState layout in task handles. 2 added the executor's pid and start
 * time; a version 1 handle (no executor) is still recovered, with an unknown exit status.
 */
const handleVersion = 2;

/** How long a task may take to die after SIGKILL before stop or destroy gives up. */
const killWaitMs = 5_000;

export const RawExecConfig = Type.Object({
  fingerprintInterval: Duration({ default: '30s', description: 'how often fingerprint() reports' }),
  allowCwdOutsideTaskDir: Type.Boolean({
    default: false,
    description:
      "let a task's cwd name a directory outside its task directory (an absolute path, or one through .. or a symlink); " +
      'off, such a task is refused. raw_exec tasks share the host file system either way: this only keeps a mistyped cwd from running a task elsewhere',
  }),
});
export type RawExecConfig = Static<typeof RawExecConfig>;

export const RawExecTaskConfig = Type.Object({
  command: Type.String({ minLength: 1, description: 'program to run: a path, or a name looked up in the task env PATH' }),
  args: Type.Optional(Type.Array(Type.String(), { default: [], description: 'its arguments' })),
  cwd: Type.Optional(
    Type.String({ minLength: 1, description: 'working directory, relative to the task directory; default: the task directory' }),
  ),
});
export type RawExecTaskConfig = Static<typeof RawExecTaskConfig>;

interface Task {
  config: TaskConfig;
  proc: TaskProcess;
  files: RunFiles;
}

/** A fresh driver with no tasks: the worker calls it once. */
export default function rawExecDriver() {
  let config: RawExecConfig = { fingerprintInterval: '30s', allowCwdOutsideTaskDir: false };
  const tasks = new Map<string, Task>();
  /** Ids whose startTask is under way: a second start of one is refused, never run twice. */
  const starting = new Set<string>();
  const events = new EventHub<TaskEvent>();
  // Ends every stream when the driver shuts down.
  const closing = closingController();

  const get = (taskId: string): Task => {
    const task = tasks.get(taskId);
    if (!task) throw new TaskNotFoundError(`raw_exec has no task "${taskId}"`);
    return task;
  };

  const emit = (cfg: TaskConfig, message: string, annotations?: Record<string, string>) =>
    events.emit({
      taskId: cfg.id,
      taskName: cfg.name,
      allocId: cfg.allocId,
      timestamp: new Date().toISOString(),
      message,
      ...(annotations ? { annotations } : {}),
    });

  const track = (cfg: TaskConfig, proc: TaskProcess, files: RunFiles) => {
    tasks.set(cfg.id, { config: cfg, proc, files });
    proc.onExit((result) => emit(cfg, describeExit(result), exitAnnotations(result)));
  };

  /** Kills the group and waits for the executor to record the exit; then kills what the task left behind. */
  const kill = async (task: Task) => {
    // Waited for even when nothing was left to signal: the executor may be recording the exit.
    task.proc.signal('SIGKILL');
    if (!(await task.proc.exitedWithin(killWaitMs))) {
      throw new TimeoutError(`task "${task.config.id}" (pid ${task.proc.state.pid}) did not exit within ${killWaitMs}ms of SIGKILL`);
    }
    await task.proc.killStragglers();
  };

  /** What this raw_exec config allows of a task; validateTask and startTask both ask. */
  const checkPolicy = (cfg: TaskConfig): void => {
    const issues: SchemaIssue[] = [];
    if (cfg.user !== undefined) {
      issues.push({
        path: '/user',
        message: `raw_exec runs tasks as the agent's own user and cannot run them as "${cfg.user}": remove "user"`,
      });
    }
    const cwd = (cfg.config as RawExecTaskConfig).cwd;
    if (cwd !== undefined && !config.allowCwdOutsideTaskDir && !isInside(cfg.taskDir, path.resolve(cfg.taskDir, cwd))) {
      issues.push({ path: '/config/cwd', message: outsideTaskDir(cwd) });
    }
    for (const name of Object.keys(cfg.env).filter((n) => n.startsWith(executorVariablePrefix))) {
      issues.push({
        path: `/env/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`,
        message: `names starting with "${executorVariablePrefix}" belong to raw_exec's executor (a shell), which would change their values: rename "${name}"`,
      });
    }
    if (issues.length) throw invalidAll(issues);
  };

  return defineDriver({
    info: () => ({ type: 'driver', name: 'raw_exec', pluginVersion: version, apiVersions: ['1.0'] }),
    configSchema: () => RawExecConfig,
    setConfig(request: SetConfigRequest<RawExecConfig>) {
      config = request.config;
    },
    taskConfigSchema: () => RawExecTaskConfig,
    capabilities: () => ({
      sendSignals: true,
      exec: true,
      fsIsolation: 'none',
      networkModes: ['host'],
      mounts: false,
    }),

    async *fingerprint(signal: AbortSignal): AsyncGenerator<DriverFingerprint> {
      const stop = AbortSignal.any([signal, closing.signal]);
      while (!stop.aborted) {
        yield fingerprint();
        await sleep(parseDuration(config.fingerprintInterval), stop);
      }
    },

    /** The policy alone: no `user`, a cwd inside the task directory (unless allowed). Touches nothing. */
    validateTask(cfg: TaskConfig): void {
      checkPolicy(cfg);
    },

    async startTask(cfg: TaskConfig): Promise<{ handle: TaskHandle }> {
      if (tasks.has(cfg.id) || starting.has(cfg.id)) throw new TaskExistsError(`raw_exec already has a task "${cfg.id}"`);
      checkPolicy(cfg);
      const task = cfg.config as RawExecTaskConfig;
      const cwd = path.resolve(cfg.taskDir, task.cwd ?? '.');
      if (!isDirectory(cwd)) throw invalid('/config/cwd', `working directory ${cwd} does not exist or is not a directory`);
      // A symlink inside the task directory may point anywhere; what counts is where it leads.
      if (task.cwd !== undefined && !config.allowCwdOutsideTaskDir && !isInside(realpathSync(cfg.taskDir), realpathSync(cwd))) {
        throw invalid('/config/cwd', outsideTaskDir(task.cwd));
      }
      const tools = executorTools();
      if ('missing' in tools) throw new PluginError(`raw_exec cannot start tasks: ${missingTool(tools.missing)}`);
      const files = runFiles(cfg.taskDir, cfg.id);
      // A run the executor has recorded was started: by a host that crashed before it kept the
      // handle, say. Starting it again would run it twice; recoverTask finds it from its config.
      if (existsSync(files.pid)) {
        throw new TaskExistsError(
          `raw_exec already started task "${cfg.id}" (${files.pid} exists): recover it instead of starting it again`,
        );
      }
      let proc: TaskProcess;
      starting.add(cfg.id);
      try {
        checkProgram(task.command, cwd, cfg.env);
        proc = await TaskProcess.spawn(
          {
            command: task.command,
            args: task.args ?? [],
            cwd,
            env: cfg.env,
            stdoutPath: cfg.stdoutPath,
            stderrPath: cfg.stderrPath,
            files,
          },
          tools,
        );
      } catch (err) {
        throw spawnFailure(task.command, task.args ?? [], cfg.env, err);
      } finally {
        starting.delete(cfg.id);
      }
      track(cfg, proc, files);
      emit(cfg, `started: pid ${proc.state.pid}`, { pid: String(proc.state.pid) });
      const reserved = [...cfg.mounts, ...cfg.devices];
      if (reserved.length) {
        // Nothing to mount into: the task shares the host's file system, so it reaches each
        // reserved path where it is on the host (and, with no device cgroup, any device).
        const where = reserved.map((r) => (r.taskPath === r.hostPath ? r.hostPath : `${r.hostPath} (not at ${r.taskPath})`));
        emit(
          cfg,
          `raw_exec mounts nothing: the task shares the host's file system and finds its devices at their host paths: ${where.join(', ')}`,
          {
            hostPaths: reserved.map((r) => r.hostPath).join(','),
          },
        );
      }
      return { handle: { version: handleVersion, config: cfg, state: 'running', driverState: proc.state } };
    },

    waitTask(taskId: string, signal: AbortSignal): Promise<ExitResult> {
      return get(taskId).proc.wait(signal);
    },

    async stopTask(taskId: string, timeoutMs: number, killSignal?: string): Promise<void> {
      const task = get(taskId);
      if (!task.proc.running) return;
      const name = killSignal ?? task.config.killSignal ?? 'SIGTERM';
      checkSignal(name);
      emit(task.config, `stop requested: sending ${name}, SIGKILL after ${timeoutMs}ms`, { signal: name });
      if (task.proc.signal(name) && !(await task.proc.exitedWithin(timeoutMs))) {
        emit(task.config, `task did not exit within ${timeoutMs}ms of ${name}: sending SIGKILL`, { signal: 'SIGKILL' });
      }
      await kill(task);
    },

    async destroyTask(taskId: string, force: boolean): Promise<void> {
      const task = get(taskId);
      if (task.proc.running && !force) {
        throw new TaskRunningError(`task "${taskId}" is still running: stop it first, or destroy it with force`);
      }
      await kill(task);
      task.proc.close();
      removeRunFiles(task.files);
      tasks.delete(taskId);
    },

    inspectTask(taskId: string): TaskStatus {
      const { config: cfg, proc } = get(taskId);
      const status: TaskStatus = {
        id: cfg.id,
        name: cfg.name,
        state: proc.running ? 'running' : 'exited',
        startedAt: proc.state.startedAt,
        driverAttributes: {
          pid: String(proc.state.pid),
          ...(proc.state.executorPid === undefined ? {} : { executorPid: String(proc.state.executorPid) }),
        },
      };
      if (proc.result) status.exitResult = proc.result;
      if (proc.completedAt) status.completedAt = proc.completedAt;
      return status;
    },

    /**
     * Re-attaches from a handle; or, from an intent handle (driverState null: the host stopped
     * while startTask ran), from the executor's pid file, which exists once the executor ran:
     * without one the task never started (TaskNotFoundError), and it is never started here.
     */
    recoverTask(handle: TaskHandle): void {
      if (typeof handle.config?.id !== 'string') throw invalid('/config', 'the task handle has no task config');
      if (tasks.has(handle.config.id)) return;
      if (typeof handle.config.taskDir !== 'string') throw invalid('/config/taskDir', 'the task handle has no task directory');
      const files = runFiles(handle.config.taskDir, handle.config.id);
      let state: DriverState;
      if (handle.driverState === null || handle.driverState === undefined) {
        const recorded = readPidFile(files.pid);
        if (!recorded) {
          throw new TaskNotFoundError(
            `raw_exec never started task "${handle.config.id}": there is no ${files.pid}, so the host stopped before the task's executor ran`,
          );
        }
        state = recorded;
      } else if (handle.version === handleVersion || handle.version === 1) {
        state = driverState(handle.driverState, handle.version);
      } else {
        throw invalid('/version', `raw_exec cannot recover a task handle of version ${handle.version}; it writes version ${handleVersion}`);
      }
      const proc = TaskProcess.adopt(state, files);
      track(handle.config, proc, files);
      emit(handle.config, `recovered: pid ${proc.state.pid}`, { pid: String(proc.state.pid) });
    },

    async *taskStats(taskId: string, intervalMs: number, signal: AbortSignal): AsyncGenerator<TaskResourceUsage> {
      const { proc } = get(taskId);
      if (!(intervalMs > 0)) throw invalid('', `the stats interval must be a positive number of ms, got ${intervalMs}`);
      const stop = AbortSignal.any([signal, proc.exitSignal, closing.signal]);
      let last = await groupUsage(proc.state.pgid);
      let lastAt = performance.now();
      while (true) {
        await sleep(intervalMs, stop);
        if (stop.aborted) return;
        const usage = await groupUsage(proc.state.pgid);
        const now = performance.now();
        const cpuMs = usage.userMs + usage.systemMs - (last.userMs + last.systemMs);
        yield {
          taskId,
          timestamp: Date.now(),
          cpu: { percent: Math.max(0, (cpuMs / (now - lastAt)) * 100), userMs: usage.userMs, systemMs: usage.systemMs },
          memory: { rssBytes: usage.rssBytes },
          measured: ['cpu.percent', 'cpu.userMs', 'cpu.systemMs', 'memory.rssBytes'],
        };
        last = usage;
        lastAt = now;
      }
    },

    taskEvents(signal: AbortSignal): AsyncIterable<TaskEvent> {
      return events.subscribe(AbortSignal.any([signal, closing.signal]));
    },

    signalTask(taskId: string, signal: string): void {
      checkSignal(signal);
      const task = get(taskId);
      if (!task.proc.signal(signal)) throw notRunning(taskId, `send ${signal} to`);
      emit(task.config, `sent ${signal}`, { signal });
    },

    execTask(taskId: string, command: string[], timeoutMs: number, signal?: AbortSignal): Promise<ExecResult> {
      const [file, ...args] = command;
      if (file === undefined || file === '') throw invalid('/command', 'exec needs a command: a non-empty list, program first');
      const { config: cfg, proc } = get(taskId);
      if (!proc.running) throw notRunning(taskId, 'exec in');
      const task = cfg.config as RawExecTaskConfig;
      return execCommand([file, ...args], { cwd: path.resolve(cfg.taskDir, task.cwd ?? '.'), env: cfg.env, timeoutMs, signal });
    },

    /** Leaves tasks running (they must survive a driver restart); only stops watching them. */
    shutdown(): void {
      closing.abort();
      for (const task of tasks.values()) task.proc.close();
    },
  });
}

function fingerprint(): DriverFingerprint {
  // Start times, recovery and stats all come from /proc.
  if (platform() !== 'linux' || !existsSync('/proc/self/stat')) {
    return { health: 'undetected', healthDescription: 'raw_exec needs Linux with /proc mounted', attributes: { 'driver.raw_exec': false } };
  }
  const tools = executorTools();
  if ('missing' in tools) {
    return { health: 'undetected', healthDescription: missingTool(tools.missing), attributes: { 'driver.raw_exec': false } };
  }
  return {
    health: 'healthy',
    healthDescription: 'Healthy',
    attributes: {
      'driver.raw_exec': true,
      'driver.raw_exec.version': version,
      'kernel.name': platform(),
      'kernel.version': release(),
      'cpu.arch': ociArch(arch()),
    },
  };
}

function missingTool(tool: string): string {
  return `raw_exec runs each task under a /bin/sh executor that needs ${tool}, which this host lacks`;
}

function notRunning(taskId: string, action: string): TaskhostError {
  return new TaskNotRunningError(`cannot ${action} task "${taskId}": it has exited`);
}

function invalid(where: string, message: string): InvalidConfigError {
  return new InvalidConfigError(message, { details: { errors: [{ path: where, message }] } });
}

function checkSignal(name: string): void {
  if (signalNumber(name) === undefined) throw invalid('/signal', `unknown signal "${name}": use a name such as SIGTERM, SIGHUP or SIGUSR1`);
}

function invalidAll(issues: SchemaIssue[]): InvalidConfigError {
  return new InvalidConfigError(`raw_exec refuses the task: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, {
    details: { errors: issues },
  });
}

function outsideTaskDir(cwd: string): string {
  return `working directory "${cwd}" is outside the task directory: name one inside it, or set allowCwdOutsideTaskDir in the raw_exec plugin config`;
}

/** Whether `target` is `dir` or below it (both absolute and normalised). */
function isInside(dir: string, target: string): boolean {
  const rel = path.relative(dir, target);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function isDirectory(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** Says which command could not start and why, in terms of the task's config. */
function spawnFailure(command: string, args: string[], env: Record<string, string>, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    const where = command.includes('/') ? 'does not exist' : `was not found in the task's PATH (${env.PATH ?? 'not set'})`;
    return invalid('/config/command', `cannot start task: command "${command}" ${where}`);
  }
  if (code === 'EACCES') return invalid('/config/command', `cannot start task: command "${command}" is not executable (permission denied)`);
  if (code === 'ENAMETOOLONG') return invalid('/config/command', `cannot start task: the command's path is too long for the kernel`);
  if (code === 'E2BIG') {
    // The kernel's limit is on arguments and environment together (and 128 KiB per string):
    // blame the larger of the two.
    const size = (items: string[]) => items.reduce((n, item) => n + item.length, 0);
    const where = size(args) > size(Object.entries(env).flat()) ? '/config/args' : '/env';
    return invalid(
      where,
      'cannot start task: its arguments and environment are too large for the kernel (E2BIG): shorten config.args or env',
    );
  }
  return err instanceof Error ? err : new Error(String(err));
}

function driverState(value: unknown, version: number): DriverState {
  const s = value as Partial<DriverState> | null;
  const positive = (n: unknown) => Number.isInteger(n) && (n as number) > 0;
  const executor = version === 1 || (positive(s?.executorPid) && Number.isInteger(s?.executorStartTime));
  if (
    typeof s !== 'object' ||
    s === null ||
    !positive(s.pid) ||
    !positive(s.pgid) ||
    !Number.isInteger(s.startTime) ||
    typeof s.startedAt !== 'string' ||
    !executor
  ) {
    const fields =
      version === 1 ? '{ pid, pgid, startTime, startedAt }' : '{ pid, pgid, startTime, startedAt, executorPid, executorStartTime }';
    throw invalid('/driverState', `the task handle has no raw_exec driver state of version ${version} (${fields})`);
  }
  const { pid, pgid, startTime, startedAt, executorPid, executorStartTime } = s as Required<DriverState>;
  return version === 1 ? { pid, pgid, startTime, startedAt } : { pid, pgid, startTime, startedAt, executorPid, executorStartTime };
}

function describeExit(result: ExitResult): string {
  if (result.err !== undefined) return `exited: ${result.err}`;
  if (result.signal !== null) return `killed by ${result.signal} (exit code ${result.exitCode})`;
  return `exited with code ${result.exitCode}`;
}

function exitAnnotations(result: ExitResult): Record<string, string> {
  const annotations: Record<string, string> = { exitCode: String(result.exitCode) };
  if (result.signal !== null) annotations.signal = result.signal;
  return annotations;
}
