/**
 * The driver manager: every driver plugin the loader hosts, its health (from its fingerprint
 * stream, re-opened whenever it ends or the plugin restarts), the handles of the live tasks, and
 * recovery: after a driver restarts, `recoverTask` is called for every one of its tasks, and a
 * `waitTask` that was in flight when the driver crashed simply waits again. No task is lost.
 */
import { EventEmitter } from 'eventemitter3';
import { pino, type Logger } from 'pino';
import {
  DriverFingerprintSchema,
  driverMethods,
  type DriverCapabilities,
  type DriverFingerprint,
  type DriverHealth,
  type ExitResult,
  type TaskConfig,
  type TaskEvent,
  type TaskHandle,
  type TaskSpec,
  type TaskStatus,
} from '../shared/driver.js';
import {
  InvalidConfigError,
  PluginCrashedError,
  PluginFailedError,
  PluginLoadError,
  PluginNotFoundError,
  TaskExistsError,
  TaskNotFoundError,
  TaskhostError,
  toErrorData,
} from '../shared/errors.js';
import { crashPoint } from '../shared/crash-points.js';
import { compileSchema, formatIssues, type JsonSchema } from '../shared/schema.js';
import type { PluginLoader } from '../plugin-loader/loader.js';
import { followStream } from '../plugin-loader/follow-stream.js';
import { guardedEmit } from '../plugin-loader/guarded-emit.js';
import { closingController } from '../shared/pause.js';
import { DriverClient } from './driver-client.js';
import { intentHandle, MemoryHandleStore, type HandleStore } from './handle-store.js';
import { hostAttributes } from './host-attributes.js';
import { buildTaskConfig, createTaskDirs, hostAllocDir, parseTaskSpec, type PrepareOptions } from './prepare-task.js';
import { unknownDriverIssue } from './unknown-driver-issue.js';

/** What the manager knows of a driver's health. */
export interface DriverHealthInfo {
  name: string;
  health: DriverHealth;
  healthDescription: string;
  attributes: Record<string, string | number | boolean>;
  /** Whether a fingerprint has arrived since the manager started. */
  fingerprinted: boolean;
  updatedAt: string;
}

export interface DriverManagerEvents {
  /** A driver's health, description or attributes changed. */
  health: [info: DriverHealthInfo];
  /** An event from a driver about one of its tasks. */
  taskEvent: [driver: string, event: TaskEvent];
  /** A task was re-attached after its driver (or the host) restarted. */
  recovered: [driver: string, taskId: string];
  /** A task could not be re-attached; its handle is dropped. */
  lost: [driver: string, taskId: string, error: TaskhostError];
}

export interface DriverManagerOptions {
  loader: PluginLoader;
  /** Where live task handles are kept (default: memory). Use FileHandleStore to survive a host restart. */
  store?: HandleStore;
  logger?: Logger;
  /** First and maximum delay before a fingerprint or event stream is re-opened. */
  streamBackoffMs?: [number, number];
}

/** What a caller may add when it has the manager build a task. */
export type TaskOptions = Omit<PrepareOptions, 'spec' | 'schema' | 'capabilities' | 'dataDir'>;

interface Driver {
  client: DriverClient;
  health: DriverHealthInfo;
  schema?: Promise<JsonSchema>;
  capabilities?: Promise<DriverCapabilities>;
  /** Settles when the driver's tasks have been recovered after its latest crash. */
  recovery?: Promise<void>;
  firstFingerprint: Promise<void>;
  markFingerprinted: () => void;
}

const validateFingerprint = compileSchema<DriverFingerprint>(DriverFingerprintSchema);

export class DriverManager extends EventEmitter<DriverManagerEvents> {
  readonly #loader: PluginLoader;
  readonly #store: HandleStore;
  readonly #log: Logger;
  readonly #backoff: [number, number];
  readonly #drivers = new Map<string, Driver>();
  readonly #handles = new Map<string, TaskHandle>();
  readonly #closing = closingController();
  #loops: Promise<void>[] = [];
  #started: Promise<void> | undefined;

  constructor(options: DriverManagerOptions) {
    super();
    this.#loader = options.loader;
    this.#store = options.store ?? new MemoryHandleStore();
    this.#log = options.logger ?? pino({ level: 'warn' }, pino.destination(2));
    this.#backoff = options.streamBackoffMs ?? [1_000, 60_000];
  }

  /** Starts watching every driver the loader hosts, and recovers the tasks in the store. */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    await this.#loader.start();
    for (const instance of this.#loader.instances('driver')) {
      let markFingerprinted!: () => void;
      const firstFingerprint = new Promise<void>((resolve) => (markFingerprinted = resolve));
      const driver: Driver = {
        client: new DriverClient(instance),
        health: {
          name: instance.name,
          health: 'undetected',
          healthDescription: 'no fingerprint yet',
          attributes: {},
          fingerprinted: false,
          updatedAt: new Date().toISOString(),
        },
        firstFingerprint,
        markFingerprinted,
      };
      this.#drivers.set(instance.name, driver);
      this.#loops.push(this.#fingerprintLoop(driver), this.#eventLoop(driver));
    }
    this.#loader.on('crashed', this.#onCrashed);
    this.#loader.on('restarted', this.#onRestarted);
    this.#loader.on('failed', this.#onFailed);
    for (const handle of await this.#store.list()) {
      this.#handles.set(handle.config.id, handle);
    }
    await Promise.all([...this.#drivers.values()].map((d) => this.#recoverAll(d, 'host restart').catch(() => undefined)));
  }

  /** Resolves once every driver has fingerprinted (or failed), or when `timeoutMs` has passed. */
  async waitForFirstFingerprint(timeoutMs = 50_000): Promise<void> {
    await this.start();
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref());
    await Promise.race([Promise.all([...this.#drivers.values()].map((d) => d.firstFingerprint)), timeout]);
  }

  /** Health of every driver. */
  health(): DriverHealthInfo[] {
    return [...this.#drivers.values()].map((d) => ({ ...d.health }));
  }

  /** The driver with this name. */
  driver(name: string): DriverClient {
    const driver = this.#drivers.get(name);
    if (!driver) {
      const known = [...this.#drivers.keys()];
      throw new PluginNotFoundError(`no driver named "${name}" (drivers: ${known.join(', ') || 'none'})`);
    }
    return driver.client;
  }

  /** The driver's task config schema (asked once per driver). */
  taskConfigSchema(name: string): Promise<JsonSchema> {
    const driver = this.#entry(name);
    driver.schema ??= driver.client.taskConfigSchema().catch((err: unknown) => {
      delete driver.schema;
      throw err;
    });
    return driver.schema;
  }

  capabilities(name: string): Promise<DriverCapabilities> {
    const driver = this.#entry(name);
    driver.capabilities ??= driver.client.capabilities().catch((err: unknown) => {
      delete driver.capabilities;
      throw err;
    });
    return driver.capabilities;
  }

  /**
   * The node's attributes for `${node.attr.*}`: the host's own (kernel.name, cpu.arch, ...), then
   * each driver's latest fingerprint (`driver.docker.version`, ...).
   */
  nodeAttributes(): Record<string, string> {
    const attributes: Record<string, string> = {};
    for (const d of this.#drivers.values()) for (const [key, value] of Object.entries(d.health.attributes)) attributes[key] = String(value);
    // The host's own facts win: a driver reporting `kernel.name` or `cpu.arch` must not change what
    // every task on the node sees.
    return { ...attributes, ...hostAttributes() };
  }

  /**
   * Builds the TaskConfig for a spec on its driver (buildTaskConfig; node attributes from
   * nodeAttributes() under any the options give) and has the driver check it against its policy
   * (validateTask, where the driver has it). Makes nothing on disk: `validate` uses it as is.
   */
  async buildTask(spec: TaskSpec, options: TaskOptions = {}): Promise<TaskConfig> {
    await this.start();
    const checked = parseTaskSpec(spec);
    const driver = this.#drivers.get(checked.driver);
    if (!driver) {
      const started = [...this.#drivers.keys()].sort().join(', ') || 'none';
      const issue = (await unknownDriverIssue(checked.driver, this.#loader)) ?? {
        path: '/driver',
        message: `driver "${checked.driver}" is not hosted here (the loader's "only" option left it out); hosted: ${started}`,
      };
      throw new InvalidConfigError(`task "${checked.name}": ${issue.path}: ${issue.message}`, { details: { errors: [issue] } });
    }
    const [schema, capabilities] = await Promise.all([this.taskConfigSchema(checked.driver), this.capabilities(checked.driver)]);
    const node = { ...options.node, attributes: { ...this.nodeAttributes(), ...options.node?.attributes } };
    const task = buildTaskConfig({ ...options, node, spec: checked, schema, capabilities, dataDir: this.#loader.config.dataDir });
    if (driver.client.instance.implements('validateTask')) await driver.client.validateTask(task);
    return task;
  }

  /** The host alloc dir buildTask gives the tasks of `allocId` (where their TASKHOST_LOCK_FILE is). */
  allocDir(allocId: string): string {
    return hostAllocDir(this.#loader.config.dataDir, allocId);
  }

  /** buildTask, then the task's directories and log files (createTaskDirs): ready for startTask. */
  async prepare(spec: TaskSpec, options: TaskOptions = {}): Promise<TaskConfig> {
    const task = await this.buildTask(spec, options);
    await createTaskDirs(task);
    return task;
  }

  /**
   * Starts a task and keeps its handle until it is destroyed. Before the driver is called, an
   * intent handle (the config, `driverState: null`) is stored, so a host that dies while the
   * start is in flight finds the task at its next start: recoverTask of the intent has the driver
   * look for it by its config. The driver's handle replaces the intent; a failed start removes it.
   */
  async startTask(config: TaskConfig, signal?: AbortSignal): Promise<TaskHandle> {
    const { client } = this.#entry(config.driver);
    // The intent must not overwrite (nor a failure delete) the stored handle of a live task.
    if (this.#handles.has(config.id)) throw new TaskExistsError(`a task with id ${config.id} is already running`);
    await this.#store.put(intentHandle(config));
    crashPoint('after-intent');
    let handle: TaskHandle;
    try {
      ({ handle } = await client.startTask(config, { signal }));
    } catch (err) {
      // The driver did not start it (a driver cleans up after a start it fails).
      await this.#store.delete(config.id).catch((e: unknown) => this.#log.warn({ taskId: config.id, err: e }, 'intent not removed'));
      throw err;
    }
    crashPoint('after-driver-start');
    this.#handles.set(config.id, handle);
    await this.#store.put(handle);
    return handle;
  }

  /** Live task handles (started, not yet destroyed). */
  tasks(): TaskHandle[] {
    return [...this.#handles.values()];
  }

  /** Whether the manager tracks a live task with this id. */
  has(taskId: string): boolean {
    return this.#handles.has(taskId);
  }

  /**
   * Re-attaches a task from a handle the caller kept in its own store (a scheduler's: Nomad
   * hands a fresh plugin process its tasks' handles), and tracks it from then on; a no-op for a
   * task the manager already tracks.
   */
  async recoverTask(handle: TaskHandle, signal?: AbortSignal): Promise<void> {
    await this.start();
    const id = handle.config.id;
    if (this.#handles.has(id)) return;
    const { client } = this.#entry(handle.config.driver);
    await client.recoverTask(handle, { signal });
    this.#handles.set(id, handle);
    await this.#store.put(handle);
  }

  /** Waits for the task to exit; a crash of its driver meanwhile is waited out, not reported. */
  async waitTask(taskId: string, signal?: AbortSignal): Promise<ExitResult> {
    for (;;) {
      const driver = this.#driverOf(taskId);
      try {
        return await driver.client.waitTask(taskId, signal);
      } catch (err) {
        if (!(err instanceof PluginCrashedError) || signal?.aborted) throw err;
        await this.#recovered(driver, signal);
        if (!this.#handles.has(taskId)) throw new TaskNotFoundError(`task ${taskId} was lost when its driver restarted`, { cause: err });
      }
    }
  }

  async stopTask(taskId: string, timeoutMs?: number, killSignal?: string): Promise<void> {
    const handle = this.#handle(taskId);
    await this.#retryOverCrash(taskId, (d) =>
      d.client.stopTask(taskId, timeoutMs ?? handle.config.killTimeoutMs, killSignal ?? handle.config.killSignal),
    );
  }

  /** Destroys the task in its driver and forgets its handle. */
  async destroyTask(taskId: string, force = true): Promise<void> {
    await this.#retryOverCrash(taskId, (d) => d.client.destroyTask(taskId, force));
    this.#handles.delete(taskId);
    await this.#store.delete(taskId);
  }

  inspectTask(taskId: string): Promise<TaskStatus> {
    return this.#retryOverCrash(taskId, (d) => d.client.inspectTask(taskId));
  }

  signalTask(taskId: string, signal: string): Promise<void> {
    return this.#retryOverCrash(taskId, (d) => d.client.signalTask(taskId, signal));
  }

  /** Stops watching drivers. Running tasks are left alone (they outlive the manager). */
  async close(): Promise<void> {
    this.#closing.abort();
    this.#loader.off('crashed', this.#onCrashed);
    this.#loader.off('restarted', this.#onRestarted);
    this.#loader.off('failed', this.#onFailed);
    await Promise.all(this.#loops);
  }

  #entry(name: string): Driver {
    const driver = this.#drivers.get(name);
    if (!driver) this.driver(name); // throws the helpful error
    return driver!;
  }

  #handle(taskId: string): TaskHandle {
    const handle = this.#handles.get(taskId);
    if (!handle) throw new TaskNotFoundError(`no live task with id ${taskId}`);
    return handle;
  }

  #driverOf(taskId: string): Driver {
    return this.#entry(this.#handle(taskId).config.driver);
  }

  async #retryOverCrash<T>(taskId: string, work: (driver: Driver) => Promise<T>): Promise<T> {
    const driver = this.#driverOf(taskId);
    try {
      return await work(driver);
    } catch (err) {
      if (!(err instanceof PluginCrashedError)) throw err;
      await this.#recovered(driver);
      return work(driver);
    }
  }

  /** Resolves when the driver is back and its tasks recovered; rejects if it failed for good. */
  async #recovered(driver: Driver, signal?: AbortSignal): Promise<void> {
    await driver.client.instance.ready(signal);
    await driver.recovery;
  }

  readonly #onCrashed = (name: string): void => {
    const driver = this.#drivers.get(name);
    if (!driver) return;
    this.#setHealth(driver, { health: 'unhealthy', healthDescription: `driver plugin crashed; restarting` });
    let done!: () => void;
    driver.recovery = new Promise<void>((resolve) => (done = resolve));
    const instance = driver.client.instance;
    const settle = () => {
      instance.off('state', onState);
      done();
    };
    // Recovery runs on `restarted`; if the plugin fails instead, waiters must not hang.
    const onState = (state: string) => state === 'failed' && settle();
    instance.on('state', onState);
    instance.once('restarted', () => void this.#recoverAll(driver, 'driver restart').finally(settle));
  };

  readonly #onRestarted = (name: string): void => {
    const driver = this.#drivers.get(name);
    if (driver) {
      delete driver.schema;
      delete driver.capabilities;
    }
  };

  readonly #onFailed = (name: string, error: TaskhostError): void => {
    const driver = this.#drivers.get(name);
    if (driver) this.#setHealth(driver, { health: 'unhealthy', healthDescription: `driver plugin failed: ${error.message}` });
  };

  /** Calls recoverTask for every live handle of the driver; a handle it refuses is dropped. */
  async #recoverAll(driver: Driver, why: string): Promise<void> {
    const handles = [...this.#handles.values()].filter((h) => h.config.driver === driver.client.name);
    if (handles.length === 0) return;
    try {
      await driver.client.instance.ready(this.#closing.signal);
    } catch {
      return;
    }
    await Promise.all(
      handles.map(async (handle) => {
        try {
          await driver.client.recoverTask(handle);
          this.#log.info({ driver: driver.client.name, taskId: handle.config.id, why }, 'task recovered');
          guardedEmit(this, this.#log, 'recovered', driver.client.name, handle.config.id);
        } catch (err) {
          const error = err instanceof TaskhostError ? err : new TaskhostError(String(err));
          if (error instanceof PluginCrashedError) return; // the next restart recovers it again
          this.#log.error({ driver: driver.client.name, taskId: handle.config.id, err: toErrorData(error) }, 'task lost');
          this.#handles.delete(handle.config.id);
          await this.#store.delete(handle.config.id);
          guardedEmit(this, this.#log, 'lost', driver.client.name, handle.config.id, error);
        }
      }),
    );
  }

  /** Keeps the driver's fingerprint stream open for as long as the manager runs. */
  #fingerprintLoop(driver: Driver): Promise<void> {
    const instance = driver.client.instance;
    return followStream({
      instance,
      requires: driverMethods,
      signal: this.#closing.signal,
      backoffMs: this.#backoff,
      open: (signal) => driver.client.fingerprint(signal),
      onItem: (item) => {
        const checked = validateFingerprint(item);
        if (checked.ok) this.#setHealth(driver, { ...checked.value, fingerprinted: true });
        else {
          const detail = formatIssues(checked.issues).join('; ');
          this.#setHealth(driver, { health: 'unhealthy', healthDescription: `invalid fingerprint: ${detail}`, fingerprinted: true });
        }
        driver.markFingerprinted();
      },
      onError: (error) => {
        if (error instanceof PluginLoadError) this.#setHealth(driver, { health: 'undetected', healthDescription: error.message });
        else if (error instanceof PluginFailedError || instance.state === 'failed') {
          this.#setHealth(driver, { health: 'unhealthy', healthDescription: `driver plugin failed: ${error.message}` });
        } else this.#setHealth(driver, { health: 'unhealthy', healthDescription: `fingerprint failed: ${error.message}` });
        driver.markFingerprinted();
      },
    });
  }

  /** Forwards the driver's task events for as long as the manager runs. */
  #eventLoop(driver: Driver): Promise<void> {
    return followStream({
      instance: driver.client.instance,
      requires: ['taskEvents'],
      signal: this.#closing.signal,
      backoffMs: this.#backoff,
      open: (signal) => driver.client.taskEvents(signal),
      onItem: (event) => guardedEmit(this, this.#log, 'taskEvent', driver.client.name, event),
    });
  }

  #setHealth(driver: Driver, update: Partial<DriverHealthInfo>): void {
    const next = { ...driver.health, ...update };
    const changed =
      next.health !== driver.health.health ||
      next.healthDescription !== driver.health.healthDescription ||
      JSON.stringify(next.attributes) !== JSON.stringify(driver.health.attributes);
    if (!changed && driver.health.fingerprinted === next.fingerprinted) return;
    driver.health = { ...next, updatedAt: new Date().toISOString() };
    if (changed) {
      this.#log.info({ driver: driver.client.name, health: next.health }, `driver health: ${next.health} (${next.healthDescription})`);
      guardedEmit(this, this.#log, 'health', { ...driver.health });
    }
  }
}
