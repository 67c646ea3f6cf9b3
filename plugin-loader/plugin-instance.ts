/**
 * A supervised plugin: starts its worker, keeps it alive with liveness checks, restarts it with
 * exponential backoff and jitter after a crash, and trips a breaker on a crash loop.
 *
 *   starting -> running -> (crash) -> restarting -> starting -> ...
 *                       \-> (crash loop, or an error no restart can fix) -> failed
 *   any -> stopped (close)
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { EventEmitter } from 'eventemitter3';
import {
  CancelledError,
  InvalidConfigError,
  PluginCrashedError,
  PluginFailedError,
  PluginShutdownError,
  TaskhostError,
  toErrorData,
  type ErrorData,
} from '../shared/errors.js';
import type { PluginInfo, PluginManifest } from '../shared/plugin.js';
import { compileSchema, parseWith, type JsonSchema } from '../shared/schema.js';
import type { FilledSupervision } from './agent-config.js';
import { backoff } from './backoff.js';
import { PluginWorker, type CallOptions, type StreamOptions } from './plugin-worker.js';
import type { WorkerDiagnostics, WorkerProbe } from './protocol.js';

export type PluginState = 'starting' | 'running' | 'restarting' | 'failed' | 'stopped';

export interface PluginInstanceOptions {
  manifest: PluginManifest;
  /** file: URL of the entry module. */
  entry: string;
  apiVersion: string;
  /** The plugin's config from the agent config, not yet validated. */
  config: unknown;
  dataDir: string;
  supervision: FilledSupervision;
  /** Lines of plugin output kept for crash reports. */
  outputLines?: number;
  /** What the conformance suite asks of the worker (see WorkerProbe). */
  probe?: WorkerProbe;
  /** After how long a cancelled call that has not settled is reported (`unsettled`); default 5 s. */
  unsettledAfterMs?: number;
}

export interface CloseOptions {
  /**
   * Runs after shutdown() returned (or its deadline passed) and before the worker is
   * terminated, with the worker still up: the conformance suite looks at what it left there.
   */
  afterShutdown?: (worker: { diagnostics(): Promise<WorkerDiagnostics> }) => Promise<void>;
}

export interface PluginInstanceEvents {
  state: [state: PluginState];
  /** The first successful start. */
  started: [];
  /** The worker died; `inFlight` calls and streams were settled with `error`. */
  crashed: [error: PluginCrashedError, inFlight: number];
  /** Running again after a crash: re-send what the plugin lost (streams, task handles). */
  restarted: [restarts: number];
  /** The breaker tripped or the plugin cannot start; calls fail with PluginFailedError. */
  failed: [error: TaskhostError];
  /** A line the plugin printed. */
  output: [stream: 'stdout' | 'stderr', line: string];
  /** A cancelled call of `method` had not settled `cancelledMs` later (once per method, across restarts). */
  unsettled: [method: string, kind: 'call' | 'stream', cancelledMs: number];
}

/** Errors that no restart can fix: fail at once instead of retrying. */
const permanent = new Set(['PLUGIN_LOAD_FAILED', 'INVALID_CONFIG', 'INVALID_SCHEMA', 'INVALID_MANIFEST', 'API_VERSION_MISMATCH']);

export class PluginInstance extends EventEmitter<PluginInstanceEvents> {
  readonly name: string;
  readonly #options: PluginInstanceOptions;
  readonly #sup: FilledSupervision;
  #state: PluginState = 'starting';
  #worker: PluginWorker | undefined;
  #info: PluginInfo | undefined;
  #configSchema: JsonSchema | null = null;
  #config: unknown;
  #methods: string[] = [];
  #lastError: TaskhostError | undefined;
  #restarts = 0;
  #crashes: number[] = [];
  #backoffStep = 0;
  #startedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #liveness: NodeJS.Timeout | undefined;
  #waiters = new Set<() => void>();
  #output: string[] = [];
  #partial = { stdout: '', stderr: '' };
  #everStarted = false;
  readonly #unsettled = new Set<string>();
  #starting: Promise<void> | undefined;

  constructor(options: PluginInstanceOptions) {
    super();
    this.name = options.manifest.name;
    this.#options = options;
    this.#sup = options.supervision;
  }

  get state(): PluginState {
    return this.#state;
  }
  get info(): PluginInfo | undefined {
    return this.#info;
  }
  get apiVersion(): string {
    return this.#options.apiVersion;
  }
  get configSchema(): JsonSchema | null {
    return this.#configSchema;
  }
  /** The validated config with defaults applied, once started. */
  get config(): unknown {
    return this.#config;
  }
  get methods(): readonly string[] {
    return this.#methods;
  }
  get restarts(): number {
    return this.#restarts;
  }
  get lastError(): TaskhostError | undefined {
    return this.#lastError;
  }
  /** The last lines the plugin printed, oldest first. */
  get recentOutput(): readonly string[] {
    return this.#output;
  }

  /** Starts the plugin; resolves once it is running or has failed (it never rejects). */
  start(): Promise<void> {
    this.#starting ??= this.#launch();
    return this.#starting;
  }

  /** Resolves when running; rejects if it fails, stops, or `signal` aborts first. */
  async ready(signal?: AbortSignal): Promise<void> {
    while (this.#state !== 'running') {
      if (this.#state === 'failed') throw this.#failedError();
      if (this.#state === 'stopped') throw new PluginShutdownError(`plugin "${this.name}" is stopped`);
      if (signal?.aborted) throw new CancelledError(`waiting for plugin "${this.name}" was cancelled`, { cause: signal.reason });
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#waiters.delete(wake);
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        this.#waiters.add(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }

  /**
   * Calls a plugin method, waiting for the plugin if it is restarting. In-flight calls settle
   * with PluginCrashedError if the worker dies under them.
   */
  call<T = unknown>(method: string, args: unknown[] = [], options: CallOptions = {}): Promise<T> {
    if (this.#state === 'running') return this.#worker!.call(method, args, options) as Promise<T>;
    return this.ready(options.signal).then(() => this.#worker!.call(method, args, options) as Promise<T>);
  }

  /** Opens a plugin stream (waits for the plugin if it is restarting). */
  async *stream<T = unknown>(method: string, args: unknown[] = [], options: StreamOptions = {}): AsyncGenerator<T> {
    if (this.#state !== 'running') await this.ready(options.signal);
    yield* this.#worker!.stream<T>(method, args, options);
  }

  /** Whether the plugin implements a method (known once started). */
  implements(method: string): boolean {
    return this.#methods.includes(method);
  }

  /**
   * Terminates the plugin's worker as if it had crashed (for drills, tests, and an operator
   * unsticking a plugin): in-flight calls settle with PluginCrashedError and it restarts.
   */
  async kill(reason = 'killed by the host'): Promise<void> {
    if (this.#state !== 'running' || !this.#worker) return;
    await this.#worker.kill(new PluginCrashedError(`plugin "${this.name}" ${reason}`, { details: { reason: 'killed' } }));
  }

  /** Clears a tripped breaker and starts the plugin again. */
  async reset(): Promise<void> {
    if (this.#state !== 'failed') return;
    this.#crashes = [];
    this.#backoffStep = 0;
    clearTimeout(this.#timer);
    await this.#attempt();
  }

  /**
   * Asks the running worker what only it can see (see PluginWorker.diagnostics): unsettled
   * calls and streams, and its active resources.
   */
  diagnostics(timeoutMs?: number): Promise<WorkerDiagnostics> {
    if (this.#state !== 'running' || !this.#worker) {
      return Promise.reject(new PluginShutdownError(`plugin "${this.name}" is ${this.#state}, not running`));
    }
    return this.#worker.diagnostics(timeoutMs);
  }

  /** Calls shutdown() with the deadline, then terminates the worker. Idempotent. */
  async close(options: CloseOptions = {}): Promise<void> {
    if (this.#state === 'stopped') return;
    const worker = this.#worker;
    const wasRunning = this.#state === 'running';
    this.#setState('stopped');
    clearTimeout(this.#timer);
    clearInterval(this.#liveness);
    if (worker && wasRunning && this.#methods.includes('shutdown')) {
      const deadline = AbortSignal.timeout(this.#sup.shutdownTimeoutMs);
      const timedOut = new Promise((resolve) => deadline.addEventListener('abort', resolve, { once: true }));
      await Promise.race([worker.call('shutdown', [], {}).catch(() => undefined), timedOut]);
    }
    if (worker && wasRunning && options.afterShutdown) await options.afterShutdown(worker);
    await worker?.close();
  }

  /** A snapshot for `taskhost plugins` and the library's status API. */
  status(): PluginStatus {
    const s: PluginStatus = {
      name: this.name,
      type: this.#options.manifest.type,
      apiVersion: this.apiVersion,
      state: this.#state,
      restarts: this.#restarts,
    };
    if (this.#info) s.version = this.#info.pluginVersion;
    if (this.#lastError) s.lastError = toErrorData(this.#lastError);
    return s;
  }

  async #launch(): Promise<void> {
    await mkdir(this.#pluginDataDir(), { recursive: true });
    await this.#attempt();
  }

  #pluginDataDir(): string {
    return path.join(this.#options.dataDir, 'plugins', this.name);
  }

  /** One start attempt; on failure either schedules a restart or fails the plugin. */
  async #attempt(): Promise<void> {
    // Closed while its data folder was being made: a worker started now would outlive close().
    if (this.#closed()) return;
    this.#setState('starting');
    const worker = new PluginWorker({
      name: this.name,
      entry: this.#options.entry,
      manifest: this.#options.manifest,
      heapMB: this.#sup.heapMB,
      concurrency: this.#sup.concurrency,
      probe: this.#options.probe,
      unsettledAfterMs: this.#options.unsettledAfterMs,
    });
    this.#worker = worker;
    worker.on('output', (stream, text) => this.#collect(stream, text));
    worker.on('unsettled', (method, kind, ms) => {
      if (this.#unsettled.has(method)) return;
      this.#unsettled.add(method);
      this.emit('unsettled', method, kind, ms);
    });
    try {
      await withDeadline(this.#startup(worker), this.#sup.startTimeoutMs, () =>
        worker.kill(
          new PluginCrashedError(`plugin "${this.name}" did not start within ${this.#sup.startTimeoutMs}ms`, {
            details: { reason: 'start-timeout' },
          }),
        ),
      );
    } catch (err) {
      if (this.#closed()) return;
      const error = err instanceof TaskhostError ? err : new PluginCrashedError(String(err));
      worker.removeAllListeners('exit');
      void worker.close();
      if (permanent.has(error.code)) return this.#fail(error);
      return this.#crashed(error, 0);
    }
    if (this.#closed()) return;
    worker.on('exit', (error, inFlight) => this.#crashed(error, inFlight));
    this.#watch(worker);
    this.#startedAt = Date.now();
    this.#setState('running');
    if (this.#everStarted) this.emit('restarted', this.#restarts);
    else this.emit('started');
    this.#everStarted = true;
  }

  /** close() was called (a method, so TypeScript does not keep a narrowing of #state across awaits). */
  #closed(): boolean {
    return this.#state === 'stopped';
  }

  async #startup(worker: PluginWorker): Promise<void> {
    const loaded = await worker.load();
    this.#info = loaded.info;
    this.#methods = loaded.methods;
    this.#configSchema = loaded.configSchema;
    this.#config = validatePluginConfig(this.name, loaded.configSchema, this.#options.config);
    await worker.call('setConfig', [
      {
        apiVersion: this.apiVersion,
        config: this.#config,
        agent: { dataDir: this.#options.dataDir, pluginDataDir: this.#pluginDataDir() },
      },
    ]);
    if (loaded.methods.includes('init')) await worker.call('init', []);
  }

  /** Pings the worker; one that does not answer in time is killed and counts as a crash. */
  #watch(worker: PluginWorker): void {
    clearInterval(this.#liveness);
    let busy = false;
    this.#liveness = setInterval(() => {
      if (busy || worker.exitError) return;
      busy = true;
      worker.ping(this.#sup.livenessTimeoutMs).then(
        () => (busy = false),
        () => {
          busy = false;
          if (worker.exitError || this.#worker !== worker) return;
          void worker.kill(
            new PluginCrashedError(
              `plugin "${this.name}" stopped answering (event loop blocked for over ${this.#sup.livenessTimeoutMs}ms) and was terminated`,
              { details: { reason: 'unresponsive' } },
            ),
          );
        },
      );
    }, this.#sup.livenessIntervalMs);
    this.#liveness.unref();
  }

  #crashed(error: TaskhostError, inFlight: number): void {
    if (this.#state === 'stopped' || this.#state === 'failed') return;
    clearInterval(this.#liveness);
    const crash = this.#withOutput(error);
    this.#lastError = crash;
    const now = Date.now();
    if (this.#startedAt && now - this.#startedAt > this.#sup.crashLoopWindowMs) this.#backoffStep = 0;
    this.#crashes = [...this.#crashes.filter((t) => now - t < this.#sup.crashLoopWindowMs), now];
    this.emit('crashed', crash instanceof PluginCrashedError ? crash : new PluginCrashedError(crash.message, { cause: crash }), inFlight);
    if (this.#crashes.length >= this.#sup.crashLoopRestarts) {
      return this.#fail(
        new PluginFailedError(
          `plugin "${this.name}" crashed ${this.#crashes.length} times within ${this.#sup.crashLoopWindowMs}ms; last error: ${crash.message}`,
          { details: { lastError: toErrorData(crash) }, cause: crash },
        ),
      );
    }
    this.#setState('restarting');
    const delay = backoff(this.#sup.restartBackoffMs, this.#sup.maxRestartBackoffMs, this.#backoffStep++);
    this.#timer = setTimeout(() => {
      this.#restarts++;
      void this.#attempt();
    }, delay);
  }

  #fail(error: TaskhostError): void {
    clearInterval(this.#liveness);
    this.#lastError = this.#withOutput(error);
    this.#setState('failed');
    this.emit('failed', this.#lastError);
    if (this.#sup.breakerCooldownMs > 0 && !permanent.has(error.code)) {
      this.#timer = setTimeout(() => {
        this.#restarts++;
        void this.#attempt();
      }, this.#sup.breakerCooldownMs);
    }
  }

  #failedError(): PluginFailedError {
    const last = this.#lastError;
    if (last instanceof PluginFailedError) return last;
    return new PluginFailedError(`plugin "${this.name}" has failed: ${last?.message ?? 'unknown error'}`, {
      ...(last ? { details: { lastError: toErrorData(last) }, cause: last } : {}),
    });
  }

  /** Attaches the plugin's last output lines to an error, for the person reading it. */
  #withOutput(error: TaskhostError): TaskhostError {
    if (this.#output.length === 0 || error.details?.output) return error;
    (error as { details?: Record<string, unknown> }).details = { ...error.details, output: [...this.#output] };
    return error;
  }

  #collect(stream: 'stdout' | 'stderr', text: string): void {
    const lines = (this.#partial[stream] + text).split('\n');
    this.#partial[stream] = lines.pop() ?? '';
    const keep = this.#options.outputLines ?? 20;
    for (const line of lines) {
      this.#output.push(line);
      if (this.#output.length > keep) this.#output.shift();
      this.emit('output', stream, line);
    }
  }

  #setState(state: PluginState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
    for (const wake of [...this.#waiters]) wake();
  }
}

export interface PluginStatus {
  name: string;
  type: string;
  version?: string;
  apiVersion: string;
  state: PluginState;
  restarts: number;
  lastError?: ErrorData;
}

/** Validates a plugin's config against its own schema; paths are relative to the plugin's `config`. */
export function validatePluginConfig(name: string, schema: JsonSchema | null, config: unknown): unknown {
  if (schema === null) {
    if (config === undefined) return undefined;
    const issue = { path: '', message: `plugin "${name}" takes no config: remove its "config" key` };
    throw new InvalidConfigError(issue.message, { details: { errors: [issue] } });
  }
  return parseWith(compileSchema(schema, `configSchema() of plugin "${name}"`), config ?? {}, `config of plugin "${name}"`);
}

async function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => Promise<void>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout().then(
        () => reject(new PluginCrashedError(`did not start within ${ms}ms`, { details: { reason: 'start-timeout' } })),
        reject,
      );
    }, ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
