/**
 * The agent config file (contract, design.md section 6): where plugins live, where state goes,
 * each plugin's config, and how plugins are supervised.
 */
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Duration, parseDuration } from '../shared/duration.js';
import { guardInput, readJsonFile } from '../shared/input-guard.js';
import { compileSchema, parseWith, StringEnum } from '../shared/schema.js';

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** How a plugin is supervised. Every key is optional; defaults are below. */
export const Supervision = Type.Object(
  {
    heapMB: Type.Optional(Type.Integer({ minimum: 16, description: 'V8 heap limit of the plugin worker, MiB' })),
    livenessInterval: Type.Optional(Duration({ description: 'how often the worker is pinged' })),
    livenessTimeout: Type.Optional(Duration({ description: 'a worker that does not answer a ping this long is restarted' })),
    startTimeout: Type.Optional(Duration({ description: 'load, setConfig and init must finish within this' })),
    restartBackoff: Type.Optional(Duration({ description: 'first restart delay; doubles per crash, with jitter' })),
    maxRestartBackoff: Type.Optional(Duration({ description: 'cap on the restart delay' })),
    crashLoopRestarts: Type.Optional(Type.Integer({ minimum: 1, description: 'crashes within crashLoopWindow that trip the breaker' })),
    crashLoopWindow: Type.Optional(Duration()),
    breakerCooldown: Type.Optional(Duration({ description: 'after this, a failed plugin is tried once more; "0s" never' })),
    shutdownTimeout: Type.Optional(Duration({ description: 'deadline for shutdown() before the worker is terminated' })),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, description: 'calls and streams in flight per plugin' })),
  },
  { additionalProperties: false },
);
export type Supervision = Static<typeof Supervision>;

export const PluginEntry = Type.Object(
  {
    enabled: Type.Boolean({ default: true }),
    config: Type.Optional(Type.Unknown({ description: "validated against the plugin's own configSchema()" })),
    supervision: Type.Optional(Supervision),
    replaceBuiltin: Type.Optional(
      Type.Boolean({
        description:
          'a plugin of the plugin directory with the name of a built-in replaces the built-in only when this is true; otherwise it is skipped',
      }),
    ),
  },
  { additionalProperties: false },
);
export type PluginEntry = Static<typeof PluginEntry>;

export const AgentConfig = Type.Object(
  {
    pluginDir: Type.String({ default: './plugins', minLength: 1 }),
    dataDir: Type.String({ default: './.taskhost', minLength: 1 }),
    logLevel: Type.Optional(StringEnum(logLevels)),
    supervision: Type.Optional(Supervision),
    hostEnvAllow: Type.Array(Type.String({ minLength: 1, pattern: '^[A-Za-z0-9_.]+\\*?$' }), {
      default: ['PATH', 'LANG', 'LC_*', 'TZ'],
      description: "the agent's environment variables tasks may see (exact names, or PREFIX_*); nothing else passes",
    }),
    plugins: Type.Record(Type.String(), PluginEntry, { default: {} }),
  },
  { additionalProperties: false },
);
export type AgentConfig = Static<typeof AgentConfig>;

/** Supervision with every default resolved and durations in milliseconds. */
export interface FilledSupervision {
  heapMB: number;
  livenessIntervalMs: number;
  livenessTimeoutMs: number;
  startTimeoutMs: number;
  restartBackoffMs: number;
  maxRestartBackoffMs: number;
  crashLoopRestarts: number;
  crashLoopWindowMs: number;
  breakerCooldownMs: number;
  shutdownTimeoutMs: number;
  concurrency: number;
}

export const defaultSupervision: Readonly<FilledSupervision> = Object.freeze({
  heapMB: 512,
  livenessIntervalMs: 5_000,
  livenessTimeoutMs: 10_000,
  startTimeoutMs: 30_000,
  restartBackoffMs: 250,
  maxRestartBackoffMs: 30_000,
  crashLoopRestarts: 5,
  crashLoopWindowMs: 60_000,
  breakerCooldownMs: 300_000,
  shutdownTimeoutMs: 5_000,
  concurrency: 4096,
});

/** Agent-wide supervision, then the plugin's own, over the defaults. */
export function fillSupervision(...layers: (Supervision | undefined)[]): FilledSupervision {
  const out = { ...defaultSupervision };
  for (const s of layers) {
    if (!s) continue;
    if (s.heapMB !== undefined) out.heapMB = s.heapMB;
    if (s.concurrency !== undefined) out.concurrency = s.concurrency;
    if (s.crashLoopRestarts !== undefined) out.crashLoopRestarts = s.crashLoopRestarts;
    if (s.livenessInterval) out.livenessIntervalMs = parseDuration(s.livenessInterval);
    if (s.livenessTimeout) out.livenessTimeoutMs = parseDuration(s.livenessTimeout);
    if (s.startTimeout) out.startTimeoutMs = parseDuration(s.startTimeout);
    if (s.restartBackoff) out.restartBackoffMs = parseDuration(s.restartBackoff);
    if (s.maxRestartBackoff) out.maxRestartBackoffMs = parseDuration(s.maxRestartBackoff);
    if (s.crashLoopWindow) out.crashLoopWindowMs = parseDuration(s.crashLoopWindow);
    if (s.breakerCooldown) out.breakerCooldownMs = parseDuration(s.breakerCooldown);
    if (s.shutdownTimeout) out.shutdownTimeoutMs = parseDuration(s.shutdownTimeout);
  }
  return out;
}

const validateAgentConfig = compileSchema<AgentConfig>(AgentConfig);

/** Validates an agent config document; throws InvalidConfigError with every path at fault. */
export function parseAgentConfig(data: unknown, source = 'agent config'): AgentConfig {
  guardInput(data, source);
  return parseWith(validateAgentConfig, data ?? {}, source);
}

/**
 * Reads (at most inputLimits.maxFileBytes) and validates an agent config file. Relative `pluginDir` and `dataDir` are resolved
 * against the file's folder, so a config means the same thing from any working directory.
 */
export async function loadAgentConfig(file: string): Promise<AgentConfig> {
  const config = parseAgentConfig(await readJsonFile(file), file);
  const base = path.dirname(path.resolve(file));
  return { ...config, pluginDir: path.resolve(base, config.pluginDir), dataDir: path.resolve(base, config.dataDir) };
}
