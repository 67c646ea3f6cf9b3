/**
 * What each running task costs the agent process, and how that grows with the tasks: docker
 * tasks (their logs followed by the Docker driver, into the task's files) at rising counts, and
 * raw_exec tasks on a second agent, each task with a stats stream open (the stats agent,
 * bench/stats-agent.ts: the agent streams no stats by itself). Memory (RSS, PSS) and CPU time
 * come from /proc/<agent pid>: the Engine, containerd's shims and the tasks are not in them.
 *
 * The peer is a design with a helper process per task (Nomad's docker_logger and logmon): the
 * smallest Node helper that follows one container's logs (bench/log-follower.ts), measured on
 * some of the running containers; its memory is what such a design adds per task.
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentClient } from './agent-client.js';
import { AgentProcess, writeAgentConfig, type AgentDriver } from './agent-process.js';
import type { BenchCleanup } from './bench-cleanup.js';
import { helloImage } from './measure-submit-latency.js';
import { siblingFile } from './paths.js';
import { processCpuMs } from './process-cpu.js';
import { readProcessMemory } from './process-memory.js';
import { quantile, sortedCopy } from './stats.js';

export interface ScaleSettings {
  /** Running docker tasks to measure at, ascending (tasks are added between levels). */
  dockerLevels: number[];
  /** Running raw_exec tasks to measure at, on their own agent. */
  rawLevels: number[];
  /** Measured window per level, ms (memory sampled every 500 ms, CPU over the whole window). */
  windowMs: number;
  /** The stats streams' interval, ms. */
  statsIntervalMs: number;
  /** Helper processes measured for the peer. */
  helpers: number;
  /** Submissions in flight while tasks are added. */
  submitConcurrency: number;
}

export interface WindowFigures {
  /** Medians over the window's samples, bytes. */
  rss: number;
  pss: number;
  /** CPU time over the window, percent of one core. */
  cpuPercent: number;
}

/** A level's figures with a stats stream per task; `withoutStats` before those were opened. */
export interface ScaleLevel extends WindowFigures {
  tasks: number;
  withoutStats: WindowFigures;
  /** Stats samples the agent received per second over the window (one per task per interval when all stream). */
  statsPerSecond: number;
  statsErrors: string[];
  /** Seconds it took to add this level's tasks until all ran. */
  addSeconds: number;
  /** Tasks of this level that failed to start (and were replaced), with why. */
  startFailures: string[];
}

export interface ScaleRun {
  driver: 'docker' | 'raw_exec';
  /** The agent with no task (after a warm-up task). */
  baseline: WindowFigures;
  levels: ScaleLevel[];
}

export interface HelperFigures {
  count: number;
  /** Median per helper process, bytes, and its CPU in percent of a core. */
  rss: number;
  pss: number;
  cpuPercent: number;
}

export interface ScaleReport {
  docker?: ScaleRun;
  raw?: ScaleRun;
  helper?: HelperFigures;
}

const progress = (message: string) => process.stderr.write(`[bench:agent] ${message}\n`);

/** A container that prints a line every 5 s: something for the log follower to follow. */
const tickScript = 'while :; do echo tick; sleep 5; done';

function taskSpec(driver: 'docker' | 'raw_exec', i: number): unknown {
  const labels = { bench: 'scale' };
  if (driver === 'docker') {
    return {
      name: `scale-${i}`,
      driver,
      labels,
      killTimeout: '1s',
      config: { image: helloImage, command: 'sh', args: ['-c', tickScript], networkMode: 'none' },
    };
  }
  return { name: `scale-${i}`, driver, labels, killTimeout: '1s', config: { command: 'sleep', args: ['3600'] } };
}

async function measureWindow(pid: number, windowMs: number): Promise<WindowFigures> {
  const cpu0 = await processCpuMs(pid);
  const t0 = performance.now();
  const rss: number[] = [];
  const pss: number[] = [];
  while (performance.now() - t0 < windowMs) {
    await sleep(500);
    const m = await readProcessMemory(pid);
    rss.push(m.rss);
    pss.push(m.pss);
  }
  const cpuPercent = (((await processCpuMs(pid)) - cpu0) / (performance.now() - t0)) * 100;
  return { rss: quantile(sortedCopy(rss), 0.5), pss: quantile(sortedCopy(pss), 0.5), cpuPercent };
}

/** Runs `jobs` with at most `limit` in flight. */
export async function inPool<T>(count: number, limit: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await job(i);
      }
    }),
  );
  return out;
}

/**
 * Submits tasks until `level` of them run. A task that fails to start (on a loaded machine the
 * Engine can take longer than the driver's 30 s call deadline to start a container) is counted
 * in `failures` and replaced; more than a tenth of the level failing, or no progress in 5
 * minutes, ends the benchmark.
 */
async function fillTo(
  client: AgentClient,
  driver: 'docker' | 'raw_exec',
  ids: string[],
  level: number,
  settings: ScaleSettings,
  failures: string[],
  names: { next: number },
): Promise<void> {
  const deadline = performance.now() + 300_000;
  const allowed = failures.length + Math.ceil(level / 10);
  for (;;) {
    const missing = level - ids.length;
    if (missing > 0) {
      ids.push(
        ...(await inPool(missing, settings.submitConcurrency, async () => (await client.submit(taskSpec(driver, names.next++))).id)),
      );
    }
    const byId = new Map((await client.list('labels.bench==scale')).map((t) => [t.id, t]));
    let running = 0;
    for (const id of [...ids]) {
      const record = byId.get(id);
      if (record?.state === 'running') running++;
      else if (record && record.state !== 'pending') {
        failures.push(`${record.name} ${record.state}: ${record.error?.message ?? JSON.stringify(record.exitResult)}`);
        ids.splice(ids.indexOf(id), 1);
      }
    }
    if (failures.length > allowed) throw new Error(`${failures.length} scale tasks failed to start; the last: ${failures.at(-1)}`);
    if (running >= level) return;
    if (performance.now() > deadline) throw new Error(`only ${running} of ${level} scale tasks run after 300 s`);
    await sleep(250);
  }
}

async function runScale(
  cleanup: BenchCleanup,
  driver: 'docker' | 'raw_exec',
  levels: number[],
  settings: ScaleSettings,
  atTop?: (agent: AgentProcess) => Promise<void>,
): Promise<ScaleRun> {
  const drivers: AgentDriver[] = [driver];
  const agent = await AgentProcess.start({ cleanup, configFile: writeAgentConfig(cleanup, `scale-${driver}`, drivers), kind: 'stats' });
  const client = new AgentClient(agent.socket);
  const ids: string[] = [];
  const failures: string[] = [];
  const names = { next: 0 };
  try {
    // One task run to its end first, so the driver's code is loaded and warm in the baseline.
    const warm = await client.submit(
      driver === 'docker'
        ? { name: 'warm', driver, config: { image: helloImage, command: 'true' } }
        : { name: 'warm', driver, config: { command: '/bin/true' } },
    );
    await client.wait(warm.id);
    await sleep(2_000);
    progress(`scale ${driver}: baseline, no task, ${settings.windowMs / 1000} s`);
    const baseline = await measureWindow(agent.pid, settings.windowMs);
    const out: ScaleLevel[] = [];
    for (const level of levels) {
      const started = performance.now();
      const from = ids.length;
      const failed = failures.length;
      progress(`scale ${driver}: adding tasks ${from + 1}-${level}`);
      await fillTo(client, driver, ids, level, settings, failures, names);
      const addSeconds = (performance.now() - started) / 1000;
      // First without stats streams (what the agent does by itself), then with one per task.
      await agent.command({ type: 'stats-stop' });
      await sleep(2_000);
      progress(`scale ${driver}: ${level} running, no stats streams: ${settings.windowMs / 1000} s`);
      const withoutStats = await measureWindow(agent.pid, settings.windowMs);
      await agent.command({ type: 'stats', ids, intervalMs: settings.statsIntervalMs });
      await sleep(Math.max(2_000, 2 * settings.statsIntervalMs));
      await agent.command({ type: 'stats-report' });
      progress(
        `scale ${driver}: ${level} running, a stats stream each (every ${settings.statsIntervalMs} ms): ${settings.windowMs / 1000} s`,
      );
      const windowStart = performance.now();
      const figures = await measureWindow(agent.pid, settings.windowMs);
      const stats = await agent.command({ type: 'stats-report' });
      const seconds = (performance.now() - windowStart) / 1000;
      out.push({
        tasks: level,
        ...figures,
        withoutStats,
        statsPerSecond: stats.samples / seconds,
        statsErrors: stats.errors,
        addSeconds,
        startFailures: failures.slice(failed),
      });
      // The next level's tasks are added with no stream open: 200 containers' stats streams load
      // the Engine (not the agent) enough to slow its container starts on a 2-core machine.
      await agent.command({ type: 'stats-stop' });
    }
    if (atTop) await atTop(agent);
    return { driver, baseline, levels: out };
  } finally {
    progress(`scale ${driver}: stopping ${ids.length} tasks`);
    await agent.command({ type: 'stats-stop' }).catch(() => undefined);
    await inPool(ids.length, 32, (i) => client.stop(ids[i]!).catch(() => undefined));
    await inPool(ids.length, 64, (i) => client.wait(ids[i]!).catch(() => undefined));
    client.close();
    await agent.stop();
    await cleanup.removeContainers();
    await cleanup.killProcessesUnder(agent.dataDir);
  }
}

/** Starts `count` log followers on running containers of the run, measures each, and stops them. */
async function measureHelpers(cleanup: BenchCleanup, count: number, windowMs: number): Promise<HelperFigures> {
  const containers = (await cleanup.docker.listContainers({ filters: { label: [cleanup.label], status: ['running'] } })).slice(0, count);
  const dir = path.join(cleanup.root, 'helpers');
  mkdirSync(dir, { recursive: true });
  const children = containers.map((c, i) =>
    cleanup.track(
      spawn(process.execPath, [siblingFile('log-follower'), c.Id, path.join(dir, `${i}.stdout`), path.join(dir, `${i}.stderr`)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    ),
  );
  try {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve, reject) => {
            child.stdout!.setEncoding('utf8').on('data', (s: string) => s.includes('following') && resolve());
            child.once('exit', (code) => reject(new Error(`a log follower exited (${code}) before following`)));
          }),
      ),
    );
    await sleep(2_000);
    const figures = await Promise.all(children.map((child) => measureWindow(child.pid!, windowMs)));
    const median = (pick: (f: WindowFigures) => number) => quantile(sortedCopy(figures.map(pick)), 0.5);
    return { count: children.length, rss: median((f) => f.rss), pss: median((f) => f.pss), cpuPercent: median((f) => f.cpuPercent) };
  } finally {
    for (const child of children) child.kill('SIGKILL');
  }
}

export async function measureAgentScale(cleanup: BenchCleanup, settings: ScaleSettings): Promise<ScaleReport> {
  const report: ScaleReport = {};
  if (settings.dockerLevels.length) {
    report.docker = await runScale(cleanup, 'docker', settings.dockerLevels, settings, async () => {
      if (settings.helpers === 0) return;
      progress(`scale docker: the peer, ${settings.helpers} log-follower processes on running containers`);
      report.helper = await measureHelpers(cleanup, settings.helpers, settings.windowMs);
    });
  }
  if (settings.rawLevels.length) report.raw = await runScale(cleanup, 'raw_exec', settings.rawLevels, settings);
  return report;
}
