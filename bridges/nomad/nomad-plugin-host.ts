/**
 * The one taskhost plugin a `taskhost nomad serve` process hosts, through the plugin loader like
 * every plugin. It starts with the config of the agent config file (so Nomad's ConfigSchema,
 * which comes before any SetConfig, can be answered), and starts again with the config Nomad
 * sends in SetConfig when that differs.
 */
import { EventEmitter } from 'eventemitter3';
import type { Logger } from 'pino';
import { PluginNotFoundError, type TaskhostError } from '../../shared/errors.js';
import { closest, type JsonSchema } from '../../shared/schema.js';
import type { AgentConfig } from '../../plugin-loader/agent-config.js';
import type { PluginCandidate } from '../../plugin-loader/discovery.js';
import { PluginLoader } from '../../plugin-loader/loader.js';
import type { PluginInstance } from '../../plugin-loader/plugin-instance.js';

/** SetConfig's nomad_config, as proto-loader gives it. */
export interface NomadConfig {
  driver?: { ClientMaxPort: number; ClientMinPort: number } | null;
}

export interface NomadPluginHostOptions {
  /** The taskhost plugin's name (`raw_exec`, `countdown`, ...). */
  name: string;
  /** The agent config: plugin directory, data directory, supervision, and the plugin's first config. */
  config: AgentConfig;
  logger: Logger;
  /** Folders of built-in plugins (tests); default the ones taskhost ships. */
  builtinDirs?: readonly string[];
}

export interface NomadPluginHostEvents {
  /** The plugin now runs in a new loader (after a SetConfig that changed its config). */
  loader: [loader: PluginLoader];
}

export class NomadPluginHost extends EventEmitter<NomadPluginHostEvents> {
  readonly candidate: PluginCandidate;
  readonly #options: NomadPluginHostOptions;
  #loader: PluginLoader;
  /** Settles when the current loader has started (its plugin running or failed). */
  #started: Promise<void>;
  #configured = false;
  #nomadConfig: NomadConfig = {};
  #closed = false;

  private constructor(options: NomadPluginHostOptions, loader: PluginLoader, candidate: PluginCandidate) {
    super();
    this.#options = options;
    this.#loader = loader;
    this.candidate = candidate;
    this.#started = loader.start();
  }

  /** Finds the plugin and starts it with the agent config's config for it. */
  static async open(options: NomadPluginHostOptions): Promise<NomadPluginHost> {
    const loader = hostLoader(options, options.config.plugins[options.name]?.config);
    const discovery = await loader.discover();
    const candidate = discovery.plugins.find((p) => p.name === options.name);
    if (!candidate) {
      await loader.close();
      const skipped = discovery.skipped.find((s) => s.name === options.name);
      if (skipped) throw new PluginNotFoundError(`plugin "${options.name}" was found in ${skipped.dir} but skipped: ${skipped.reason}`);
      const known = discovery.plugins.map((p) => p.name);
      const guess = closest(options.name, known);
      throw new PluginNotFoundError(
        `no plugin named "${options.name}"${guess ? ` (did you mean "${guess}"?)` : ''}; found: ${known.join(', ') || 'none'} ` +
          `(plugin dir: ${options.config.pluginDir}; set it with --plugin-dir or the agent config's pluginDir)`,
      );
    }
    return new NomadPluginHost(options, loader, candidate);
  }

  get name(): string {
    return this.candidate.name;
  }

  /** The loader the plugin runs in now; a SetConfig that changes the config replaces it (see the `loader` event). */
  get loader(): PluginLoader {
    return this.#loader;
  }

  /** Whether Nomad has sent its config (SetConfig) yet. */
  get configured(): boolean {
    return this.#configured;
  }

  /** What Nomad's client told the plugin about itself in SetConfig (ports for drivers). */
  get nomadConfig(): NomadConfig {
    return this.#nomadConfig;
  }

  /** The plugin once it runs; rejects with its error when it failed (a config it refused, say). */
  async ready(signal?: AbortSignal): Promise<PluginInstance> {
    for (;;) {
      const loader = this.#loader;
      await this.#started;
      if (loader !== this.#loader) continue; // replaced while we waited
      const instance = loader.get(this.name);
      await instance.ready(signal);
      return instance;
    }
  }

  /** The plugin's config schema; null when it takes no config. Throws when the plugin could not even be loaded. */
  async configSchema(): Promise<JsonSchema | null> {
    await this.#started;
    const instance = this.#loader.get(this.name);
    const error = instance.state === 'failed' ? instance.lastError : undefined;
    // A config it refused still told us its schema; a plugin that did not load did not.
    if (error && instance.configSchema === null && !isConfigError(error)) throw error;
    return instance.configSchema;
  }

  /**
   * Runs the plugin with `config` (already validated against its schema). Keeps the running
   * plugin when its config is the same: Nomad sends SetConfig on each of its several launches.
   */
  async setConfig(config: unknown, nomadConfig: NomadConfig = {}): Promise<void> {
    this.#nomadConfig = nomadConfig;
    this.#configured = true;
    await this.#started;
    const current = this.#loader.get(this.name);
    if (current.state === 'running' && JSON.stringify(current.config) === JSON.stringify(config)) return;
    const old = this.#loader;
    const loader = hostLoader(this.#options, config);
    this.#loader = loader;
    this.#started = old.close().then(() => loader.start());
    await this.#started;
    if (this.#closed) return;
    this.emit('loader', loader);
    const instance = loader.get(this.name);
    if (instance.state === 'failed') throw instance.lastError ?? new Error(`plugin "${this.name}" failed to start`);
  }

  /** Shuts the plugin down (its shutdown() hook, then its worker). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#started.catch(() => undefined);
    await this.#loader.close();
  }
}

function hostLoader(options: NomadPluginHostOptions, config: unknown): PluginLoader {
  const entry = options.config.plugins[options.name];
  // An entry, even without config: a built-in that needs config is then reported as failed
  // (with its schema known) instead of being left out.
  const plugins = { ...options.config.plugins, [options.name]: { ...entry, enabled: true, ...(config === undefined ? {} : { config }) } };
  if (config === undefined) delete plugins[options.name]!.config;
  return new PluginLoader({
    config: { ...options.config, plugins },
    logger: options.logger,
    only: { names: [options.name] },
    ...(options.builtinDirs ? { builtinDirs: options.builtinDirs } : {}),
  });
}

function isConfigError(error: TaskhostError): boolean {
  return error.code === 'INVALID_CONFIG';
}
