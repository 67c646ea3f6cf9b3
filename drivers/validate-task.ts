/**
 * `taskhost validate --task F`: the checks `taskhost run` makes before it starts anything, and
 * nothing more: the task spec's own schema, its driver (named, with a did-you-mean), its
 * `config` against that driver's schema, the environment, and the driver's own policy
 * (validateTask: privileged, volumes, a raw_exec user or cwd...). Only the task's driver is
 * loaded, and nothing is made on disk. Every issue carries its JSON path.
 */
import type { Logger } from 'pino';
import { InvalidConfigError, TaskhostError, type SchemaIssue } from '../shared/errors.js';
import type { AgentConfig } from '../plugin-loader/agent-config.js';
import { PluginLoader } from '../plugin-loader/loader.js';
import { DriverManager } from './driver-manager.js';
import { loadTaskSpec } from './prepare-task.js';

export async function validateTaskFile(file: string, options: { config: AgentConfig; logger?: Logger }): Promise<SchemaIssue[]> {
  let spec;
  try {
    spec = await loadTaskSpec(file);
  } catch (err) {
    if (err instanceof InvalidConfigError) return err.errors;
    throw err;
  }
  const { config, logger } = options;
  const loader = new PluginLoader({ config, only: { names: [spec.driver] }, ...(logger ? { logger } : {}) });
  const manager = new DriverManager({ loader, ...(logger ? { logger } : {}) });
  try {
    await manager.buildTask(spec, { hostEnv: process.env, hostEnvAllow: config.hostEnvAllow });
    return [];
  } catch (err) {
    if (err instanceof InvalidConfigError) return err.errors;
    if (err instanceof TaskhostError) return [{ path: '/driver', message: `driver "${spec.driver}" is not available: ${err.message}` }];
    throw err;
  } finally {
    await manager.close();
    await loader.close();
  }
}
