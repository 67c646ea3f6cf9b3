/**
 * The one table of error codes. Errors cross the worker boundary as plain data
 * (`ErrorData`) and become these classes again on the other side, so callers
 * branch on `err.code` or `instanceof`, never on message text.
 */

const brand = Symbol.for('taskhost.error');

/** What an error looks like on the wire between host and plugin. */
export interface ErrorData {
  code: string;
  message: string;
  recoverable: boolean;
  retryAfterMs?: number;
  details?: Record<string, unknown>;
  stack?: string;
}

export interface TaskhostErrorOptions {
  recoverable?: boolean;
  retryAfterMs?: number;
  details?: Record<string, unknown>;
  cause?: unknown;
}

/** Root of every taskhost error. `instanceof` works across realms through a brand. */
export class TaskhostError extends Error {
  static readonly code: string = 'TASKHOST_ERROR';
  static readonly recoverable: boolean = false;
  readonly code: string;
  readonly recoverable: boolean;
  readonly retryAfterMs?: number;
  readonly details?: Record<string, unknown>;

  constructor(message: string, options: TaskhostErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const ctor = new.target as typeof TaskhostError;
    this.name = ctor.name;
    this.code = ctor.code;
    this.recoverable = options.recoverable ?? ctor.recoverable;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options.details !== undefined) this.details = options.details;
  }

  get [brand](): true {
    return true;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    if (!(brand in value)) return false;
    if (this === TaskhostError) return true;
    return (value as TaskhostError).code === this.code;
  }

  toJSON(): ErrorData {
    return toErrorData(this);
  }
}

/** A plugin threw or rejected with an error that is not a taskhost error. */
export class PluginError extends TaskhostError {
  static override readonly code = 'PLUGIN_ERROR';
}
/** The plugin's worker died (threw outside a call, exited, ran out of heap, stopped answering). */
export class PluginCrashedError extends TaskhostError {
  static override readonly code = 'PLUGIN_CRASHED';
  static override readonly recoverable = true;
}
/** The plugin crashed too often and its breaker is open, or it cannot be loaded at all. */
export class PluginFailedError extends TaskhostError {
  static override readonly code = 'PLUGIN_FAILED';
}
/** The plugin module could not be imported or does not export a plugin. */
export class PluginLoadError extends TaskhostError {
  static override readonly code = 'PLUGIN_LOAD_FAILED';
}
/** The host is shutting the plugin down, or it is not running. */
export class PluginShutdownError extends TaskhostError {
  static override readonly code = 'PLUGIN_SHUTDOWN';
}
/** No plugin with that name is loaded. */
export class PluginNotFoundError extends TaskhostError {
  static override readonly code = 'PLUGIN_NOT_FOUND';
}
/** A plugin's package.json `taskhost` manifest is missing fields or malformed. */
export class InvalidManifestError extends TaskhostError {
  static override readonly code = 'INVALID_MANIFEST';
}
/** Host and plugin share no API version. */
export class ApiVersionMismatchError extends TaskhostError {
  static override readonly code = 'API_VERSION_MISMATCH';
}
/** A config, task spec or plugin result failed its schema; `details.errors` lists each path. */
export class InvalidConfigError extends TaskhostError {
  static override readonly code = 'INVALID_CONFIG';

  /** Each error with the JSON path (a JSON Pointer, `""` for the root) it is about. */
  get errors(): SchemaIssue[] {
    return (this.details?.errors as SchemaIssue[] | undefined) ?? [];
  }
}
/**
 * A plugin broke its side of the contract in what it returned: a reply that cannot cross the
 * thread boundary (a function, a ChildProcess, a BigInt, a cycle, a class instance), or a task
 * handle whose `driverState` does not survive JSON. The message names the JSON path of the
 * offending value and what to send instead; `details.method` and `details.path` say the same
 * as data. Only that call fails: the plugin keeps running.
 */
export class PluginContractError extends TaskhostError {
  static override readonly code = 'PLUGIN_CONTRACT';
}
/**
 * A JSON Schema that cannot be compiled (an unknown keyword, a keyword with the wrong kind of
 * value). `details.errors` lists each problem with its JSON path inside the schema.
 */
export class InvalidSchemaError extends TaskhostError {
  static override readonly code = 'INVALID_SCHEMA';

  /** Each problem with the JSON path (a JSON Pointer into the schema) it is about. */
  get errors(): SchemaIssue[] {
    return (this.details?.errors as SchemaIssue[] | undefined) ?? [];
  }
}
/** The plugin does not implement the method it was asked for. */
export class NotImplementedError extends TaskhostError {
  static override readonly code = 'NOT_IMPLEMENTED';
}
/** The caller aborted the call. */
export class CancelledError extends TaskhostError {
  static override readonly code = 'CANCELLED';
}
/** A call did not finish within its deadline. */
export class TimeoutError extends TaskhostError {
  static override readonly code = 'TIMEOUT';
  static override readonly recoverable = true;
}
/** The driver has no task with that id. */
export class TaskNotFoundError extends TaskhostError {
  static override readonly code = 'TASK_NOT_FOUND';
}
/** A task with that id already exists. */
export class TaskExistsError extends TaskhostError {
  static override readonly code = 'TASK_EXISTS';
}
/** The task is still running and the operation needs it stopped (destroy without force). */
export class TaskRunningError extends TaskhostError {
  static override readonly code = 'TASK_RUNNING';
}
/** The task has exited and the operation needs it running (signal, exec). */
export class TaskNotRunningError extends TaskhostError {
  static override readonly code = 'TASK_NOT_RUNNING';
}
/** The task holds its update lock (its `TASKHOST_LOCK_FILE` exists): stop, restart and destroy wait for `force`. */
export class TaskLockedError extends TaskhostError {
  static override readonly code = 'TASK_LOCKED';
}
/** The agent's API has no route for that method and path. */
export class RouteNotFoundError extends TaskhostError {
  static override readonly code = 'ROUTE_NOT_FOUND';
}
/** A request to the agent's TCP listener without the right `Authorization: Bearer <token>`. */
export class UnauthorizedError extends TaskhostError {
  static override readonly code = 'UNAUTHORIZED';
}
/** Another agent already answers on the socket (or holds the data directory) this one was told to use. */
export class AgentRunningError extends TaskhostError {
  static override readonly code = 'AGENT_RUNNING';
}
/**
 * No agent answers on the socket a client was given (`AgentClient`, `taskhost tasks`): no file
 * there, a socket no process listens on, or one this user may not open; or the agent went away
 * mid-answer. `details.socket` names the socket, `details.cause` the system's code (`ENOENT`),
 * `details.reason` (only when nothing answered at all) says it in words.
 */
export class AgentUnreachableError extends TaskhostError {
  static override readonly code = 'AGENT_UNREACHABLE';
  static override readonly recoverable = true;
}
/** A device id is not known to any plugin. */
export class UnknownDeviceError extends TaskhostError {
  static override readonly code = 'UNKNOWN_DEVICE';
}
/** A device exists but is not healthy. */
export class DeviceUnhealthyError extends TaskhostError {
  static override readonly code = 'DEVICE_UNHEALTHY';
  static override readonly recoverable = true;
}
/**
 * Enough healthy devices match a request, but other tasks hold them: no free device (Nomad would
 * not place the task). `details.name` and `details.count` say what was asked.
 */
export class NoFreeDeviceError extends TaskhostError {
  static override readonly code = 'NO_FREE_DEVICE';
  static override readonly recoverable = true;
}
/**
 * The agent's store cannot be used: not an LMDB file, an LMDB file taskhost did not write, or one
 * from a newer taskhost. `details.path` names it, `details.reason` says which
 * (`corrupt`, `foreign`, `newer`). The store is never reset to make it fit.
 */
export class InvalidStoreError extends TaskhostError {
  static override readonly code = 'STORE_INVALID';
}
/** Another agent holds the data dir; `details.pid` is its process id. */
export class DataDirLockedError extends TaskhostError {
  static override readonly code = 'DATA_DIR_LOCKED';
}
/**
 * Events from that index are not in the store's history: older than the oldest kept
 * (`details.reason` `expired`: list the records again) or newer than the last one (`ahead`).
 */
export class EventIndexError extends TaskhostError {
  static override readonly code = 'EVENT_INDEX_UNAVAILABLE';
}

/** One schema violation: where it is (JSON Pointer) and what is wrong. */
export interface SchemaIssue {
  path: string;
  message: string;
}

const classes: (typeof TaskhostError)[] = [
  PluginError,
  PluginCrashedError,
  PluginFailedError,
  PluginLoadError,
  PluginShutdownError,
  PluginNotFoundError,
  InvalidManifestError,
  ApiVersionMismatchError,
  InvalidConfigError,
  PluginContractError,
  InvalidSchemaError,
  NotImplementedError,
  CancelledError,
  TimeoutError,
  TaskNotFoundError,
  TaskExistsError,
  TaskRunningError,
  TaskNotRunningError,
  TaskLockedError,
  RouteNotFoundError,
  UnauthorizedError,
  AgentRunningError,
  AgentUnreachableError,
  UnknownDeviceError,
  DeviceUnhealthyError,
  NoFreeDeviceError,
  InvalidStoreError,
  DataDirLockedError,
  EventIndexError,
];

/** Every stable error code, for documentation and exhaustive checks. */
export const errorCodes: ReadonlyMap<string, typeof TaskhostError> = new Map(classes.map((c) => [c.code, c]));

/** Turns anything thrown into wire data. Non-taskhost errors become PLUGIN_ERROR. */
export function toErrorData(err: unknown): ErrorData {
  if (err instanceof TaskhostError) {
    const data: ErrorData = { code: err.code, message: err.message, recoverable: err.recoverable };
    if (err.retryAfterMs !== undefined) data.retryAfterMs = err.retryAfterMs;
    if (err.details !== undefined) data.details = err.details;
    if (err.stack !== undefined) data.stack = err.stack;
    return data;
  }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    // A plugin without the SDK may throw a plain Error carrying one of our codes.
    const known = typeof code === 'string' ? errorCodes.get(code) : undefined;
    if (known) return toErrorData(new known(err.message, { cause: err }));
    const data: ErrorData = { code: PluginError.code, message: err.message, recoverable: false };
    if (typeof code === 'string') data.details = { cause: code };
    if (err.stack !== undefined) data.stack = err.stack;
    return data;
  }
  return { code: PluginError.code, message: `non-error thrown: ${String(err)}`, recoverable: false };
}

/** Turns wire data back into the error class for its code (TaskhostError for codes we do not know). */
export function fromErrorData(data: ErrorData): TaskhostError {
  const Ctor = errorCodes.get(data.code) ?? TaskhostError;
  const options: TaskhostErrorOptions = { recoverable: data.recoverable };
  if (data.retryAfterMs !== undefined) options.retryAfterMs = data.retryAfterMs;
  if (data.details !== undefined) options.details = data.details;
  const err = new Ctor(data.message, options);
  if (Ctor === TaskhostError) (err as { code: string }).code = data.code;
  if (data.stack !== undefined) err.stack = data.stack;
  return err;
}
