/**
 * The worker side of the protocol: loads one plugin and serves calls and streams for it.
 * Kept free of worker_threads globals so tests can drive it in-process over a MessageChannel,
 * and free of heavy imports (ajv, TypeBox) so a worker starts fast: the host checks what
 * `load` returns (see verify-plugin.ts). Every reply is checked before piscina posts it: one
 * that cannot cross (see wire-problem.ts) fails its own call, never the worker.
 */
import type { MessagePort } from 'node:worker_threads';
import { NotImplementedError, PluginError, PluginLoadError, PluginShutdownError, toErrorData } from '../shared/errors.js';
import { callArguments } from '../shared/method-args.js';
import type { BasePlugin, PluginType } from '../shared/plugin.js';
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
  WorkerDiagnostics,
  WorkerMessage,
} from './protocol.js';
import { CallRegistry } from './call-registry.js';
import { wireError } from './wire-problem.js';
import { WorkerResources } from './worker-resources.js';

type Plugin = BasePlugin & Record<string, unknown>;

export class PluginServer {
  #plugin: Plugin | undefined;
  /** The manifest's type: which contract's arities lay out a call's arguments. */
  #type: PluginType = 'driver';
  #control: MessagePort | undefined;
  readonly #calls = new CallRegistry();
  readonly #resources = new WorkerResources();
  #beforeImport: Record<string, number> = {};

  /**
   * Long-lived control channel: pings, cancellations, diagnostics, and plugin output back to
   * the host. It opens before the plugin is imported, so it takes the resource baseline.
   */
  session({ port, trackTimers }: SessionRequest): Promise<void> {
    this.#control = port;
    if (trackTimers) this.#resources.trackTimers();
    const closed = new Promise<void>((resolve) => {
      port.on('message', (msg: ControlMessage) => {
        if (msg.type === 'ping') this.#send({ type: 'pong', seq: msg.seq });
        else if (msg.type === 'cancel') this.#calls.cancel(msg.id);
        else if (msg.type === 'diagnose') this.#send({ type: 'diagnostics', seq: msg.seq, report: this.diagnostics() });
        else if (msg.type === 'close') {
          port.close();
          resolve();
        }
      });
    });
    // Taken once this port listens, so the baseline holds all of the worker's own ports.
    this.#beforeImport = this.#resources.count();
    return closed;
  }

  /** Sends what the plugin writes to stdout/stderr to the host instead of the terminal. */
  output(stream: 'stdout' | 'stderr', text: string): boolean {
    if (!this.#control) return false;
    this.#send({ type: 'output', stream, text });
    return true;
  }

  async load({ entry, manifest }: LoadRequest): Promise<Envelope<LoadResult>> {
    try {
      let mod: { default?: unknown };
      try {
        mod = (await import(entry)) as { default?: unknown };
      } catch (err) {
        throw new PluginLoadError(`importing ${entry} failed: ${describe(err)}`, { cause: err });
      }
      let exported = mod.default;
      if (typeof exported === 'function') {
        try {
          exported = await (exported as () => unknown)();
        } catch (err) {
          throw new PluginLoadError(`the plugin factory (default export) threw: ${describe(err)}`, { cause: err });
        }
      }
      if (typeof exported !== 'object' || exported === null) {
        throw new PluginLoadError(`${entry} must export default the plugin object or a function returning it, got ${kindOf(exported)}`);
      }
      const plugin = exported as Plugin;
      const info: unknown = typeof plugin.info === 'function' ? await plugin.info() : undefined;
      const configSchema: unknown = typeof plugin.configSchema === 'function' ? await plugin.configSchema() : undefined;
      this.#plugin = plugin;
      this.#type = manifest.type;
      return { ok: true, value: { info, configSchema, methods: methodsOf(plugin) } as LoadResult };
    } catch (err) {
      return { ok: false, error: toErrorData(err) };
    }
  }

  /** Runs a plugin method; a reply that cannot cross to the host is refused here, naming its bad value. */
  async call(request: CallRequest): Promise<Envelope<unknown>> {
    const early = this.#calls.cancelledBeforeStart(request.id, request.method);
    if (early) return { ok: false, error: toErrorData(early) };
    // Under the call's name, so the timers it creates can be traced back to it (conformance only).
    const envelope = await this.#resources.run(request.method, () => this.#invoke(request));
    if (!envelope.ok) return envelope;
    const refused = wireError(request.method, 'returned a value', envelope.value);
    return refused ? { ok: false, error: toErrorData(refused) } : envelope;
  }

  async #invoke({ id, method, args }: CallRequest): Promise<Envelope<unknown>> {
    const controller = this.#calls.begin(id, 'call', method);
    try {
      const value = await this.#method(method).apply(this.#plugin, this.#arguments(method, args, controller.signal));
      return { ok: true, value };
    } catch (err) {
      return { ok: false, error: toErrorData(err) };
    } finally {
      this.#calls.delete(id);
    }
  }

  /** Pumps a plugin's AsyncIterable to the port, never more items than the host has credited. */
  stream(request: StreamRequest): Promise<void> {
    return this.#resources.run(request.method, () => this.#pump(request));
  }

  async #pump({ id, method, args, port, credit: initial, json }: StreamRequest): Promise<void> {
    const controller = this.#calls.begin(id, 'stream', method);
    let credit = initial;
    let wake: (() => void) | undefined;
    port.on('message', (msg: StreamControl) => {
      if (msg.type === 'credit') credit += msg.n;
      else this.#calls.cancel(id);
      wake?.();
    });
    const post = (msg: StreamMessage) => port.postMessage(msg);
    try {
      const iterable = this.#method(method).apply(this.#plugin, this.#arguments(method, args, controller.signal)) as AsyncIterable<unknown>;
      if (
        typeof iterable?.[Symbol.asyncIterator] !== 'function' &&
        typeof (iterable as unknown as Iterable<unknown>)?.[Symbol.iterator] !== 'function'
      ) {
        throw new NotImplementedError(`${method}() must return an AsyncIterable, got ${kindOf(iterable)}`);
      }
      for await (const value of iterable) {
        while (credit <= 0 && !controller.signal.aborted) await new Promise<void>((r) => (wake = r));
        if (controller.signal.aborted) break;
        credit--;
        const refused = wireError(method, 'yielded an item', value);
        if (refused) throw refused;
        post(json ? { type: 'item', json: toJson(method, value) } : { type: 'item', value });
      }
      if (!controller.signal.aborted) post({ type: 'end' });
    } catch (err) {
      if (!controller.signal.aborted) post({ type: 'error', error: toErrorData(err) });
    } finally {
      port.close();
      this.#calls.delete(id);
    }
  }

  /** What only the worker can see: unsettled calls and streams, and the thread's active resources. */
  diagnostics(): WorkerDiagnostics {
    return {
      inFlight: this.#calls.inFlight(),
      resources: this.#resources.count(),
      resourcesBeforeImport: this.#beforeImport,
      timersTracked: this.#resources.timersTracked,
      timers: this.#resources.timers(),
    };
  }

  #method(name: string): (...args: unknown[]) => unknown {
    if (!this.#plugin) throw new PluginShutdownError('the plugin is not loaded');
    const fn = this.#plugin[name];
    if (typeof fn !== 'function') throw new NotImplementedError(`the plugin does not implement ${name}()`);
    return fn as (...args: unknown[]) => unknown;
  }

  /** The contract's layout (shared/method-args.ts): every declared argument, then the signal. */
  #arguments(method: string, args: readonly unknown[], signal: AbortSignal): unknown[] {
    return callArguments(this.#type, method, args, signal);
  }

  #send(msg: WorkerMessage): void {
    this.#control?.postMessage(msg);
  }
}

function methodsOf(plugin: object): string[] {
  const names = new Set<string>();
  for (let o: object | null = plugin; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const key of Object.getOwnPropertyNames(o)) {
      if (key !== 'constructor' && typeof (plugin as Record<string, unknown>)[key] === 'function') names.add(key);
    }
  }
  return [...names].sort();
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/** An item of a JSON stream as text; `undefined` is sent as null, which the host's checks reject. */
function toJson(method: string, value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch (err) {
    throw new PluginError(`${method}() yielded an item that is not JSON: ${(err as Error).message}`);
  }
}
