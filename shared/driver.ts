/**
 * The driver contract (design.md section 4, after Nomad's driver plugin). A driver starts,
 * watches, stops and recovers tasks. Every method may be sync or async. The host always passes
 * every declared argument (undefined for an optional one it has no value for), then an
 * AbortSignal: so `stopTask(id, timeoutMs, killSignal, signal)` gets the signal fourth, never
 * in place of `killSignal`. Each method's arity is in method-args.ts.
 */
import { constants } from 'node:os';
import { Type, type Static } from '@sinclair/typebox';
import { Duration } from './duration.js';
import type { BasePlugin } from './plugin.js';
import { StringEnum, type JsonSchema } from './schema.js';

type Awaitable<T> = T | Promise<T>;

export type DriverHealth = 'undetected' | 'unhealthy' | 'healthy';

/** One fingerprint: `undetected` (its dependency is absent), `unhealthy` (present, not working), `healthy`. */
export interface DriverFingerprint {
  health: DriverHealth;
  healthDescription: string;
  attributes: Record<string, string | number | boolean>;
}

export const DriverFingerprintSchema = Type.Object({
  health: StringEnum(['undetected', 'unhealthy', 'healthy']),
  healthDescription: Type.String(),
  attributes: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()])),
});

export interface DriverCapabilities {
  /** signalTask works. */
  sendSignals: boolean;
  /** execTask works. */
  exec: boolean;
  /** How the task sees the file system: the host's (`none`) or its own (`image`, `chroot`). */
  fsIsolation: 'none' | 'chroot' | 'image';
  /** Network modes the driver accepts in a task's config. */
  networkModes: ('none' | 'host')[];
  /** Host paths can be mounted into the task. */
  mounts: boolean;
}

export const DriverCapabilitiesSchema = Type.Object({
  sendSignals: Type.Boolean(),
  exec: Type.Boolean(),
  fsIsolation: StringEnum(['none', 'chroot', 'image']),
  networkModes: Type.Array(StringEnum(['none', 'host'])),
  mounts: Type.Boolean(),
});

/** A device reserved for the task, ready for the driver to apply. */
export interface TaskDevice {
  hostPath: string;
  taskPath: string;
  /** Subset of "rwm". */
  permissions: string;
}

export interface TaskMount {
  hostPath: string;
  taskPath: string;
  readOnly: boolean;
}

/** What a driver's startTask receives: the task, resolved and validated by the host. */
export interface TaskConfig {
  /** Unique per start: `<allocId>/<name>/<8 hex>`. */
  id: string;
  name: string;
  allocId: string;
  jobName: string;
  groupName: string;
  driver: string;
  /** The task's driver config, validated against taskConfigSchema() and interpolated. */
  config: Record<string, unknown>;
  /** The full environment from shared/env (device env included). */
  env: Record<string, string>;
  /** The part of `env` that came from device reservations. */
  deviceEnv: Record<string, string>;
  resources: { cpuShares?: number; memoryMB?: number };
  devices: TaskDevice[];
  mounts: TaskMount[];
  user?: string;
  /** Graceful stop time before a forced kill. */
  killTimeoutMs: number;
  /** Signal that asks the task to stop (driver default when absent). */
  killSignal?: string;
  /** Host paths of the task's directories. */
  allocDir: string;
  taskDir: string;
  secretsDir: string;
  /** Files the task's stdout and stderr go to. */
  stdoutPath: string;
  stderrPath: string;
}

export type TaskState = 'unknown' | 'running' | 'exited';

/** Returned by startTask and persisted by the host; `driverState` must be enough to re-attach. */
export interface TaskHandle {
  /** The driver's version of the `driverState` layout. */
  version: number;
  config: TaskConfig;
  state: TaskState;
  driverState: unknown;
}

/**
 * How a task ended. A task killed by a signal has `signal` set to its name and, as shells and
 * Docker report it, `exitCode` 128 + the signal's number (137 for SIGKILL).
 */
export interface ExitResult {
  exitCode: number;
  /** Name of the signal that ended the task ("SIGKILL"), or null. */
  signal: string | null;
  oomKilled: boolean;
  /** Set when the driver could not tell how the task ended. */
  err?: string;
}

export interface TaskStatus {
  id: string;
  name: string;
  state: TaskState;
  startedAt: string;
  completedAt?: string;
  exitResult?: ExitResult;
  driverAttributes: Record<string, string>;
}

export interface TaskEvent {
  taskId: string;
  taskName: string;
  allocId: string;
  /** ISO time. */
  timestamp: string;
  message: string;
  annotations?: Record<string, string>;
}

export interface TaskResourceUsage {
  taskId: string;
  /** Unix time in ms. */
  timestamp: number;
  cpu: { percent: number; userMs?: number; systemMs?: number };
  memory: { rssBytes: number; usageBytes?: number };
  /** Which of the optional fields were measured. */
  measured: string[];
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitResult: ExitResult;
}

/**
 * A driver plugin. Every method gets the call's AbortSignal after its declared arguments (see
 * methodArity in method-args.ts); a method may leave the signal, or any trailing argument, out.
 */
export interface DriverPlugin<C = unknown> extends BasePlugin<C> {
  /** JSON Schema for a task's `config` on this driver. */
  taskConfigSchema(signal: AbortSignal): Awaitable<JsonSchema>;
  capabilities(signal: AbortSignal): Awaitable<DriverCapabilities>;
  /** The driver's health: the first item at once, then on every change (or periodically). */
  fingerprint(signal: AbortSignal): AsyncIterable<DriverFingerprint>;
  startTask(config: TaskConfig, signal: AbortSignal): Awaitable<{ handle: TaskHandle }>;
  /** Resolves once the task has exited; may be called many times, also after exit. */
  waitTask(taskId: string, signal: AbortSignal): Awaitable<ExitResult>;
  /**
   * Sends `killSignal` (or the driver's default when it is undefined), waits up to `timeoutMs`,
   * then kills. Keeps the task's state.
   */
  stopTask(taskId: string, timeoutMs: number, killSignal: string | undefined, signal: AbortSignal): Awaitable<void>;
  /** Forgets the task and frees its resources; refuses a running task unless `force`. */
  destroyTask(taskId: string, force: boolean, signal: AbortSignal): Awaitable<void>;
  inspectTask(taskId: string, signal: AbortSignal): Awaitable<TaskStatus>;
  /** Re-attaches to a task after a host or plugin restart; a no-op for a task it already has. */
  recoverTask(handle: TaskHandle, signal: AbortSignal): Awaitable<void>;
  /** Resource usage every `intervalMs` until the task exits or the signal aborts. */
  taskStats(taskId: string, intervalMs: number, signal: AbortSignal): AsyncIterable<TaskResourceUsage>;
  /** Informational events for all the driver's tasks. */
  taskEvents(signal: AbortSignal): AsyncIterable<TaskEvent>;
  /** Optional (capabilities().sendSignals): sends the POSIX signal `signalName` ("SIGHUP") to the task. */
  signalTask?(taskId: string, signalName: string, signal: AbortSignal): Awaitable<void>;
  /** Optional (capabilities().exec): runs `command` in the task's context, for at most `timeoutMs`. */
  execTask?(taskId: string, command: string[], timeoutMs: number, signal: AbortSignal): Awaitable<ExecResult>;
  /**
   * Optional: checks a prepared TaskConfig against the driver's policy (what its plugin config
   * allows) without starting anything or touching the disk; throws InvalidConfigError naming
   * each path at fault (`/config/privileged`, `/user`). The host calls it before it makes a
   * task's directories, and `taskhost validate --task` calls it; startTask still checks again.
   */
  validateTask?(config: TaskConfig, signal: AbortSignal): Awaitable<void>;
}

/**
 * Gives a driver its type and checks it whole at compile time: every required method, with
 * arguments and returns the contract allows (`startTask` must return `{ handle: TaskHandle }`).
 * Returns the driver as it is, so its own method signatures stay callable in tests.
 */
export function defineDriver<P extends DriverPlugin>(plugin: P): P {
  return plugin;
}

/** The ExitResult of a task killed by `signal` (e.g. "SIGTERM"): exit code 128 + its number. */
export function signalExit(signal: string, oomKilled = false): ExitResult {
  const number = constants.signals[signal as keyof typeof constants.signals];
  return { exitCode: number === undefined ? 128 : 128 + number, signal, oomKilled };
}

/** The number of a signal name, or undefined for a name this OS does not know. */
export function signalNumber(signal: string): number | undefined {
  return constants.signals[signal as keyof typeof constants.signals];
}

/** Methods every driver must implement (the driver manager refuses a driver missing one). */
export const driverMethods: readonly string[] = [
  'taskConfigSchema',
  'capabilities',
  'fingerprint',
  'startTask',
  'waitTask',
  'stopTask',
  'destroyTask',
  'inspectTask',
  'recoverTask',
  'taskStats',
  'taskEvents',
];

/** Task ids: `<allocId>/<name>/<8 hex>`; drivers may rely on it containing no whitespace. */
export const taskIdPattern = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+\/[0-9a-f]{8}$/;

/**
 * Names of tasks, jobs, groups, drivers and allocations: they become directory and file names
 * (`<dataDir>/allocs/<allocId>/<name>/`, `<name>.stdout`), container names and env values, so a
 * letter or digit first (never `.` or `..`), then letters, digits, `_`, `.` and `-`.
 */
export const namePattern = '^[A-Za-z0-9][A-Za-z0-9_.-]*$';
/** The longest name: well inside a file name's 255 bytes, with room for the suffixes added to it. */
export const maxNameLength = 128;

/** A schema for one of those names. */
export const Name = (options: { description?: string } = {}) =>
  Type.String({
    minLength: 1,
    maxLength: maxNameLength,
    pattern: namePattern,
    errorMessage: {
      pattern: 'must start with a letter or digit and hold only letters, digits, "_", "." and "-"',
      maxLength: `must be at most ${maxNameLength} characters`,
    },
    ...options,
  });

/** The most a task may ask for: beyond these no Linux cgroup or Docker Engine accepts the value. */
export const resourceLimits = Object.freeze({
  /** Linux's cpu.shares maximum. */
  maxCpuShares: 262_144,
  /** 16 TiB. */
  maxMemoryMB: 16 * 1024 * 1024,
  /** Devices of one request. */
  maxDeviceCount: 1024,
});

/** The task spec file (contract, design.md section 6). */
export const TaskSpec = Type.Object(
  {
    name: Name(),
    driver: Name({ description: 'a driver plugin by name' }),
    config: Type.Record(Type.String(), Type.Unknown(), { default: {} }),
    env: Type.Optional(Type.Record(Type.String(), Type.String())),
    resources: Type.Optional(
      Type.Object(
        {
          cpuShares: Type.Optional(Type.Integer({ minimum: 1, maximum: resourceLimits.maxCpuShares })),
          memoryMB: Type.Optional(Type.Integer({ minimum: 4, maximum: resourceLimits.maxMemoryMB })),
        },
        { additionalProperties: false },
      ),
    ),
    devices: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 3 * maxNameLength }),
            count: Type.Integer({ minimum: 1, maximum: resourceLimits.maxDeviceCount, default: 1 }),
          },
          { additionalProperties: false },
        ),
        { maxItems: 64 },
      ),
    ),
    killTimeout: Duration({ default: '5s' }),
    killSignal: Type.Optional(Type.String({ pattern: '^SIG[A-Z0-9]+$' })),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    job: Type.Optional(Name()),
    group: Type.Optional(Name()),
    // The agent's record keeps these (design.md section 10); drivers never see them.
    labels: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Type.String(), {
        description: "labels of the agent's task record (key + value at most 4096 bytes); not passed to the driver",
      }),
    ),
  },
  { additionalProperties: false },
);
export type TaskSpec = Static<typeof TaskSpec>;
