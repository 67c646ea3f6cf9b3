/**
 * Serves one taskhost device group to a kubelet as one extended resource (the Kubernetes device
 * plugin API v1beta1), and keeps it registered: serve the DevicePlugin service on our own socket
 * in the kubelet's directory, then Register (the kubelet dials back before it answers), then
 * watch the directory. A kubelet that restarts clears the directory (our socket goes) and makes
 * a new kubelet.sock; either sign makes us serve on a fresh socket and register again. While
 * kubelet.sock is missing or refuses, registration is retried with backoff, woken early by any
 * change in the directory.
 */
import { watch, type FSWatcher } from 'node:fs';
import { stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { EventEmitter } from 'eventemitter3';
import type { Logger } from 'pino';
import { backoff } from '../../plugin-loader/backoff.js';
import { closingController, pause } from '../../shared/pause.js';
import { loadDevicePluginApi } from './device-plugin-api.js';
import { apiVersion, kubeletSocketName, type RegisterRequest } from './device-plugin-messages.js';
import { devicePluginOptions, devicePluginService } from './device-plugin-service.js';
import { registerWithKubelet } from './register-with-kubelet.js';
import { pluginSocketName } from './resource-name.js';
import type { ResourceDevices } from './resource-devices.js';

export interface KubeletBridgeOptions {
  devices: ResourceDevices;
  /** The kubelet's device plugin directory (absolute), where kubelet.sock is. */
  kubeletDir: string;
  logger: Logger;
  /** How often the directory is looked at, besides inotify's word (default 1000 ms). */
  pollMs?: number;
  /** First and longest wait between registration attempts (default 500 ms and 10 s). */
  retryMs?: [number, number];
  /** Deadline of one Register call, the kubelet's dial-back included (default 30 s). */
  registerTimeoutMs?: number;
}

export interface KubeletBridgeEvents {
  /** The kubelet accepted a registration; `count` is 1 at first, then one more per re-registration. */
  registered: [count: number];
}

/** Which file a path is, so a file removed and made again under the same name is told apart. */
interface FileId {
  dev: number;
  ino: number;
  birthtimeMs: number;
}

export class KubeletBridge extends EventEmitter<KubeletBridgeEvents> {
  /** Our socket's file name, as sent in Register (the kubelet joins it to its directory). */
  readonly endpoint: string;
  readonly socketPath: string;
  readonly kubeletSocket: string;
  readonly #devices: ResourceDevices;
  readonly #dir: string;
  readonly #log: Logger;
  readonly #pollMs: number;
  readonly #retryMs: [number, number];
  readonly #registerTimeoutMs: number;
  readonly #closing = closingController();
  #server: Server | undefined;
  #socketId: FileId | undefined;
  #loop: Promise<void> | undefined;
  #registrations = 0;

  constructor(options: KubeletBridgeOptions) {
    super();
    this.#devices = options.devices;
    this.#dir = options.kubeletDir;
    this.#log = options.logger;
    this.#pollMs = options.pollMs ?? 1_000;
    this.#retryMs = options.retryMs ?? [500, 10_000];
    this.#registerTimeoutMs = options.registerTimeoutMs ?? 30_000;
    this.endpoint = pluginSocketName(options.devices.resource);
    this.socketPath = path.join(this.#dir, this.endpoint);
    this.kubeletSocket = path.join(this.#dir, kubeletSocketName);
    // A unix socket path longer than this cannot be bound (sun_path is 108 bytes with its NUL).
    if (Buffer.byteLength(this.socketPath) > 107) {
      throw new RangeError(
        `the plugin socket path ${this.socketPath} is longer than 107 bytes; use a shorter --kubelet-dir or resource name`,
      );
    }
  }

  /** How many times the kubelet has accepted our registration. */
  get registrations(): number {
    return this.#registrations;
  }

  /** Starts serving and registering; runs until close(). */
  start(): void {
    this.#loop ??= this.#run().catch((err: unknown) => this.#log.error({ err }, `kubelet bridge stopped: ${(err as Error).message}`));
  }

  /** Stops: no more registering, every stream ended, our socket removed. Idempotent. */
  async close(): Promise<void> {
    this.#closing.abort();
    await this.#loop;
    await this.#stopServing();
  }

  async #run(): Promise<void> {
    const signal = this.#closing.signal;
    while (!signal.aborted) {
      const kubelet = await this.#register(signal);
      if (!kubelet) return;
      const why = await this.#waitForRestart(kubelet, signal);
      if (!why) return;
      this.#log.warn({ resource: this.#devices.resource }, `${why}: serving on a fresh socket and registering again`);
      // The old kubelet's streams end with the old server; the new kubelet opens its own.
      await this.#stopServing();
    }
  }

  /** Serves, then registers until the kubelet accepts; the kubelet.sock it accepted on, or undefined once closing. */
  async #register(signal: AbortSignal): Promise<FileId | undefined> {
    let lastProblem = '';
    for (let attempt = 0; !signal.aborted; attempt++) {
      let problem: string;
      try {
        await this.#ensureServing();
        const kubelet = await fileId(this.kubeletSocket);
        if (kubelet) {
          await registerWithKubelet(this.kubeletSocket, this.#request(), this.#registerTimeoutMs);
          this.#registrations++;
          this.#log.info(
            { resource: this.#devices.resource, endpoint: this.endpoint },
            `registered ${this.#devices.resource} (${this.#devices.group}) with the kubelet at ${this.kubeletSocket}, endpoint ${this.endpoint}`,
          );
          this.emit('registered', this.#registrations);
          return kubelet;
        }
        problem = `waiting for the kubelet: no ${this.kubeletSocket} yet`;
      } catch (err) {
        problem = `registration failed: ${(err as Error).message}`;
      }
      if (signal.aborted) return undefined;
      const waitMs = backoff(this.#retryMs[0], this.#retryMs[1], attempt);
      // The same trouble again is news only for whoever debugs.
      if (problem === lastProblem) this.#log.debug(problem);
      else this.#log.warn(`${problem} (retrying with backoff)`);
      lastProblem = problem;
      await pause(waitMs, signal, (wake) => this.#watchDir(wake));
    }
    return undefined;
  }

  /** Resolves with why we must register again, or undefined once closing. */
  async #waitForRestart(kubelet: FileId, signal: AbortSignal): Promise<string | undefined> {
    while (!signal.aborted) {
      await pause(this.#pollMs, signal, (wake) => this.#watchDir(wake));
      if (signal.aborted) return undefined;
      const [ours, theirs] = await Promise.all([fileId(this.socketPath), fileId(this.kubeletSocket)]);
      if (!sameFile(ours, this.#socketId)) return `our socket ${this.socketPath} is gone (the kubelet restarted and cleared its directory)`;
      if (!theirs) return `${this.kubeletSocket} is gone (the kubelet stopped)`;
      if (!sameFile(theirs, kubelet)) return `${this.kubeletSocket} was made again (the kubelet restarted)`;
    }
    return undefined;
  }

  /** Serves on our socket unless we already do on the very file at that path. */
  async #ensureServing(): Promise<void> {
    if (this.#server && sameFile(await fileId(this.socketPath), this.#socketId)) return;
    await this.#stopServing();
    // A socket file left by a process gone would make the bind fail.
    await unlink(this.socketPath).catch(() => undefined);
    const server = new Server();
    server.addService(loadDevicePluginApi().DevicePlugin.service, devicePluginService(this.#devices, this.#log));
    try {
      await new Promise<void>((resolve, reject) =>
        server.bindAsync(`unix:${this.socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
      );
    } catch (err) {
      server.forceShutdown();
      throw new Error(
        `cannot serve on ${this.socketPath}: ${(err as Error).message} (is ${this.#dir} the kubelet's device plugin directory? --kubelet-dir)`,
        {
          cause: err,
        },
      );
    }
    this.#server = server;
    this.#socketId = await fileId(this.socketPath);
    this.#log.info(`serving the device plugin API on ${this.socketPath}`);
  }

  async #stopServing(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    // Ends every call, ListAndWatch streams included; closing the listener removes its socket file.
    server.forceShutdown();
    if (this.#socketId && sameFile(await fileId(this.socketPath), this.#socketId)) await unlink(this.socketPath).catch(() => undefined);
    this.#socketId = undefined;
  }

  #request(): RegisterRequest {
    return { version: apiVersion, endpoint: this.endpoint, resource_name: this.#devices.resource, options: devicePluginOptions };
  }

  /** Wakes on any change in the kubelet's directory; nothing when it cannot be watched (polling still runs). */
  #watchDir(wake: () => void): () => void {
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(this.#dir, { persistent: false }, wake);
      watcher.on('error', wake);
    } catch {
      return () => undefined;
    }
    return () => watcher.close();
  }
}

async function fileId(file: string): Promise<FileId | undefined> {
  const info = await stat(file).catch(() => undefined);
  return info && { dev: info.dev, ino: info.ino, birthtimeMs: info.birthtimeMs };
}

function sameFile(a: FileId | undefined, b: FileId | undefined): boolean {
  return a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino && a.birthtimeMs === b.birthtimeMs;
}
