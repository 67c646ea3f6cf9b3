/**
 * Nomad's Driver service (hashicorp.nomad.plugins.drivers.proto.Driver) over one taskhost
 * driver, through the DriverManager: the manager keeps the live tasks' handles and recovers
 * them when the driver's worker restarts; Nomad keeps its own copy (the TaskHandle, with the
 * taskhost handle as JSON in driver_state) and gives it back to RecoverTask in a fresh plugin
 * process. Each tracked task's output files are copied into Nomad's FIFOs (FifoPump), by helper
 * processes that outlive the plugin's, so a plugin restart does not end the task's logs.
 *
 * Not served: ExecTaskStreaming (Unimplemented: the driver contract has no interactive exec),
 * CreateNetwork/DestroyNetwork (not in our proto; no taskhost driver makes network namespaces).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { DriverManager } from '../../drivers/driver-manager.js';
import type { DriverHealthInfo } from '../../drivers/driver-manager.js';
import { signalNumber, type ExitResult, type TaskConfig, type TaskEvent, type TaskResourceUsage } from '../../shared/driver.js';
import { InvalidConfigError, NotImplementedError, TaskNotFoundError } from '../../shared/errors.js';
import { closingController, pause } from '../../shared/pause.js';
import { FifoPump } from './fifo-pump.js';
import { aborted, serverStream, unary } from './grpc-handlers.js';
import { statusError } from './grpc-error.js';
import { hclSpec } from './hclspec.js';
import { configFromMsgpack } from './msgpack-config.js';
import { nomadProto } from './nomad-protos.js';
import type { NomadService } from './nomad-service.js';
import { hostedService } from './hosted-service.js';
import type { NomadPluginHost } from './nomad-plugin-host.js';
import {
  durationMs,
  nomadHandle,
  taskConfigFromNomad,
  taskhostHandle,
  timestamp,
  type NomadTaskConfig,
  type NomadTaskHandle,
  type ProtoTime,
} from './nomad-task-config.js';

export interface DriverServiceOptions {
  manager: DriverManager;
  /** The taskhost driver served. */
  driver: string;
  logger?: Logger;
  /** How the output copies poll (see FifoPumpOptions). */
  pump?: { pollMs?: number; settleMs?: number };
}

interface Tracked {
  pumps: FifoPump[];
}

type Req<T = Record<string, never>> = T;

/** The longest exec Nomad's "no timeout" gets: a day. */
const execNoLimitMs = 24 * 60 * 60 * 1000;

/** The Driver service over a DriverManager (tests, and the hosted form below). */
export function createDriverService(options: DriverServiceOptions): NomadService {
  const { manager, driver } = options;
  const log = options.logger ?? pino({ level: 'warn' }, pino.destination(2));
  const closing = closingController();
  const tracked = new Map<string, Tracked>();
  const proto = nomadProto() as unknown as {
    hashicorp: { nomad: { plugins: { drivers: { proto: { Driver: grpc.ServiceClientConstructor } } } } };
  };
  const service = proto.hashicorp.nomad.plugins.drivers.proto.Driver.service;

  /** Starts copying the task's output into Nomad's FIFOs, and finishes the copy when it exits. */
  const track = (task: NomadTaskConfig, config: TaskConfig) => {
    if (tracked.has(config.id)) return;
    const pumps = [
      [config.stdoutPath, task.stdout_path],
      [config.stderrPath, task.stderr_path],
    ]
      .filter(([, fifo]) => fifo)
      .map(([file, fifo]) => new FifoPump({ file: file!, fifo: fifo!, ...options.pump }));
    for (const pump of pumps) pump.start();
    tracked.set(config.id, { pumps });
    manager
      .waitTask(config.id, closing.signal)
      .then(() => Promise.all(pumps.map((p) => p.finish())))
      .catch(() => undefined);
  };

  /** Stops copying a destroyed task's output, after a last drain bounded in time. */
  const untrack = async (taskId: string, config: TaskConfig | undefined) => {
    const entry = tracked.get(taskId);
    tracked.delete(taskId);
    if (entry) {
      const grace = AbortSignal.timeout(2 * (options.pump?.settleMs ?? 1_000) + 1_000);
      await Promise.race([Promise.all(entry.pumps.map((p) => p.finish())), aborted(grace)]);
      for (const pump of entry.pumps) pump.kill();
    }
    if (config) {
      const files = [config.stdoutPath, config.stderrPath].flatMap((f) => [f, `${f}.pump`]);
      await Promise.all(files.map((f) => rm(f, { force: true })));
    }
  };

  const requireTask = (taskId: string) => {
    if (!manager.has(taskId))
      throw new TaskNotFoundError(`no task ${taskId} on driver "${driver}": start it, or recover it from its handle`);
  };

  const implementation: grpc.UntypedServiceImplementation = {
    TaskConfigSchema: unary(closing.signal, async () => ({ spec: hclSpec(await manager.taskConfigSchema(driver)) })),

    Capabilities: unary(closing.signal, async () => {
      const caps = await manager.capabilities(driver);
      // taskhost tasks run in the host's network or in one their driver makes ("none"); never in a
      // namespace Nomad made for the group.
      const modes = new Set(['HOST', ...caps.networkModes.map((m) => m.toUpperCase())]);
      return {
        capabilities: {
          send_signals: caps.sendSignals,
          exec: caps.exec,
          fs_isolation: caps.fsIsolation.toUpperCase(),
          network_isolation_modes: [...modes],
          must_create_network: false,
          mount_configs: caps.mounts ? 'ANY_MOUNTS' : 'NO_MOUNTS',
          remote_tasks: false,
          disable_log_collection: false,
        },
      };
    }),

    Fingerprint: serverStream(closing.signal, async (_req: Req, write, signal) => {
      await manager.waitForFirstFingerprint();
      const mine = manager.health().find((h) => h.name === driver);
      if (mine) write(fingerprintMessage(mine));
      const onHealth = (info: DriverHealthInfo) => info.name === driver && write(fingerprintMessage(info));
      manager.on('health', onHealth);
      try {
        await aborted(signal);
      } finally {
        manager.off('health', onHealth);
      }
    }),

    StartTask: unary(
      closing.signal,
      async (req: Req<{ task: NomadTaskConfig | null }>, signal) => {
        const task = req.task;
        if (!task)
          throw new InvalidConfigError('StartTask needs a task', { details: { errors: [{ path: '/task', message: 'must be set' }] } });
        const [schema, capabilities] = await Promise.all([manager.taskConfigSchema(driver), manager.capabilities(driver)]);
        const config = configFromMsgpack(task.msgpack_driver_config, schema, `task config for driver "${driver}"`) as Record<
          string,
          unknown
        >;
        const cfg = taskConfigFromNomad(task, { driver, config, capabilities });
        await mkdir(path.dirname(cfg.stdoutPath), { recursive: true, mode: 0o750 });
        await Promise.all([writeFile(cfg.stdoutPath, '', { flag: 'a' }), writeFile(cfg.stderrPath, '', { flag: 'a' })]);
        const handle = await manager.startTask(cfg, signal);
        track(task, cfg);
        log.info({ driver, taskId: cfg.id }, 'task started');
        return { result: 'SUCCESS', driver_error_msg: '', handle: nomadHandle(task, handle) };
      },
      { recoverable: true },
    ),

    RecoverTask: unary(closing.signal, async (req: Req<{ task_id: string; handle: NomadTaskHandle | null }>, signal) => {
      const handle = taskhostHandle(req.handle);
      if (handle.config.driver !== driver) {
        throw new InvalidConfigError(`the handle of task ${handle.config.id} is from driver "${handle.config.driver}", not "${driver}"`, {
          details: { errors: [{ path: '/handle/driver_state', message: `driver must be "${driver}"` }] },
        });
      }
      if (!manager.has(handle.config.id)) await manager.recoverTask(handle, signal);
      track(req.handle!.config!, handle.config);
      return {};
    }),

    WaitTask: unary(closing.signal, async (req: Req<{ task_id: string }>, signal) => {
      requireTask(req.task_id);
      const result = await manager.waitTask(req.task_id, signal);
      return { result: exitMessage(result), err: result.err ?? '' };
    }),

    StopTask: unary(closing.signal, async (req: Req<{ task_id: string; timeout: ProtoTime | null; signal: string }>) => {
      requireTask(req.task_id);
      const handle = manager.tasks().find((h) => h.config.id === req.task_id)!;
      // Nomad sends no signal when the job sets none; its own drivers then send SIGINT.
      await manager.stopTask(req.task_id, durationMs(req.timeout, handle.config.killTimeoutMs), req.signal || 'SIGINT');
      return {};
    }),

    DestroyTask: unary(closing.signal, async (req: Req<{ task_id: string; force: boolean }>) => {
      const config = manager.tasks().find((h) => h.config.id === req.task_id)?.config;
      requireTask(req.task_id);
      await manager.destroyTask(req.task_id, req.force);
      await untrack(req.task_id, config);
      return {};
    }),

    InspectTask: unary(closing.signal, async (req: Req<{ task_id: string }>) => {
      requireTask(req.task_id);
      const status = await manager.inspectTask(req.task_id);
      return {
        task: {
          id: status.id,
          name: status.name,
          state: status.state.toUpperCase(),
          started_at: timestamp(Date.parse(status.startedAt)),
          completed_at: status.completedAt ? timestamp(Date.parse(status.completedAt)) : null,
          result: status.exitResult ? exitMessage(status.exitResult) : null,
        },
        driver: { attributes: status.driverAttributes },
      };
    }),

    TaskStats: serverStream(closing.signal, async (req: Req<{ task_id: string; collection_interval: ProtoTime | null }>, write, signal) => {
      requireTask(req.task_id);
      const intervalMs = Math.max(10, durationMs(req.collection_interval, 1_000));
      let previous: TaskResourceUsage | undefined;
      for await (const usage of manager.driver(driver).taskStats(req.task_id, intervalMs, signal)) {
        write({ stats: statsMessage(usage, previous) });
        previous = usage;
      }
    }),

    TaskEvents: serverStream(closing.signal, async (_req: Req, write, signal) => {
      const onEvent = (from: string, event: TaskEvent) => from === driver && write(eventMessage(event));
      manager.on('taskEvent', onEvent);
      try {
        await aborted(signal);
      } finally {
        manager.off('taskEvent', onEvent);
      }
    }),

    SignalTask: unary(closing.signal, async (req: Req<{ task_id: string; signal: string }>) => {
      requireTask(req.task_id);
      if (!(await manager.capabilities(driver)).sendSignals) throw new NotImplementedError(`driver "${driver}" cannot signal tasks`);
      await manager.signalTask(req.task_id, req.signal);
      return {};
    }),

    ExecTask: unary(closing.signal, async (req: Req<{ task_id: string; command: string[]; timeout: ProtoTime | null }>) => {
      requireTask(req.task_id);
      if (!(await manager.capabilities(driver)).exec) throw new NotImplementedError(`driver "${driver}" cannot exec in tasks`);
      const timeoutMs = durationMs(req.timeout, 0) || execNoLimitMs;
      const result = await manager.driver(driver).execTask(req.task_id, req.command, timeoutMs);
      return { stdout: Buffer.from(result.stdout), stderr: Buffer.from(result.stderr), result: exitMessage(result.exitResult) };
    }),

    ExecTaskStreaming: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
      call.emit(
        'error',
        statusError(
          grpc.status.UNIMPLEMENTED,
          `exec streaming is not supported by taskhost's Nomad bridge: use ExecTask (driver "${driver}")`,
        ),
      );
    },
  };

  return {
    service,
    implementation,
    async close() {
      closing.abort();
      const entries = [...tracked.values()];
      tracked.clear();
      for (const pump of entries.flatMap((e) => e.pumps)) pump.close();
      // Let ended streams flush before the server goes.
      await pause(0, new AbortController().signal);
    },
  };
}

/** The Driver service of the driver a `taskhost nomad serve` process hosts (nomad-serve.ts loads it). */
export function driverService(host: NomadPluginHost, logger: Logger): NomadService {
  const service = (nomadProto() as unknown as DriverProto).hashicorp.nomad.plugins.drivers.proto.Driver.service;
  return hostedService(host, service, async (loader) => {
    const manager = new DriverManager({ loader, logger });
    await manager.start();
    const served = createDriverService({ manager, driver: host.name, logger });
    return { served, close: async () => (await served.close(), await manager.close()) };
  });
}

type DriverProto = { hashicorp: { nomad: { plugins: { drivers: { proto: { Driver: grpc.ServiceClientConstructor } } } } } };

function attributeMessage(value: string | number | boolean): Record<string, unknown> {
  if (typeof value === 'boolean') return { bool_val: value };
  if (typeof value === 'string') return { string_val: value };
  return Number.isSafeInteger(value) ? { int_val: String(value) } : { float_val: value };
}

function fingerprintMessage(info: DriverHealthInfo) {
  return {
    attributes: Object.fromEntries(Object.entries(info.attributes).map(([k, v]) => [k, attributeMessage(v)])),
    health: info.health.toUpperCase(),
    health_description: info.healthDescription,
  };
}

function exitMessage(result: ExitResult) {
  return {
    exit_code: result.exitCode,
    signal: result.signal ? (signalNumber(result.signal) ?? 0) : 0,
    oom_killed: result.oomKilled,
  };
}

function eventMessage(event: TaskEvent) {
  return {
    task_id: event.taskId,
    alloc_id: event.allocId,
    task_name: event.taskName,
    timestamp: timestamp(Date.parse(event.timestamp) || Date.now()),
    message: event.message,
    annotations: event.annotations ?? {},
  };
}

/**
 * Nomad's TaskStats. Its user_mode and system_mode are percentages over the interval, so they
 * come from two samples' cumulative milliseconds (from the second sample on). Always with a
 * timestamp: Nomad drops a message without one.
 */
function statsMessage(usage: TaskResourceUsage, previous: TaskResourceUsage | undefined) {
  const measured = new Set(usage.measured);
  const at = Number.isFinite(usage.timestamp) && usage.timestamp > 0 ? usage.timestamp : Date.now();
  const cpuFields: string[] = [];
  const cpu: Record<string, unknown> = { percent: usage.cpu.percent, measured_fields: cpuFields };
  if (measured.has('cpu.percent')) cpuFields.push('PERCENT');
  const elapsed = previous ? at - previous.timestamp : 0;
  for (const [key, field, proto] of [
    ['userMs', 'USER_MODE', 'user_mode'],
    ['systemMs', 'SYSTEM_MODE', 'system_mode'],
  ] as const) {
    const now = usage.cpu[key];
    const before = previous?.cpu[key];
    if (elapsed > 0 && now !== undefined && before !== undefined && measured.has(`cpu.${key}`)) {
      cpu[proto] = (Math.max(0, now - before) / elapsed) * 100;
      cpuFields.push(field);
    }
  }
  const memoryFields: string[] = [];
  const memory: Record<string, unknown> = { rss: String(Math.round(usage.memory.rssBytes)), measured_fields: memoryFields };
  if (measured.has('memory.rssBytes')) memoryFields.push('RSS');
  if (usage.memory.usageBytes !== undefined) {
    memory.usage = String(Math.round(usage.memory.usageBytes));
    if (measured.has('memory.usageBytes')) memoryFields.push('USAGE');
  }
  return { id: usage.taskId, timestamp: timestamp(at), agg_resource_usage: { cpu, memory }, resource_usage_by_pid: {} };
}
