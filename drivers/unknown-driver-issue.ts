/**
 * What is wrong with a task's `driver`, if anything, said the same way by `taskhost validate`,
 * `taskhost run` and the driver manager: the drivers the agent has (all of them, also those a
 * command did not start), the closest name, or why the one named is not available.
 */
import type { SchemaIssue } from '../shared/errors.js';
import { closest } from '../shared/schema.js';
import type { PluginLoader } from '../plugin-loader/loader.js';

/** The `/driver` issue of a spec naming `name`, or undefined when the agent has that driver. */
export async function unknownDriverIssue(name: string, loader: PluginLoader): Promise<SchemaIssue | undefined> {
  const discovery = await loader.discover();
  const drivers = discovery.plugins.filter((p) => p.type === 'driver');
  const enabled = drivers.filter((p) => loader.config.plugins[p.name]?.enabled !== false).map((p) => p.name);
  if (enabled.includes(name)) return undefined;
  const at = (message: string): SchemaIssue => ({ path: '/driver', message });
  if (drivers.some((p) => p.name === name)) {
    return at(`driver "${name}" is disabled in the agent config (plugins.${name}.enabled is false); drivers: ${list(enabled)}`);
  }
  const skipped = discovery.skipped.find((s) => s.name === name);
  if (skipped) return at(`driver "${name}" was found but skipped: ${skipped.reason}`);
  const guess = closest(name, enabled);
  return at(`no driver named "${name}"${guess ? ` (did you mean "${guess}"?)` : ''}; drivers: ${list(enabled)}`);
}

function list(names: string[]): string {
  return [...names].sort().join(', ') || 'none';
}
