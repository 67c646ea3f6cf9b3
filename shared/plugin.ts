/**
 * The base contract every plugin implements, driver or device (design.md section 4).
 * Every method may be sync or async. Every method the host calls over the worker protocol gets
 * an AbortSignal after its declared arguments (info and configSchema, asked once at load, get
 * none): cancellation is cooperative, so a plugin should stop work when the signal aborts.
 */
import { Type, type Static } from '@sinclair/typebox';
import { StringEnum, type JsonSchema } from './schema.js';

export type PluginType = 'driver' | 'device';
export const pluginTypes: readonly PluginType[] = ['driver', 'device'];

/** The plugin API versions this host speaks, highest first. */
export const hostApiVersions: readonly string[] = ['1.0'];

type Awaitable<T> = T | Promise<T>;

/** `major.minor`, e.g. "1.0". */
export const ApiVersion = Type.String({ pattern: '^[0-9]+\\.[0-9]+$' });

/** What `info()` returns. It must agree with the manifest in package.json. */
export const PluginInfo = Type.Object({
  type: StringEnum(['driver', 'device']),
  name: Type.String({ minLength: 1, pattern: '^[a-z0-9][a-z0-9_.-]*$' }),
  pluginVersion: Type.String({ minLength: 1 }),
  apiVersions: Type.Array(ApiVersion, { minItems: 1 }),
});
export type PluginInfo = Static<typeof PluginInfo>;

/** The `taskhost` key of a plugin's package.json (contract, design.md section 3). */
export const PluginManifest = Type.Object({
  type: PluginInfo.properties.type,
  name: PluginInfo.properties.name,
  apiVersions: PluginInfo.properties.apiVersions,
});
export type PluginManifest = Static<typeof PluginManifest>;

/** What the host tells a plugin about the agent it runs in. */
export interface AgentInfo {
  /** The agent's data directory (absolute). */
  dataDir: string;
  /** A directory this plugin may keep state in (absolute, created by the host). */
  pluginDataDir: string;
}

export interface SetConfigRequest<C = unknown> {
  /** The API version both sides speak, chosen by the host. */
  apiVersion: string;
  /** The plugin's config from the agent config, validated against `configSchema()`, defaults applied. */
  config: C;
  agent: AgentInfo;
}

export interface BasePlugin<C = unknown> {
  info(): Awaitable<PluginInfo>;
  /** JSON Schema (draft-07) for this plugin's config, or null if it takes none. */
  configSchema(): Awaitable<JsonSchema | null>;
  /** Receives validated config. Called again after every restart; keep it free of side effects. */
  setConfig(request: SetConfigRequest<C>, signal: AbortSignal): Awaitable<void>;
  /** Side effects (clients, background loops) go here, after setConfig. */
  init?(signal: AbortSignal): Awaitable<void>;
  /** Cleanup before the host terminates the worker; the signal aborts at the shutdown deadline. */
  shutdown?(signal: AbortSignal): Awaitable<void>;
}

/** The entry module's default export: the plugin, or a (sync or async) function returning it. */
export type PluginExport<P extends BasePlugin = BasePlugin> = P | (() => Awaitable<P>);

/** Methods every plugin of a type must have; the loader refuses a plugin missing one. */
export const requiredMethods: Record<PluginType, readonly string[]> = {
  driver: ['info', 'configSchema', 'setConfig'],
  device: ['info', 'configSchema', 'setConfig'],
};

/**
 * Identity helper that gives a plugin object its type in an author's editor; it checks the base
 * methods only. defineDriver and defineDevicePlugin check a whole driver or device plugin.
 */
export function definePlugin<P extends BasePlugin>(plugin: P): P {
  return plugin;
}
