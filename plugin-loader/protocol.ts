/**
 * The wire protocol between the host and a plugin's worker, in one place.
 * Three piscina handlers run in the worker: `session` (one long-lived task per worker that
 * carries control messages and whose rejection is how the host learns the worker died),
 * `call` (request/response) and `stream` (items over a transferred MessagePort with credits).
 */
import type { MessagePort } from 'node:worker_threads';
import type { ErrorData } from '../shared/errors.js';
import type { PluginInfo, PluginManifest } from '../shared/plugin.js';
import type { JsonSchema } from '../shared/schema.js';

/** workerData of every plugin worker. */
export interface WorkerBoot {
  /** file: URL of the worker runtime module. */
  runtime: string;
  /** Register a TypeScript loader first (running from sources, not from dist/). */
  typescript: boolean;
  /** file: URL of the resolve hooks that give plugins `taskhost/sdk` (sdk-resolve-hooks.mjs). */
  resolveHooks: string;
  /** file: URL of the SDK entry those hooks resolve `taskhost/sdk` to. */
  sdk: string;
  /** Path of the host's package.json: its modules are left alone. */
  hostManifest: string;
  /** The host's version (from that package.json, read once by the host), quoted in errors. */
  hostVersion: string | undefined;
  /** file: URL of the plugin's entry module. */
  entry: string;
  /** A built-in plugin (drivers/*, devices/* of the host): no resolve hooks. */
  builtin: boolean;
}

export type Envelope<T> = { ok: true; value: T } | { ok: false; error: ErrorData };

/** What the conformance suite asks of a plugin's worker, beyond hosting it. */
export interface WorkerProbe {
  /** Extra environment for the worker thread, and so for every process the plugin spawns. */
  env?: Record<string, string>;
  /** Count unref'd timers too, from before the plugin is imported (see SessionRequest.trackTimers). */
  trackTimers?: boolean;
}

/** The `session` task: opened first, settles when the host sends `close`. */
export interface SessionRequest {
  port: MessagePort;
  /**
   * Count the worker's timers, unref'd ones too, from before the plugin is imported on
   * (async_hooks: it slows promises, so only for the conformance suite). Without it,
   * diagnostics see only the timers that keep the thread alive.
   */
  trackTimers?: boolean;
}

/** The `load` call: import the plugin module and describe it. */
export interface LoadRequest {
  entry: string;
  manifest: PluginManifest;
}

/** What the plugin said about itself, as it said it: the host verifies it (verify-plugin.ts). */
export interface LoadResult {
  info: PluginInfo;
  configSchema: JsonSchema | null;
  /** Names of the methods the plugin implements. */
  methods: string[];
}

export interface CallRequest {
  id: number;
  method: string;
  args: unknown[];
}

export interface StreamRequest extends CallRequest {
  port: MessagePort;
  /** Items the worker may send before it waits for more credit. */
  credit: number;
  /** Send each item as JSON text (see StreamOptions.json). */
  json?: boolean;
}

/** Host to worker, on the session port. */
export type ControlMessage =
  { type: 'ping'; seq: number } | { type: 'cancel'; id: number } | { type: 'diagnose'; seq: number } | { type: 'close' };

/** Worker to host, on the session port. */
export type WorkerMessage =
  | { type: 'pong'; seq: number }
  | { type: 'output'; stream: 'stdout' | 'stderr'; text: string }
  | { type: 'diagnostics'; seq: number; report: WorkerDiagnostics };

/** A call or stream the plugin has not settled yet. */
export interface InFlight {
  id: number;
  kind: 'call' | 'stream';
  method: string;
  /** How long ago the host cancelled it, when it did: a plugin that honours its signal settles at once. */
  cancelledMs?: number;
}

/** What only the worker can see: the answer to a `diagnose` message. */
export interface WorkerDiagnostics {
  /** Calls and streams in the plugin's hands, oldest first. */
  inFlight: InFlight[];
  /** The thread's active resources (process.getActiveResourcesInfo()) counted by kind; only referenced timers among them. */
  resources: Record<string, number>;
  /** The same, taken just before the plugin module was imported. */
  resourcesBeforeImport: Record<string, number>;
  /** Whether `timers` lists every pending timer (SessionRequest.trackTimers). */
  timersTracked: boolean;
  /** Every pending timer created since the session opened, unref'd ones too, when tracked. */
  timers: PendingTimer[];
}

/** A timer that has not fired (or been cleared) yet. */
export interface PendingTimer {
  /** The plugin call or stream whose work created it (`startTask`), "" for none (the module's import). */
  origin: string;
  /** A setInterval, rather than a setTimeout. */
  repeats: boolean;
  delayMs: number;
  /** How long ago it was created: a setTimeout loop keeps making young ones. */
  ageMs: number;
  /** Whether it keeps the thread alive (unref'd ones do not, and still hold what they hold). */
  ref: boolean;
}

/** Host to worker, on a stream's port. */
export type StreamControl = { type: 'credit'; n: number } | { type: 'cancel' };

/** Worker to host, on a stream's port. The last message is `end` or `error`. */
export type StreamMessage =
  { type: 'item'; value: unknown } | { type: 'item'; json: string } | { type: 'end' } | { type: 'error'; error: ErrorData };
