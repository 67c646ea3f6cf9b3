/** Builds supervised instances of the fixture plugins in test/fixtures/plugins. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fillSupervision, type Supervision } from '../../plugin-loader/agent-config.js';
import { discover } from '../../plugin-loader/discovery.js';
import { PluginInstance } from '../../plugin-loader/plugin-instance.js';

export const fixturePluginDir = fileURLToPath(new URL('../fixtures/plugins', import.meta.url));

/**
 * Fast supervision for tests: quick liveness checks and short backoff. The deadlines are wide on
 * purpose: on a machine whose cores are saturated a worker that compiles its plugin from sources
 * can take many seconds to start or to answer a ping, and that must not read as a hung plugin.
 * A test about hangs sets its own short deadline on a plugin that hangs for good.
 */
export const fastSupervision: Supervision = {
  livenessInterval: '100ms',
  livenessTimeout: '60s',
  restartBackoff: '20ms',
  maxRestartBackoff: '100ms',
  startTimeout: '120s',
  shutdownTimeout: '10s',
};

export async function fixtureInstance(
  name: string,
  options: { config?: unknown; supervision?: Supervision } = {},
): Promise<PluginInstance> {
  const { plugins } = await discover({ pluginDir: fixturePluginDir, builtinDirs: [] });
  const candidate = plugins.find((p) => p.name === name);
  if (!candidate) throw new Error(`no fixture plugin ${name}`);
  return new PluginInstance({
    manifest: candidate.manifest,
    entry: candidate.entry,
    apiVersion: candidate.apiVersion,
    config: options.config,
    dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-test-')),
    supervision: fillSupervision(fastSupervision, options.supervision),
  });
}

/** Resolves with the arguments of the next `event` the emitter sends. */
export function next<T extends unknown[] = unknown[]>(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  emitter: { once(event: any, fn: (...args: any[]) => void): unknown },
  event: string,
): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (...args: unknown[]) => resolve(args as T)));
}
