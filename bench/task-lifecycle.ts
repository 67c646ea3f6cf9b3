/**
 * One task's whole user-visible lifecycle through taskhost, timed phase by phase: from "I have a
 * spec" (prepare) to "I have the exit code and it is cleaned up" (destroy).
 */
import type { TaskSpec } from '../shared/driver.js';
import type { TaskHost } from './task-host.js';

/** Milliseconds per phase of DriverManager's lifecycle, and their sum. */
export interface TaskLifecycleTimes {
  prepare: number;
  start: number;
  wait: number;
  destroy: number;
  total: number;
}

export const lifecyclePhases = ['prepare', 'start', 'wait', 'destroy'] as const;

/** Runs the spec's task to its exit and destroys it; rejects unless it exited with code 0. */
export async function runTaskLifecycle(host: TaskHost, spec: TaskSpec): Promise<TaskLifecycleTimes> {
  const { manager } = host;
  const start = performance.now();
  // As `taskhost run` does: the task sees the agent's allowed environment (PATH, LANG, ...).
  const task = await manager.prepare(spec, { hostEnv: process.env, hostEnvAllow: host.config.hostEnvAllow });
  const prepared = performance.now();
  await manager.startTask(task);
  const started = performance.now();
  const result = await manager.waitTask(task.id);
  const exited = performance.now();
  await manager.destroyTask(task.id);
  const destroyed = performance.now();
  if (result.exitCode !== 0 || result.signal !== null) {
    throw new Error(`task ${task.id} exited with ${JSON.stringify(result)}, expected code 0`);
  }
  return {
    prepare: prepared - start,
    start: started - prepared,
    wait: exited - started,
    destroy: destroyed - exited,
    total: destroyed - start,
  };
}
