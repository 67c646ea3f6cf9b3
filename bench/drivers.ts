/**
 * npm run bench:drivers: what taskhost costs and what it survives, for task drivers.
 *
 *   1. task start to exit on raw_exec through the DriverManager (prepare, start, wait, destroy)
 *      against spawning the same command with child_process directly: serial latency with the
 *      phases split out, and throughput with 1 and 8 tasks in flight;
 *   2. the crash drill: 100 mock tasks with a waitTask open on each, the mock driver's worker
 *      killed; every task must be recovered and every waiter must get its own task's exit.
 *
 * There is no target for the ratios: they are reported as they are. The drill prints PASS or
 * MISS, and a MISS never fails the run (exit 0). Errors do (exit 1; 2 for bad flags).
 */
import { existsSync } from 'node:fs';
import { integerFlag, parseBenchFlags, runBenchmark } from './flags.js';
import { runCrashDrill, type CrashDrillResult } from './crash-drill.js';
import {
  renderDriversReport,
  type DrillSummary,
  type DriversBenchReport,
  type DriversSettings,
  type LifecycleReport,
  type ThroughputReport,
} from './drivers-report.js';
import { describeEnvironment } from './environment.js';
import { measureHostFloors, type HostFloors } from './measure-host-floors.js';
import {
  lifecycleArms,
  measureTaskLifecycles,
  measureTaskThroughput,
  type LifecycleArms,
  type LifecycleSamples,
  type TaskCommand,
} from './measure-task-lifecycles.js';
import { bootstrapQuantileRatios, quantile, sortedCopy, summarize, type Summary } from './stats.js';
import { startTaskHost, type TaskHost } from './task-host.js';

const usage = `Usage: node dist/bench/drivers.js [options]   (or: npm run bench:drivers -- [options])

  --runs N           measured task lifecycles per arm and command   (default 500)
  --warmup N         discarded warm-up lifecycles per arm           (default 20)
  --concurrency L    tasks in flight for throughput, comma list     (default 1,8)
  --throughput-ms N  measured throughput time per arm and level, ms (default 2000)
  --drills N         crash drills                                   (default 3)
  --quick            small counts for a smoke test (explicit flags still win)
  --json             print one JSON document instead of the tables
  --help`;

/** Fast restarts, so the drill measures recovery rather than the default 250 ms backoff. */
const drillSupervision = { restartBackoff: '50ms', maxRestartBackoff: '1s' };

const fullSettings: DriversSettings = {
  runs: 500,
  warmup: 20,
  concurrency: [1, 8],
  throughputMs: 2_000,
  floorSamples: 200,
  drills: 3,
  drillTasks: 100,
  // Long enough that the worker is back well before the first task ends, short enough that
  // three drills take about 15 s.
  drillRunForMs: 3_000,
  drillRunForStepMs: 10,
  drillGraceMs: 30_000,
  drillSupervision,
  quick: false,
};

const quickSettings: DriversSettings = {
  ...fullSettings,
  runs: 20,
  warmup: 3,
  throughputMs: 300,
  floorSamples: 20,
  drills: 1,
  drillRunForMs: 1_500,
  drillRunForStepMs: 5,
  drillGraceMs: 10_000,
  quick: true,
};

/** The first is measured for throughput too; /bin/true only where it exists. */
const commands: TaskCommand[] = [
  { command: '/bin/sh', args: ['-c', ':'] },
  ...(existsSync('/bin/true') ? [{ command: '/bin/true', args: [] }] : []),
];

const bootstrapRounds = 2_000;

function parseSettings(argv: string[]): { settings: DriversSettings; json: boolean } | undefined {
  const flags = parseBenchFlags(argv, usage, ['runs', 'warmup', 'concurrency', 'throughput-ms', 'drills']);
  if (!flags) return undefined;
  const { values } = flags;
  const base = flags.quick ? quickSettings : fullSettings;
  const int = integerFlag;
  const concurrency =
    values.concurrency === undefined
      ? base.concurrency
      : values.concurrency.split(',').map((part) => int('concurrency', part.trim(), 0, 1));
  return {
    settings: {
      ...base,
      runs: int('runs', values.runs, base.runs, 1),
      warmup: int('warmup', values.warmup, base.warmup, 0),
      concurrency,
      throughputMs: int('throughput-ms', values['throughput-ms'], base.throughputMs, 50),
      drills: int('drills', values.drills, base.drills, 0),
    },
    json: flags.json,
  };
}

function progress(message: string): void {
  process.stderr.write(`[bench:drivers] ${message}\n`);
}

function summarizeAll<K extends string>(samples: Record<K, number[]>): Record<K, Summary> {
  return Object.fromEntries(Object.entries<number[]>(samples).map(([key, values]) => [key, summarize(values)])) as Record<K, Summary>;
}

function lifecycleReport(command: string, samples: LifecycleSamples): LifecycleReport {
  const ours = summarizeAll(samples.ours);
  const peer = summarizeAll(samples.peer);
  const [ci50, ci99] = bootstrapQuantileRatios(samples.ours.total, samples.peer.total, [0.5, 0.99], bootstrapRounds);
  return {
    command,
    ours,
    peer,
    ratios: [
      { name: 'lifecycle p50, ours ÷ peer', value: ours.total.p50 / peer.total.p50, ci: ci50! },
      { name: 'lifecycle p99, ours ÷ peer', value: ours.total.p99 / peer.total.p99, ci: ci99! },
    ],
    addedMs: { p50: ours.total.p50 - peer.total.p50, mean: ours.total.mean - peer.total.mean },
  };
}

async function benchLifecycles(
  settings: DriversSettings,
): Promise<{ lifecycle: LifecycleReport[]; throughput: ThroughputReport[]; floors: HostFloors }> {
  // Default supervision: the overhead a task pays on a host as it is normally configured.
  const host: TaskHost = await startTaskHost({ drivers: ['raw_exec'] });
  try {
    const lifecycle: LifecycleReport[] = [];
    const armsByCommand: LifecycleArms[] = [];
    for (const command of commands) {
      const arms = await lifecycleArms(host, command);
      armsByCommand.push(arms);
      progress(`lifecycle ${arms.label}: 2 arms x (${settings.warmup} warm-up + ${settings.runs} runs)`);
      lifecycle.push(lifecycleReport(arms.label, await measureTaskLifecycles(host, arms, settings)));
    }
    progress(`floors: plugin call round trip and /proc walk, ${settings.floorSamples} each`);
    const floors = await measureHostFloors(host, settings.floorSamples);
    // Throughput after every serial measurement, so that its bursts of concurrent tasks (and
    // the garbage they leave) land in none of them.
    const throughput: ThroughputReport[] = [];
    const arms = armsByCommand[0]!;
    for (const concurrency of settings.concurrency) {
      progress(`throughput ${arms.label}: ${concurrency} in flight, ${settings.throughputMs} ms per arm`);
      const measured = await measureTaskThroughput(host, arms, {
        concurrency,
        durationMs: settings.throughputMs,
        blockMs: Math.min(250, settings.throughputMs),
      });
      throughput.push({ concurrency, ...measured });
    }
    return { lifecycle, throughput, floors };
  } finally {
    await host.close();
  }
}

async function benchDrills(settings: DriversSettings): Promise<CrashDrillResult[]> {
  const results: CrashDrillResult[] = [];
  for (let i = 0; i < settings.drills; i++) {
    progress(`crash drill ${i + 1}/${settings.drills}: ${settings.drillTasks} mock tasks, kill the mock worker`);
    results.push(
      await runCrashDrill({
        tasks: settings.drillTasks,
        runForMs: settings.drillRunForMs,
        runForStepMs: settings.drillRunForStepMs,
        supervision: settings.drillSupervision,
        graceMs: settings.drillGraceMs,
      }),
    );
  }
  return results;
}

/** Median of the values that exist (a drill that never recovered everything has no time). */
function median(values: (number | undefined)[]): number {
  return quantile(sortedCopy(values.filter((v): v is number => v !== undefined)), 0.5);
}

function summarizeDrills(drills: CrashDrillResult[]): DrillSummary | undefined {
  if (drills.length === 0) return undefined;
  return {
    restartedMs: median(drills.map((d) => d.restartedMs)),
    allRecoveredMs: median(drills.map((d) => d.allRecoveredMs)),
    allSettledMs: median(drills.map((d) => d.allSettledMs)),
    verdict: drills.every((d) => d.verdict === 'PASS') ? 'PASS' : 'MISS',
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  const parsed = parseSettings(process.argv.slice(2));
  if (!parsed) return;
  const { settings, json } = parsed;
  const environment = describeEnvironment();
  const { lifecycle, throughput, floors } = await benchLifecycles(settings);
  const drills = await benchDrills(settings);
  const report: DriversBenchReport = {
    environment,
    settings,
    lifecycle,
    floors,
    throughput,
    drills,
    drillSummary: summarizeDrills(drills),
    elapsedSeconds: (performance.now() - started) / 1000,
  };
  process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : `${renderDriversReport(report)}\n`);
}

runBenchmark('bench:drivers', usage, main);
