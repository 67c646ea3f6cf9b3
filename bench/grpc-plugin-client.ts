/**
 * The peer arm: a plugin in its own process, reached over gRPC on a unix socket, the transport
 * go-plugin (and so Nomad) uses on Linux. launch() spawns the process, reads its handshake line
 * and dials; the connection itself opens lazily on the first call, as in grpc-js generally.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { magicCookie, parseHandshake, pluginServiceDefinition } from './grpc-plugin-protocol.js';
import { siblingFile } from './paths.js';

type UnaryMethod = (args: unknown[], callback: (err: grpc.ServiceError | null, value?: unknown) => void) => void;
type StreamMethod = (args: unknown[]) => grpc.ClientReadableStream<unknown>;

export interface GrpcPluginOptions {
  /** file: URL of the plugin's entry module. */
  entry: string;
  /** Methods the client will call. */
  methods: readonly string[];
  /** Those of `methods` that are server streams (see grpc-server.ts). */
  streams?: readonly string[];
  /** Give up if no handshake arrives within this. */
  startTimeoutMs?: number;
}

export class GrpcPluginClient {
  readonly child: ChildProcess;
  readonly #client: grpc.Client;
  readonly #methods: Map<string, UnaryMethod>;
  readonly #streams: Map<string, StreamMethod>;
  readonly #socketPath: string;

  private constructor(child: ChildProcess, target: string, socketPath: string, methods: readonly string[], streams: readonly string[]) {
    this.child = child;
    this.#socketPath = socketPath;
    const Client = grpc.makeGenericClientConstructor(pluginServiceDefinition(methods, streams), 'Plugin');
    const client = new Client(target, grpc.credentials.createInsecure());
    this.#client = client;
    const bound = (m: string) => (client[m] as UnaryMethod & StreamMethod).bind(client);
    this.#methods = new Map(methods.filter((m) => !streams.includes(m)).map((m) => [m, bound(m)]));
    this.#streams = new Map(streams.map((m) => [m, bound(m)]));
  }

  /** Spawns the plugin process and waits for its handshake line. */
  static async launch(options: GrpcPluginOptions): Promise<GrpcPluginClient> {
    const streams = options.streams ?? [];
    const child = spawn(process.execPath, [siblingFile('grpc-server'), options.entry, streams.join(',')], {
      // stdin stays open as the plugin's lifeline; stderr goes straight to ours.
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, [magicCookie.key]: magicCookie.value },
    });
    try {
      const line = await firstLine(child, options.startTimeoutMs ?? 30_000);
      const { target, socketPath } = parseHandshake(line);
      return new GrpcPluginClient(child, target, socketPath, options.methods, streams);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
  }

  call(method: string, args: unknown[]): Promise<unknown> {
    const unary = this.#methods.get(method);
    if (!unary) return Promise.reject(new Error(`${method} is not one of this client's methods`));
    return new Promise((resolve, reject) => unary(args, (err, value) => (err ? reject(err) : resolve(value))));
  }

  /**
   * Opens a server stream; its messages arrive in order. Aborting `signal` cancels the call, and
   * the iteration then ends quietly (a cancel is not an error to the one who asked for it).
   */
  async *stream(method: string, args: unknown[], signal: AbortSignal): AsyncGenerator<unknown> {
    const open = this.#streams.get(method);
    if (!open) throw new Error(`${method} is not one of this client's streams`);
    const call = open(args);
    const cancel = () => call.cancel();
    signal.addEventListener('abort', cancel, { once: true });
    try {
      for await (const item of call) yield item;
    } catch (err) {
      if (!signal.aborted) throw err;
    } finally {
      signal.removeEventListener('abort', cancel);
      call.cancel();
    }
  }

  /** Closes the channel, stops the plugin process and removes its socket. */
  async close(): Promise<void> {
    this.#client.close();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    await rm(this.#socketPath, { force: true });
  }
}

/** The child's first stdout line, or an error if it exits or stays silent first. */
function firstLine(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => settle(new Error(`no plugin handshake within ${timeoutMs}ms`)), timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      settle(new Error(`plugin process exited before its handshake (code ${code}, signal ${signal})`));
    const settle = (result: string | Error) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.close();
      if (typeof result === 'string') resolve(result);
      else reject(result);
    };
    lines.once('line', settle);
    child.once('exit', onExit);
  });
}
