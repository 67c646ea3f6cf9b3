/**
 * The plugin loader: discovers plugins, negotiates API versions, validates each plugin's config
 * against its own schema, and hosts every enabled plugin in a supervised worker. Its events are
 * what the driver and device managers use to re-initialise a plugin after a restart.
 */
import { EventEmitter } from 'eventemitter3';
import { pino, type Logger } from 'pino';
import {
  type PluginCrashedError,
  PluginNotFoundError,
  type TaskhostError,
  toErrorData,
  type ErrorData,
  type SchemaIssue,
} from '../shared/errors.js';
import type { PluginType } from '../shared/plugin.js';
import { closest, compileSchema, type JsonSchema } from '../shared/schema.js';
import { fillSupervision, type AgentConfig, type PluginEntry } from './agent-config.js';
import { discover, type Discovery, type PluginCandidate, type PluginSource } from './discovery.js';
import { guardedEmit } from './guarded-emit.js';
import { PluginInstance, type PluginState } from './plugin-instance.js';
import type { WorkerProbe } from './protocol.js';

export interface PluginLoaderOptions {
  /** A validated agent config (see parseAgentConfig / loadAgentConfig). */
  config: AgentConfig;
  /** Folders of built-in plugins; defaults to the ones taskhost ships. */
  builtinDirs?: readonly string[];
  /** Plugin folders to load besides the plugin directory, named by path. */
  extraDirs?: readonly string[];
  /**
   * Host only the plugins with these names or of these types (a command that runs one task
   * needs only its driver): the others are discovered and listed but not started.
   */
  only?: { names?: readonly string[]; types?: readonly PluginType[] };
  logger?: Logger;
  /** What the conformance suite asks of every plugin's worker (see WorkerProbe). */
  probe?: WorkerProbe;
}

export interface LoaderEvents {
  started: [name: string];
  crashed: [name: string, error: PluginCrashedError, inFlight: number];
  restarted: [name: string, restarts: number];
  failed: [name: string, error: TaskhostError];
  state: [name: string, state: PluginState];
}

/** One row of `taskhost plugins`: a hosted plugin, or one that was found but not loaded. */
export interface PluginListing {
  name: string;
  type: PluginType | 'unknown';
  version?: string;
  apiVersion?: string;
  source: PluginSource;
  dir: string;
  /** Hosted plugins: their state. Others: `disabled`, `unconfigured` (see needsConfig) or `skipped`. */
  state: PluginState | 'disabled' | 'unconfigured' | 'skipped';
  restarts?: number;
  /** Why it was skipped, or its last error. */
  reason?: string;
  error?: ErrorData;
}

export class PluginLoader extends EventEmitter<LoaderEvents> {
  readonly config: AgentConfig;
  readonly #builtinDirs: readonly string[] | undefined;
  readonly #extraDirs: readonly string[] | undefined;
  readonly #only: PluginLoaderOptions['only'];
  readonly #probe: WorkerProbe | undefined;
  readonly #log: Logger;
  readonly #instances = new Map<string, PluginInstance>();
  readonly #candidates = new Map<string, PluginCandidate>();
  /** Built-ins left unhosted for want of config, with the schema's complaint. */
  readonly #unconfigured = new Map<string, TaskhostError>();
  #discovery: Discovery | undefined;
  #starting: Promise<void> | undefined;
  #problems: SchemaIssue[] = [];
  #closed = false;

  constructor(options: PluginLoaderOptions) {
    super();
    this.config = options.config;
    this.#builtinDirs = options.builtinDirs;
    this.#extraDirs = options.extraDirs;
    this.#only = options.only;
    this.#probe = options.probe;
    this.#log = options.logger ?? pino({ level: options.config.logLevel ?? 'warn' }, pino.destination(2));
  }

  /** Discovers plugins and starts every enabled one; resolves when each is running or failed. */
  start(): Promise<void> {
    this.#starting ??= this.#startAll();
    return this.#starting;
  }

  async #startAll(): Promise<void> {
    const discovery = await this.discover();
    // Closed while discovery read the folders: start nothing, or its worker would outlive close().
    if (this.#closed) return;
    const starts: Promise<void>[] = [];
    const only = this.#only;
    for (const candidate of discovery.plugins) {
      const entry = this.config.plugins[candidate.name];
      if (entry && !entry.enabled) continue;
      if (only && !only.names?.includes(candidate.name) && !only.types?.includes(candidate.type)) continue;
      starts.push(this.#host(candidate).start());
    }
    await Promise.all(starts);
  }

  /** Reads the built-in folders and the plugin directory (cached after the first call). */
  async discover(): Promise<Discovery> {
    if (this.#discovery) return this.#discovery;
    const discovery = await discover({
      pluginDir: this.config.pluginDir,
      builtinDirs: this.#builtinDirs,
      extraDirs: this.#extraDirs,
      replaceBuiltins: Object.keys(this.config.plugins).filter((name) => this.config.plugins[name]?.replaceBuiltin === true),
    });
    this.#discovery = discovery;
    if (discovery.pluginDirMissing) this.#log.debug({ pluginDir: this.config.pluginDir }, 'plugin directory does not exist');
    for (const s of discovery.skipped) this.#log.warn({ plugin: s.name, dir: s.dir, code: s.code }, `plugin skipped: ${s.reason}`);
    for (const c of discovery.plugins) this.#candidates.set(c.name, c);
    this.#problems = unknownPluginNames(this.config, discovery);
    for (const p of this.#problems) this.#log.warn({ path: p.path }, p.message);
    return discovery;
  }

  /** Config entries that name no discovered plugin (with the closest name, when there is one). */
  get problems(): readonly SchemaIssue[] {
    return this.#problems;
  }

  /** The hosted plugin with this name. */
  get(name: string): PluginInstance {
    const instance = this.#instances.get(name);
    if (instance) return instance;
    const known = [...this.#instances.keys()];
    const guess = closest(name, known);
    throw new PluginNotFoundError(
      `no plugin named "${name}" is loaded${guess ? ` (did you mean "${guess}"?)` : known.length ? ` (loaded: ${known.join(', ')})` : ''}`,
    );
  }

  /** Hosted plugins, optionally of one type. */
  instances(type?: PluginType): PluginInstance[] {
    return [...this.#instances.values()].filter((i) => type === undefined || i.status().type === type);
  }

  /** Every plugin found, hosted or not, sorted by type then name. */
  list(): PluginListing[] {
    const rows: PluginListing[] = [];
    for (const c of this.#candidates.values()) {
      const instance = this.#instances.get(c.name);
      const unconfigured = this.#unconfigured.get(c.name);
      const row: PluginListing = {
        name: c.name,
        type: c.type,
        version: c.version,
        apiVersion: c.apiVersion,
        source: c.source,
        dir: c.dir,
        state: instance ? instance.state : unconfigured ? 'unconfigured' : 'disabled',
      };
      if (instance) {
        row.restarts = instance.restarts;
        const err = instance.lastError;
        if (err) {
          row.error = toErrorData(err);
          row.reason = err.message;
        }
      } else if (unconfigured) {
        row.reason = `needs config, and the agent config has none for it: ${unconfigured.message}`;
      } else row.reason = 'disabled in the agent config';
      rows.push(row);
    }
    for (const s of this.#discovery?.skipped ?? []) {
      rows.push({ name: s.name, type: 'unknown', source: s.source, dir: s.dir, state: 'skipped', reason: s.reason });
    }
    return rows.sort((a, b) => a.type.localeCompare(b.type) || a.name.localeCompare(b.name));
  }

  /** Shuts every plugin down (shutdown() within its deadline, then terminate). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#instances.values()].map((i) => i.close()));
    this.#log.flush?.();
  }

  #host(candidate: PluginCandidate): PluginInstance {
    const entry = this.config.plugins[candidate.name];
    const instance = new PluginInstance({
      manifest: candidate.manifest,
      entry: candidate.entry,
      apiVersion: candidate.apiVersion,
      config: entry?.config,
      dataDir: this.config.dataDir,
      supervision: fillSupervision(this.config.supervision, entry?.supervision),
      ...(this.#probe ? { probe: this.#probe } : {}),
    });
    const name = candidate.name;
    const log = this.#log.child({ plugin: name });
    const unconfigured = () => needsConfig(candidate, entry, instance.configSchema);
    instance.on('state', (state) => {
      if (state !== 'failed' || !unconfigured()) guardedEmit(this, this.#log, 'state', name, state);
    });
    instance.on('started', () => {
      log.info({ apiVersion: candidate.apiVersion, source: candidate.source }, 'plugin started');
      guardedEmit(this, this.#log, 'started', name);
    });
    instance.on('crashed', (error, inFlight) => {
      log.warn({ err: toErrorData(error), inFlight }, `plugin crashed: ${error.message}`);
      guardedEmit(this, this.#log, 'crashed', name, error, inFlight);
    });
    instance.on('restarted', (restarts) => {
      log.info({ restarts }, 'plugin restarted');
      guardedEmit(this, this.#log, 'restarted', name, restarts);
    });
    instance.on('failed', (error) => {
      if (unconfigured()) {
        log.debug({ err: toErrorData(error) }, 'built-in plugin not hosted: it needs config');
        this.#instances.delete(name);
        this.#unconfigured.set(name, error);
        return;
      }
      log.error({ err: toErrorData(error) }, `plugin failed: ${error.message}`);
      guardedEmit(this, this.#log, 'failed', name, error);
    });
    instance.on('output', (stream, line) => log.info({ stream }, line));
    instance.on('unsettled', (method, kind, cancelledMs) => {
      log.warn(
        { method, kind, cancelledMs },
        `${method}() was cancelled ${(cancelledMs / 1000).toFixed(1)}s ago and the plugin has not settled it: it ignores its AbortSignal (pass the signal on, or listen for its 'abort' event); reported once per method`,
      );
    });
    this.#instances.set(name, instance);
    return instance;
  }
}

/**
 * Whether a plugin is left unhosted because it needs config that nobody gave it: a built-in (which
 * nobody asked for) without an agent config entry, whose config schema rejects an empty config. A
 * plugin in the plugin directory fails instead: someone installed it, so it is a mistake to report.
 */
export function needsConfig(
  candidate: Pick<PluginCandidate, 'source'>,
  entry: PluginEntry | undefined,
  schema: JsonSchema | null,
): boolean {
  if (candidate.source !== 'builtin' || entry !== undefined || schema === null) return false;
  try {
    return !compileSchema(schema)({}).ok;
  } catch {
    return false; // a schema that does not compile is the plugin's failure to report, not a want of config
  }
}

function unknownPluginNames(config: AgentConfig, discovery: Discovery): SchemaIssue[] {
  const known = [...discovery.plugins.map((p) => p.name)];
  const skipped = new Map(discovery.skipped.map((s) => [s.name, s]));
  const issues: SchemaIssue[] = [];
  for (const name of Object.keys(config.plugins)) {
    if (known.includes(name)) continue;
    const s = skipped.get(name);
    if (s) {
      issues.push({ path: `/plugins/${name}`, message: `plugin "${name}" was found but skipped: ${s.reason}` });
      continue;
    }
    const guess = closest(name, known);
    issues.push({
      path: `/plugins/${name}`,
      message: `no plugin named "${name}"${guess ? ` (did you mean "${guess}"?)` : ''}; found: ${known.join(', ') || 'none'}`,
    });
  }
  return issues;
}
