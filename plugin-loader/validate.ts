/**
 * `taskhost validate --config F`: the agent config's own schema, then every enabled plugin's
 * config against the schema that plugin declares. Every issue carries its JSON path.
 */
import type { Logger } from 'pino';
import { InvalidConfigError, PluginCrashedError, type SchemaIssue, type TaskhostError } from '../shared/errors.js';
import { loadAgentConfig, fillSupervision, type AgentConfig } from './agent-config.js';
import { needsConfig, PluginLoader } from './loader.js';
import { validatePluginConfig } from './plugin-instance.js';
import { PluginWorker } from './plugin-worker.js';

export interface ConfigReport {
  /** Errors: the config would not work as written. */
  issues: SchemaIssue[];
  /** Plugins that could not be loaded to check their config, without the config naming them. */
  warnings: SchemaIssue[];
  /** Plugins whose config was checked against their schema. */
  checked: string[];
}

export async function validateAgentConfigFile(
  file: string,
  options: { builtinDirs?: readonly string[]; pluginDir?: string; logger?: Logger } = {},
): Promise<ConfigReport> {
  let config: AgentConfig;
  try {
    config = await loadAgentConfig(file);
  } catch (err) {
    if (err instanceof InvalidConfigError) return { issues: err.errors, warnings: [], checked: [] };
    throw err;
  }
  if (options.pluginDir) config = { ...config, pluginDir: options.pluginDir };
  const loader = new PluginLoader({
    config,
    ...(options.builtinDirs ? { builtinDirs: options.builtinDirs } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const discovery = await loader.discover();
  const report: ConfigReport = { issues: [...loader.problems], warnings: [], checked: [] };
  await Promise.all(
    discovery.plugins.map(async (candidate) => {
      const entry = config.plugins[candidate.name];
      if (entry && !entry.enabled) return;
      const at = `/plugins/${candidate.name}`;
      const supervision = fillSupervision(config.supervision, entry?.supervision);
      const worker = new PluginWorker({
        name: candidate.name,
        entry: candidate.entry,
        manifest: candidate.manifest,
        heapMB: supervision.heapMB,
        concurrency: 4,
      });
      const timer = setTimeout(() => {
        const ms = supervision.startTimeoutMs;
        void worker.kill(new PluginCrashedError(`plugin "${candidate.name}" did not load within ${ms}ms`));
      }, supervision.startTimeoutMs);
      try {
        const loaded = await worker.load();
        if (needsConfig(candidate, entry, loaded.configSchema)) return; // not hosted, so nothing to check
        report.checked.push(candidate.name);
        validatePluginConfig(candidate.name, loaded.configSchema, entry?.config);
      } catch (err) {
        if (err instanceof InvalidConfigError) {
          report.issues.push(...err.errors.map((i) => ({ path: `${at}/config${i.path}`, message: i.message })));
        } else {
          const message = `cannot load plugin "${candidate.name}" to check its config: ${(err as TaskhostError).message}`;
          (entry ? report.issues : report.warnings).push({ path: at, message });
        }
      } finally {
        clearTimeout(timer);
        await worker.close();
      }
    }),
  );
  report.checked.sort();
  report.issues.sort((a, b) => a.path.localeCompare(b.path));
  return report;
}
