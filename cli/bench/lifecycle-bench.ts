/**
 * `taskhost bench`: container lifecycles after bucketbench. The same lifecycle (create+start,
 * pause/unpause where the arm can, stop, wait, remove) through the taskhost Docker driver, the
 * raw Engine API and the `docker` CLI, interleaved in one run, with per-operation statistics,
 * lifecycles per second at a concurrency, and the host's event-loop delay while it works.
 */
import { execFile } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { summarize, type Summary } from '../../bench/stats.js';
import type { DriverManager } from '../../drivers/driver-manager.js';
import { parseTaskSpec } from '../../drivers/prepare-task.js';
import { EngineApi } from './engine-api.js';

const run = promisify(execFile);

export const operations = ['create+start', 'pause', 'unpause', 'stop', 'wait', 'remove'] as const;
export type Operation = (typeof operations)[number];
/** What every arm does, so lifecycle totals compare like with like. */
const common: readonly Operation[] = ['create+start', 'stop', 'wait', 'remove'];

/** A container that exits at once on SIGTERM (busybox sh runs a trap only between commands). */
const command = ['sh', '-c', "trap 'exit 0' TERM; while :; do sleep 1 & wait; done"];
const label = 'taskhost-bench=lifecycle';

export interface LifecycleArm {
  readonly name: string;
  readonly operations: readonly Operation[];
  lifecycle(index: number): Promise<Partial<Record<Operation, number>>>;
  close(): Promise<void>;
}

async function timed<T>(into: Partial<Record<Operation, number>>, op: Operation, work: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const value = await work();
  into[op] = performance.now() - t0;
  return value;
}

/** The taskhost Docker driver through the host: what an agent using taskhost pays. */
export function driverArm(manager: DriverManager, image: string): LifecycleArm {
  return {
    name: 'taskhost',
    operations: common,
    async lifecycle(index) {
      const t: Partial<Record<Operation, number>> = {};
      const spec = parseTaskSpec({
        name: `bench-${index}`,
        driver: 'docker',
        config: { image, command: command[0], args: command.slice(1), networkMode: 'none', labels: { 'taskhost-bench': 'lifecycle' } },
        killTimeout: '10s',
      });
      const id = await timed(t, 'create+start', async () => {
        const task = await manager.prepare(spec);
        await manager.startTask(task);
        return task.id;
      });
      await timed(t, 'stop', () => manager.stopTask(id, 10_000));
      await timed(t, 'wait', () => manager.waitTask(id));
      await timed(t, 'remove', () => manager.destroyTask(id, true));
      return t;
    },
    async close() {},
  };
}

/** The raw Engine API: the floor. */
export function engineApiArm(image: string, socketPath?: string): LifecycleArm {
  const api = new EngineApi(socketPath);
  return {
    name: 'engine-api',
    operations,
    async lifecycle() {
      const t: Partial<Record<Operation, number>> = {};
      const { Id: id } = await timed(t, 'create+start', async () => {
        const created = await api.request<{ Id: string }>('POST', '/containers/create', {
          Image: image,
          Cmd: command,
          Labels: { 'taskhost-bench': 'lifecycle' },
          HostConfig: { NetworkMode: 'none' },
        });
        await api.request('POST', `/containers/${created.Id}/start`);
        return created;
      });
      await timed(t, 'pause', () => api.request('POST', `/containers/${id}/pause`));
      await timed(t, 'unpause', () => api.request('POST', `/containers/${id}/unpause`));
      await timed(t, 'stop', () => api.request('POST', `/containers/${id}/stop?t=10`));
      await timed(t, 'wait', () => api.request('POST', `/containers/${id}/wait`));
      await timed(t, 'remove', () => api.request('DELETE', `/containers/${id}?force=true`));
      return t;
    },
    async close() {
      api.close();
    },
  };
}

/** The docker CLI, as bucketbench's DockerCLI driver runs it. */
export function dockerCliArm(image: string): LifecycleArm {
  const docker = (...args: string[]) => run('docker', args).then((r) => r.stdout.trim());
  return {
    name: 'docker-cli',
    operations,
    async lifecycle() {
      const t: Partial<Record<Operation, number>> = {};
      const id = await timed(t, 'create+start', () => docker('run', '-d', '--network', 'none', '--label', label, image, ...command));
      await timed(t, 'pause', () => docker('pause', id));
      await timed(t, 'unpause', () => docker('unpause', id));
      await timed(t, 'stop', () => docker('stop', '-t', '10', id));
      await timed(t, 'wait', () => docker('wait', id));
      await timed(t, 'remove', () => docker('rm', '-f', id));
      return t;
    },
    async close() {},
  };
}

export interface ArmResult {
  name: string;
  /** Per operation, over the serial lifecycles. */
  operations: Partial<Record<Operation, Summary>>;
  /** create+start + stop + wait + remove, per lifecycle. */
  lifecycle: Summary;
  /** Lifecycles per second with `concurrency` in flight. */
  throughput: number;
  /** The host's event-loop delay p99 (ms) during the throughput run. */
  eventLoopP99Ms: number;
  errors: number;
}

export interface BenchOptions {
  lifecycles: number;
  concurrency: number;
  warmup: number;
  onProgress?: (message: string) => void;
}

/** Runs the serial phase interleaved (arm by arm per lifecycle), then each arm's throughput phase. */
export async function runLifecycleBench(arms: LifecycleArm[], options: BenchOptions): Promise<ArmResult[]> {
  const samples = new Map(arms.map((a) => [a.name, [] as Partial<Record<Operation, number>>[]]));
  const errors = new Map(arms.map((a) => [a.name, 0]));
  const attempt = async (arm: LifecycleArm, i: number) => {
    try {
      return await arm.lifecycle(i);
    } catch (err) {
      errors.set(arm.name, errors.get(arm.name)! + 1);
      options.onProgress?.(`${arm.name}: lifecycle ${i} failed: ${(err as Error).message}`);
      return undefined;
    }
  };
  for (let i = 0; i < options.warmup; i++) for (const arm of arms) await attempt(arm, -1 - i);
  for (let i = 0; i < options.lifecycles; i++) {
    for (const arm of rotate(arms, i)) {
      const t = await attempt(arm, i);
      if (t) samples.get(arm.name)!.push(t);
    }
    if ((i + 1) % 10 === 0) options.onProgress?.(`serial: ${i + 1}/${options.lifecycles} lifecycles per arm`);
  }
  const results: ArmResult[] = [];
  for (const arm of arms) {
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: options.concurrency }, async () => {
        while (next < options.lifecycles) await attempt(arm, 10_000 + next++);
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    delay.disable();
    options.onProgress?.(`concurrency ${options.concurrency}: ${arm.name} done`);
    const rows = samples.get(arm.name)!;
    const ops: Partial<Record<Operation, Summary>> = {};
    for (const op of arm.operations) ops[op] = summarize(rows.map((r) => r[op] ?? Number.NaN));
    results.push({
      name: arm.name,
      operations: ops,
      lifecycle: summarize(rows.map((r) => common.reduce((sum, op) => sum + (r[op] ?? 0), 0))),
      throughput: options.lifecycles / seconds,
      eventLoopP99Ms: delay.percentile(99) / 1e6,
      errors: errors.get(arm.name)!,
    });
  }
  return results;
}

/** Removes containers a failed lifecycle left behind. */
export async function removeLeftovers(): Promise<void> {
  const { stdout } = await run('docker', ['ps', '-aq', '--filter', `label=${label}`]);
  const ids = stdout.split('\n').filter(Boolean);
  if (ids.length) await run('docker', ['rm', '-f', ...ids]);
}

function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}
