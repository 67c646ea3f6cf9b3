/**
 * One plugin worker thread for its whole life: a piscina pool of exactly one long-lived thread.
 * When the thread dies, every call and stream on it settles with a PluginCrashedError and the
 * worker emits `exit` once; restarting is the supervisor's job (a new PluginWorker).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { EventEmitter } from 'eventemitter3';
import { Piscina } from 'piscina';
import { CancelledError, PluginCrashedError, PluginError, PluginShutdownError, TimeoutError, fromErrorData } from '../shared/errors.js';
import type { PluginManifest } from '../shared/plugin.js';
import type {
  CallRequest,
  ControlMessage,
  Envelope,
  LoadRequest,
  LoadResult,
  SessionRequest,
  StreamControl,
  StreamMessage,
  StreamRequest,
  WorkerBoot,
  WorkerDiagnostics,
  WorkerMessage,
  WorkerProbe,
} from './protocol.js';
import { verifyPlugin } from './verify-plugin.js';

export interface PluginWorkerOptions {
  /** Plugin name, for messages. */
  name: string;
  /** file: URL of the plugin's entry module. */
  entry: string;
  manifest: PluginManifest;
  /** V8 old-generation heap limit of the worker, in MiB. */
  heapMB: number;
  /** How many calls and streams may be in flight at once. */
  concurrency: number;
  /** What the conformance suite asks of the worker (see WorkerProbe). */
  probe?: WorkerProbe | undefined;
  /** After how long a cancelled call that has not settled is reported (`unsettled`); default 5 s. */
  unsettledAfterMs?: number | undefined;
}

export interface PluginWorkerEvents {
  /** The thread died; `inFlight` calls and streams were settled with `error`. */
  exit: [error: PluginCrashedError, inFlight: number];
  output: [stream: 'stdout' | 'stderr', text: string];
  /**
   * A call or stream of `method` was cancelled `cancelledMs` ago and the plugin has not settled
   * it: it ignores its AbortSignal. Sent once per method per worker.
   */
  unsettled: [method: string, kind: 'call' | 'stream', cancelledMs: number];
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
}

export interface StreamOptions extends CallOptions {
  /** Items the plugin may send ahead of the consumer (backpressure window). */
  window?: number;
  /**
   * Carry each item as JSON text rather than a structured clone: for big, object-heavy items
   * (device stats) JSON.stringify and JSON.parse cost about half of what serialising and
   * deserialising the objects does. Only for streams whose items are JSON by contract: an
   * `undefined` property is dropped, a Date becomes a string, a BigInt or a cycle ends the
   * stream with an error.
   */
  json?: boolean;
}

const here = import.meta.url;
const fromSources = here.endsWith('.ts');
// From sources a worker compiles TypeScript with tsx (one line per file), the host under tap with
// its own loader. tap's coverage hooks reach into a worker and record it when it exits on its own
// (a plugin crash): that record of a shared file, merged offset by offset with the host's, spoils
// the coverage of every file the two share. So from sources under tap, workers record none.
const noWorkerCoverage = fromSources && process.env._TAPJS_PROCESSINFO_COVERAGE_ !== undefined;
const workerEnv = (): NodeJS.ProcessEnv => (noWorkerCoverage ? { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' } : { ...process.env });
const hostManifest = fileURLToPath(new URL(fromSources ? '../package.json' : '../../package.json', here));
/** Read once here, not by every worker at its start. */
function readHostVersion(file: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}
const boot: Omit<WorkerBoot, 'entry' | 'builtin'> = {
  runtime: new URL(fromSources ? './worker-runtime.ts' : './worker-runtime.js', here).href,
  typescript: fromSources,
  resolveHooks: new URL('./sdk-resolve-hooks.mjs', here).href,
  // The host's own SDK entry: what `taskhost/sdk` is to every plugin (see sdk-resolve-hooks.mjs).
  sdk: new URL(fromSources ? '../shared/index.ts' : '../shared/index.js', here).href,
  hostManifest,
  hostVersion: readHostVersion(hostManifest),
};
const workerFile = new URL('./worker.mjs', here).href;
/** Where the built-in plugins live: they import the SDK by relative paths, so need no resolve hooks. */
const builtinDirs = ['../drivers/', '../devices/'].map((dir) => new URL(dir, here).href);
const callTask = { name: 'call' } as const;

export class PluginWorker extends EventEmitter<PluginWorkerEvents> {
  readonly #options: PluginWorkerOptions;
  readonly #pool: Piscina;
  readonly #control: MessagePort;
  readonly #pending = new Map<number, (err: Error) => void>();
  readonly #pings = new Map<number, (err?: Error) => void>();
  readonly #diagnoses = new Map<number, (err: Error | undefined, report?: WorkerDiagnostics) => void>();
  /** Methods with a cancelled call being watched, and their timer; methods already reported. */
  readonly #watches = new Map<string, NodeJS.Timeout>();
  readonly #reported = new Set<string>();
  #nextId = 1;
  #exit: PluginCrashedError | undefined;
  #closed = false;

  constructor(options: PluginWorkerOptions) {
    super();
    this.#options = options;
    this.#pool = new Piscina({
      filename: workerFile,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Infinity,
      atomics: 'disabled',
      concurrentTasksPerWorker: options.concurrency,
      resourceLimits: { maxOldGenerationSizeMb: options.heapMB },
      workerData: { ...boot, entry: options.entry, builtin: builtinDirs.some((dir) => options.entry.startsWith(dir)) } satisfies WorkerBoot,
      recordTiming: false,
      // Not the host's flags: its loaders (tap, ts-node, --inspect) have no business in a plugin.
      execArgv: process.execArgv.filter((a) => a === '--enable-source-maps'),
      ...(options.probe?.env || noWorkerCoverage ? { env: { ...workerEnv(), ...options.probe?.env } } : {}),
    });
    this.#pool.on('error', (err: unknown) => this.#died(err));
    const { port1, port2 } = new MessageChannel();
    this.#control = port1;
    port1.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'pong') this.#pings.get(msg.seq)?.();
      else if (msg.type === 'diagnostics') this.#diagnoses.get(msg.seq)?.(undefined, msg.report);
      else this.emit('output', msg.stream, msg.text);
    });
    const session: SessionRequest = { port: port2, ...(options.probe?.trackTimers ? { trackTimers: true } : {}) };
    this.#pool.run(session, { name: 'session', transferList: [port2] }).then(
      () => this.#died(new Error('the plugin session ended')),
      (err: unknown) => this.#died(err),
    );
  }

  /** Why the worker died, once it has. */
  get exitError(): PluginCrashedError | undefined {
    return this.#exit;
  }

  /** Imports the plugin in the worker and returns what it says about itself, verified. */
  async load(): Promise<LoadResult> {
    const request: LoadRequest = { entry: this.#options.entry, manifest: this.#options.manifest };
    const envelope = await this.#run<Envelope<LoadResult>>(request, 'load');
    if (!envelope.ok) throw fromErrorData(envelope.error);
    return verifyPlugin(this.#options.manifest, envelope.value);
  }

  /** Calls a plugin method. The plugin receives an AbortSignal after `args`. */
  call(method: string, args: unknown[], options: CallOptions = {}): Promise<unknown> {
    if (this.#exit) return Promise.reject(this.#exit);
    if (this.#closed) return Promise.reject(this.#shutdownError());
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(cancelled(method, signal));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      let onAbort: (() => void) | undefined;
      const done = () => {
        this.#pending.delete(id);
        if (onAbort) signal!.removeEventListener('abort', onAbort);
      };
      this.#pending.set(id, (err) => {
        done();
        reject(err);
      });
      if (signal) {
        onAbort = () => {
          this.#post({ type: 'cancel', id });
          this.#watch(method);
          done();
          reject(cancelled(method, signal));
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
      const request: CallRequest = { id, method, args };
      // The hot path: one piscina task, no extra promise layers unless it fails.
      (this.#pool.run(request, callTask) as Promise<Envelope<unknown>>).then(
        (envelope) => {
          done();
          if (envelope.ok) resolve(envelope.value);
          else reject(fromErrorData(envelope.error));
        },
        (err: unknown) => {
          done();
          this.#explain(err).then(reject, reject);
        },
      );
    });
  }

  /**
   * Opens a plugin stream. Items arrive in order; the plugin never runs more than `window`
   * items ahead of the consumer. Breaking out of the loop or aborting cancels it in the plugin.
   */
  stream<T = unknown>(method: string, args: unknown[], options: StreamOptions = {}): AsyncIterableIterator<T> {
    const window = Math.max(1, options.window ?? 16);
    const { signal } = options;
    const id = this.#nextId++;
    const { port1, port2 } = new MessageChannel();
    const queue: T[] = [];
    let failure: Error | undefined;
    let finished = false;
    let consumed = 0;
    let wake: (() => void) | undefined;
    const finish = (err?: Error) => {
      if (finished) return;
      finished = true;
      if (err && !failure) failure = err;
      this.#pending.delete(id);
      if (onAbort) signal!.removeEventListener('abort', onAbort);
      port1.close();
      wake?.();
    };
    const cancel = (err?: Error) => {
      if (finished) return;
      port1.postMessage({ type: 'cancel' } satisfies StreamControl);
      this.#watch(method);
      finish(err);
    };
    const onAbort = signal ? () => cancel(cancelled(method, signal)) : undefined;

    if (this.#exit) finish(this.#exit);
    else if (this.#closed) finish(this.#shutdownError());
    else if (signal?.aborted) finish(cancelled(method, signal));
    else {
      this.#pending.set(id, (err) => finish(err));
      if (onAbort) signal!.addEventListener('abort', onAbort, { once: true });
      port1.on('message', (msg: StreamMessage) => {
        if (msg.type === 'item') {
          queue.push(('json' in msg ? JSON.parse(msg.json) : msg.value) as T);
          wake?.();
        } else finish(msg.type === 'error' ? fromErrorData(msg.error) : undefined);
      });
      const request: StreamRequest = { id, method, args, port: port2, credit: window, ...(options.json ? { json: true } : {}) };
      this.#run(request, 'stream', [port2]).catch((err: unknown) => finish(err as Error));
    }

    const iterator: AsyncIterableIterator<T> = {
      next: async (): Promise<IteratorResult<T>> => {
        while (queue.length === 0 && !finished) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        if (queue.length > 0) {
          const value = queue.shift()!;
          if (!finished && ++consumed >= Math.ceil(window / 2)) {
            port1.postMessage({ type: 'credit', n: consumed } satisfies StreamControl);
            consumed = 0;
          }
          return { done: false, value };
        }
        if (failure) throw failure;
        return { done: true, value: undefined };
      },
      return: async (): Promise<IteratorResult<T>> => {
        cancel();
        queue.length = 0;
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Resolves when the worker's event loop answers; rejects after `timeoutMs`. */
  ping(timeoutMs: number): Promise<void> {
    if (this.#exit) return Promise.reject(this.#exit);
    const seq = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pings.delete(seq);
        reject(new Error(`no answer to a liveness check within ${timeoutMs}ms`));
      }, timeoutMs);
      this.#pings.set(seq, (err) => {
        clearTimeout(timer);
        this.#pings.delete(seq);
        if (err) reject(err);
        else resolve();
      });
      this.#post({ type: 'ping', seq });
    });
  }

  /**
   * Asks the worker what only it can see: the calls and streams the plugin has not settled
   * (cancelled ones too: the host stops waiting for those at once) and the thread's active
   * resources. Rejects with TimeoutError when the worker does not answer within `timeoutMs`.
   */
  diagnostics(timeoutMs = 10_000): Promise<WorkerDiagnostics> {
    if (this.#exit) return Promise.reject(this.#exit);
    if (this.#closed) return Promise.reject(this.#shutdownError());
    const seq = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#diagnoses.delete(seq);
        reject(new TimeoutError(`plugin "${this.#options.name}" did not answer a diagnostics request within ${timeoutMs}ms`));
      }, timeoutMs);
      this.#diagnoses.set(seq, (err, report) => {
        clearTimeout(timer);
        this.#diagnoses.delete(seq);
        if (err) reject(err);
        else resolve(report!);
      });
      this.#post({ type: 'diagnose', seq });
    });
  }

  /**
   * After a cancel, checks (once the grace time has passed) whether the plugin settled what
   * was cancelled; one that has not is reported once per method: it ignores its signal, and
   * whatever it holds stays held.
   */
  #watch(method: string): void {
    if (this.#reported.has(method) || this.#watches.has(method)) return;
    const after = this.#options.unsettledAfterMs ?? 5_000;
    const look = (delay: number) => {
      const timer = setTimeout(() => {
        this.diagnostics().then(
          (report) => {
            this.#watches.delete(method);
            const cancelled = report.inFlight.filter((c) => c.method === method && c.cancelledMs !== undefined);
            const late = cancelled.find((c) => c.cancelledMs! >= after);
            if (late && !this.#reported.has(method)) {
              this.#reported.add(method);
              this.emit('unsettled', method, late.kind, late.cancelledMs!);
            } else if (cancelled.length > 0 && !late) look(after - Math.max(...cancelled.map((c) => c.cancelledMs!)));
          },
          () => this.#watches.delete(method),
        );
      }, delay);
      timer.unref();
      this.#watches.set(method, timer);
    };
    look(after);
  }

  /** Terminates the thread as a crash: everything in flight settles with `error`. */
  async kill(error: PluginCrashedError): Promise<void> {
    this.#died(error);
    await this.#pool.destroy();
  }

  /** Terminates the thread without counting it as a crash. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const err = this.#shutdownError();
    for (const settle of [...this.#pending.values()]) settle(err);
    for (const settle of [...this.#diagnoses.values()]) settle(err);
    this.#stopWatching();
    this.#control.close();
    await this.#pool.destroy();
  }

  #run<T>(request: object, name: string, transferList?: MessagePort[]): Promise<T> {
    const options = transferList ? { name, transferList } : { name };
    return (this.#pool.run(request, options) as Promise<T>).catch((err: unknown) => this.#explain(err));
  }

  /**
   * piscina rejects every task on the thread when it dies; the session task's rejection says
   * why, so give it a turn and report the classified crash instead of the raw error.
   */
  async #explain(err: unknown): Promise<never> {
    await new Promise((r) => setImmediate(r));
    if (this.#exit) throw this.#exit;
    if (this.#closed) throw this.#shutdownError();
    throw new PluginError(`plugin "${this.#options.name}": ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }

  #post(msg: ControlMessage): void {
    if (!this.#closed && !this.#exit) this.#control.postMessage(msg);
  }

  #died(reason: unknown): void {
    if (this.#exit || this.#closed) return;
    const error = reason instanceof PluginCrashedError ? reason : classifyCrash(this.#options, reason);
    this.#exit = error;
    const inFlight = this.#pending.size;
    for (const settle of [...this.#pending.values()]) settle(error);
    for (const settle of [...this.#pings.values()]) settle(error);
    for (const settle of [...this.#diagnoses.values()]) settle(error);
    this.#stopWatching();
    this.#control.close();
    void this.#pool.destroy().catch(() => undefined);
    this.emit('exit', error, inFlight);
  }

  #stopWatching(): void {
    for (const timer of this.#watches.values()) clearTimeout(timer);
    this.#watches.clear();
  }

  #shutdownError(): PluginShutdownError {
    return new PluginShutdownError(`plugin "${this.#options.name}" is shut down`);
  }
}

/** Turns what piscina reports about a dead thread into a PluginCrashedError that says why. */
export function classifyCrash(options: { name: string; heapMB: number }, reason: unknown): PluginCrashedError {
  const err = reason instanceof Error ? reason : new Error(String(reason));
  const code = (err as { code?: unknown }).code;
  const exit = /worker exited with code: (-?\d+)/.exec(err.message);
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return new PluginCrashedError(`plugin "${options.name}" ran out of memory (heap limit ${options.heapMB} MiB) and was stopped`, {
      details: { reason: 'out-of-memory', heapMB: options.heapMB },
      cause: err,
    });
  }
  if (exit) {
    const exitCode = Number(exit[1]);
    return new PluginCrashedError(`plugin "${options.name}" exited (code ${exitCode})`, {
      details: { reason: 'exit', exitCode },
      cause: err,
    });
  }
  return new PluginCrashedError(`plugin "${options.name}" crashed: ${err.message}`, {
    details: { reason: 'uncaught-exception', error: err.message, ...(err.stack ? { stack: err.stack } : {}) },
    cause: err,
  });
}

function cancelled(method: string, signal: AbortSignal): CancelledError {
  return new CancelledError(`${method}() was cancelled by the caller`, { cause: signal.reason });
}
