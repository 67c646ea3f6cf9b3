/**
 * Task start-to-exit through taskhost (raw_exec) against spawning the same command directly:
 * per-run latency with the arms alternating run by run, and throughput with N tasks in flight.
 */
import { parseTaskSpec } from '../drivers/prepare-task.js';
import type { TaskSpec } from '../shared/driver.js';
import { measureThroughput, type Throughput } from './measure-calls.js';
import { spawnTask, type SpawnTaskOptions, type SpawnTaskTimes } from './spawn-task.js';
import { runTaskLifecycle, type TaskLifecycleTimes } from './task-lifecycle.js';
import type { TaskHost } from './task-host.js';

export interface TaskCommand {
  command: string;
  args: string[];
}

/** Milliseconds per run, in the order measured, warm-up runs left out. */
export interface LifecycleSamples {
  ours: Record<keyof TaskLifecycleTimes, number[]>;
  peer: Record<keyof SpawnTaskTimes, number[]>;
}

/** Both arms of one command: ours runs the spec through the host, peer spawns it like raw_exec. */
export interface LifecycleArms {
  /** The command as a shell would show it. */
  label: string;
  spec: TaskSpec;
  peer: SpawnTaskOptions;
}

/**
 * Builds the arms. The peer gets what the host would give the task: the same environment, the
 * task directory as its working directory and the task's two log files (from one prepare).
 */
export async function lifecycleArms(host: TaskHost, { command, args }: TaskCommand): Promise<LifecycleArms> {
  const spec = parseTaskSpec({ name: 'bench', driver: 'raw_exec', config: { command, args } });
  const task = await host.manager.prepare(spec, { hostEnv: process.env, hostEnvAllow: host.config.hostEnvAllow });
  return {
    label: [command, ...args].join(' '),
    spec,
    peer: { command, args, cwd: task.taskDir, env: task.env, stdoutPath: task.stdoutPath, stderrPath: task.stderrPath },
  };
}

export interface LifecycleOptions {
  /** Measured runs per arm. */
  runs: number;
  /** Runs per arm made first and discarded (JIT, the driver's lazily compiled schemas, page cache). */
  warmup: number;
}

/**
 * Serial runs, the arms taking turns one run at a time; the order within each pair flips every
 * pair (AB BA AB ...) so that neither arm always runs right after the other's exit and reaping.
 */
export async function measureTaskLifecycles(host: TaskHost, arms: LifecycleArms, options: LifecycleOptions): Promise<LifecycleSamples> {
  const samples: LifecycleSamples = {
    ours: { prepare: [], start: [], wait: [], destroy: [], total: [] },
    peer: { spawn: [], exit: [], total: [] },
  };
  const runOurs = async (keep: boolean) => record(samples.ours, await runTaskLifecycle(host, arms.spec), keep);
  const runPeer = async (keep: boolean) => record(samples.peer, await spawnTask(arms.peer), keep);
  for (let i = 0; i < options.warmup + options.runs; i++) {
    const keep = i >= options.warmup;
    if (i % 2 === 0) {
      await runOurs(keep);
      await runPeer(keep);
    } else {
      await runPeer(keep);
      await runOurs(keep);
    }
  }
  return samples;
}

export interface TaskThroughputOptions {
  /** Tasks kept in flight. */
  concurrency: number;
  /** Measured time per arm, in ms, in interleaved blocks of `blockMs`. */
  durationMs: number;
  blockMs: number;
}

/** Whole lifecycles per second with `concurrency` lanes, each starting its next task when one ends. */
export async function measureTaskThroughput(
  host: TaskHost,
  arms: LifecycleArms,
  options: TaskThroughputOptions,
): Promise<Record<'ours' | 'peer', Throughput>> {
  const measured = await measureThroughput(
    [
      { key: 'ours', call: () => runTaskLifecycle(host, arms.spec) },
      { key: 'peer', call: () => spawnTask(arms.peer) },
    ],
    { inFlight: options.concurrency, durationMs: options.durationMs, blockMs: options.blockMs },
  );
  return { ours: measured.get('ours')!, peer: measured.get('peer')! };
}

function record<K extends string>(into: Record<K, number[]>, times: Record<K, number>, keep: boolean): void {
  if (!keep) return;
  for (const key of Object.keys(into) as K[]) into[key].push(times[key]);
}
