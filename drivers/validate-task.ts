/**
 * `taskhost validate --task F`: the task spec's own schema, then its `config` against the
 * schema of the driver it names. Every issue carries its JSON path.
 */
import { InvalidConfigError, TaskhostError, type SchemaIssue } from '../shared/errors.js';
import { closest } from '../shared/schema.js';
import type { DriverManager } from './driver-manager.js';
import { loadTaskSpec, parseDriverConfig } from './prepare-task.js';

export async function validateTaskFile(file: string, manager: DriverManager): Promise<SchemaIssue[]> {
  let spec;
  try {
    spec = await loadTaskSpec(file);
  } catch (err) {
    if (err instanceof InvalidConfigError) return err.errors;
    throw err;
  }
  await manager.start();
  const drivers = manager.health().map((h) => h.name);
  if (!drivers.includes(spec.driver)) {
    const guess = closest(spec.driver, drivers);
    return [
      {
        path: '/driver',
        message: `no driver named "${spec.driver}"${guess ? ` (did you mean "${guess}"?)` : ''}; drivers: ${drivers.join(', ') || 'none'}`,
      },
    ];
  }
  try {
    parseDriverConfig(spec.driver, await manager.taskConfigSchema(spec.driver), spec.config);
    return [];
  } catch (err) {
    if (err instanceof InvalidConfigError) return err.errors;
    if (err instanceof TaskhostError) return [{ path: '/driver', message: `driver "${spec.driver}" is not available: ${err.message}` }];
    throw err;
  }
}
