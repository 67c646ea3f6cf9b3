/**
 * Our arm: the benchmark plugin found by the real discovery and hosted by a real PluginInstance,
 * built the way PluginLoader builds one (default supervision, no config).
 */
import { fillSupervision } from '../plugin-loader/agent-config.js';
import { discover, type PluginCandidate } from '../plugin-loader/discovery.js';
import { PluginInstance } from '../plugin-loader/plugin-instance.js';
import { benchPluginDir, benchPluginName } from './paths.js';

/** The benchmark plugin as discovery sees it (built-ins left out). */
export async function findBenchPlugin(): Promise<PluginCandidate> {
  const found = await discover({ pluginDir: benchPluginDir, builtinDirs: [] });
  const candidate = found.plugins.find((p) => p.name === benchPluginName);
  if (candidate) return candidate;
  const skipped = found.skipped.find((s) => s.name === benchPluginName);
  throw new Error(`benchmark plugin not found in ${benchPluginDir}${skipped ? `: ${skipped.reason}` : ''}`);
}

export function hostPlugin(candidate: PluginCandidate, dataDir: string): PluginInstance {
  return new PluginInstance({
    manifest: candidate.manifest,
    entry: candidate.entry,
    apiVersion: candidate.apiVersion,
    config: undefined,
    dataDir,
    supervision: fillSupervision(),
  });
}

/** start() never rejects (a plugin that cannot start is `failed`), so turn failure into an error. */
export async function startPlugin(instance: PluginInstance): Promise<void> {
  await instance.start();
  if (instance.state !== 'running') {
    throw new Error(`plugin "${instance.name}" did not start (${instance.state}): ${instance.lastError?.message ?? 'no error recorded'}`);
  }
}
