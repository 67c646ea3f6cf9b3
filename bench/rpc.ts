/**
 * npm run bench:rpc: taskhost's plugin transport against the go-plugin design it replaces
 * (perf-anchors R1 and R2), in one run on one machine, so the ratios mean something even where
 * the absolute numbers do not carry over.
 *
 *   1. call round trip of inspectTask: p50/p99 serial latency and throughput at 16 in flight,
 *      ours vs a grpc-js plugin process on a unix socket, with a bare piscina pool and a raw
 *      Worker as explanatory floors;
 *   2. plugin cold start to first answer;
 *   3. memory added per plugin.
 *
 * Targets are printed as PASS/MISS; a MISS never fails the run (exit 0). Errors do (exit 1;
 * 2 for bad flags).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { integerFlag, parseBenchFlags, runBenchmark } from './flags.js';
import type { PluginCandidate } from '../plugin-loader/discovery.js';
import { BarePiscinaClient } from './bare-piscina-client.js';
import { findBenchPlugin, hostPlugin, startPlugin } from './bench-plugin.js';
import { describeEnvironment } from './environment.js';
import { GrpcPluginClient } from './grpc-plugin-client.js';
import { importPlugin, invoke } from './import-plugin.js';
import { measureLatency, measureThroughput, type CallArm, type Throughput } from './measure-calls.js';
import { measureColdStarts } from './measure-cold-start.js';
import { measureMemory } from './measure-memory.js';
import { canReadProcessMemory } from './process-memory.js';
import { RawWorkerClient } from './raw-worker-client.js';
import { judge, renderReport, type CallArmKey, type MemoryReport, type Ratio, type RpcBenchReport, type Settings } from './report.js';
import { bootstrapQuantileRatios, summarize, type Summary } from './stats.js';

const usage = `Usage: node dist/bench/rpc.js [options]   (or: npm run bench:rpc -- [options])

  --calls N          measured serial calls per arm            (default 20000)
  --block N          calls per interleaved block              (default 200)
  --warmup N         discarded warm-up calls per arm          (default 2000)
  --in-flight N      concurrent calls for throughput          (default 16)
  --throughput-ms N  measured throughput time per arm, ms     (default 3000)
  --cold N           measured cold starts per arm             (default 20)
  --plugins K        plugins per memory probe                 (default 8)
  --memory-runs N    memory probe runs per arm                (default 3)
  --quick            small counts for a smoke test (explicit flags still win)
  --json             print one JSON document instead of the tables
  --help`;

const fullSettings: Settings = {
  calls: 20_000,
  // Small blocks: on a 2-vCPU VM the thread wake-up cost flips between a fast and a slow mode
  // every few tens of milliseconds (other tenants, idle states); blocks of 1000 calls let one
  // arm catch more slow stretches than another by luck, blocks of 200 spread them evenly.
  block: 200,
  warmup: 2_000,
  inFlight: 16,
  throughputMs: 3_000,
  coldStarts: 20,
  coldWarmup: 1,
  plugins: 8,
  memoryRuns: 3,
  quick: false,
};

const quickSettings: Settings = {
  calls: 1_000,
  block: 100,
  warmup: 200,
  inFlight: 16,
  throughputMs: 500,
  coldStarts: 3,
  coldWarmup: 1,
  plugins: 2,
  memoryRuns: 1,
  quick: true,
};

/** Target ratios (perf-anchors section 9, R1 and R2): ours ÷ peer must be at most this. */
const targets = { callLatency: 0.25, callLatencyAspiration: 0.1, coldStart: 0.4, memory: 0.3 };

const taskId = 'c0ffee00-0000-4000-8000-000000000042';
const inspectArgs = [taskId];
/** Bootstrap resamples; the latency ones sort 20k samples each, so keep them few. */
const latencyBootstrapRounds = 300;
const coldBootstrapRounds = 2_000;

function parseSettings(argv: string[]): { settings: Settings; json: boolean } | undefined {
  const flags = parseBenchFlags(argv, usage, ['calls', 'block', 'warmup', 'in-flight', 'throughput-ms', 'cold', 'plugins', 'memory-runs']);
  if (!flags) return undefined;
  const { values } = flags;
  const base = flags.quick ? quickSettings : fullSettings;
  const int = integerFlag;
  const settings: Settings = {
    calls: int('calls', values.calls, base.calls, 1),
    block: int('block', values.block, base.block, 1),
    warmup: int('warmup', values.warmup, base.warmup, 0),
    inFlight: int('in-flight', values['in-flight'], base.inFlight, 1),
    throughputMs: int('throughput-ms', values['throughput-ms'], base.throughputMs, 50),
    coldStarts: int('cold', values.cold, base.coldStarts, 1),
    coldWarmup: base.coldWarmup,
    plugins: int('plugins', values.plugins, base.plugins, 1),
    memoryRuns: int('memory-runs', values['memory-runs'], base.memoryRuns, 1),
    quick: flags.quick,
  };
  return { settings, json: flags.json };
}

function progress(message: string): void {
  process.stderr.write(`[bench:rpc] ${message}\n`);
}

interface ClosableArm extends CallArm {
  readonly key: CallArmKey;
  close(): Promise<void>;
}

/**
 * Starts the four call arms, one at a time, pushing each onto `arms` as soon as it exists so the
 * caller can close whatever did start if a later one fails.
 */
async function startCallArms(candidate: PluginCandidate, dataDir: string, arms: ClosableArm[]): Promise<void> {
  const instance = hostPlugin(candidate, dataDir);
  arms.push({ key: 'ours', call: () => instance.call('inspectTask', inspectArgs), close: () => instance.close() });
  await startPlugin(instance);
  const bare = await BarePiscinaClient.launch(candidate.entry);
  arms.push({ key: 'piscina', call: () => bare.call('inspectTask', inspectArgs), close: () => bare.close() });
  const raw = await RawWorkerClient.launch(candidate.entry);
  arms.push({ key: 'floor', call: () => raw.call('inspectTask', inspectArgs), close: () => raw.close() });
  const grpc = await GrpcPluginClient.launch({ entry: candidate.entry, methods: ['inspectTask'] });
  arms.push({ key: 'peer', call: () => grpc.call('inspectTask', inspectArgs), close: () => grpc.close() });
}

async function benchCalls(
  candidate: PluginCandidate,
  dataDir: string,
  settings: Settings,
  expected: string,
): Promise<{ samples: Map<string, Float64Array>; throughput: Map<string, Throughput> }> {
  const arms: ClosableArm[] = [];
  try {
    await startCallArms(candidate, dataDir, arms);
    for (const arm of arms) {
      const answer = JSON.stringify(await arm.call());
      if (answer !== expected) throw new Error(`arm "${arm.key}" answered ${answer}, expected ${expected}`);
    }
    progress(`call latency: ${arms.length} arms x (${settings.warmup} warm-up + ${settings.calls} calls)`);
    const samples = await measureLatency(arms, settings);
    progress(`call throughput: ${settings.inFlight} in flight, ${settings.throughputMs} ms per arm`);
    const throughput = await measureThroughput(arms, {
      inFlight: settings.inFlight,
      durationMs: settings.throughputMs,
      blockMs: Math.min(250, settings.throughputMs),
    });
    return { samples, throughput };
  } finally {
    await Promise.all(arms.map((arm) => arm.close()));
  }
}

async function benchColdStarts(
  candidate: PluginCandidate,
  dataDir: string,
  settings: Settings,
): Promise<{ ours: number[]; peer: number[] }> {
  progress(`cold starts: ${settings.coldWarmup} warm-up + ${settings.coldStarts} per arm`);
  return measureColdStarts(
    {
      async ours() {
        const start = performance.now();
        const instance = hostPlugin(candidate, dataDir);
        try {
          await startPlugin(instance);
          await instance.call('inspectTask', inspectArgs);
          return performance.now() - start;
        } finally {
          await instance.close();
        }
      },
      async peer() {
        const start = performance.now();
        const client = await GrpcPluginClient.launch({ entry: candidate.entry, methods: ['inspectTask'] });
        try {
          await client.call('inspectTask', inspectArgs);
          return performance.now() - start;
        } finally {
          await client.close();
        }
      },
    },
    { runs: settings.coldStarts, warmup: settings.coldWarmup },
  );
}

async function benchMemory(settings: Settings): Promise<MemoryReport> {
  if (!canReadProcessMemory()) return { skipped: 'needs /proc/<pid>/smaps_rollup (Linux 4.14 or later)' };
  progress(`memory: ${settings.memoryRuns} probe run(s) per arm, ${settings.plugins} plugins each`);
  const { perPlugin, runs } = await measureMemory({ plugins: settings.plugins, runs: settings.memoryRuns });
  return { plugins: settings.plugins, runs: settings.memoryRuns, perPluginBytes: perPlugin, probes: runs };
}

function ratios(
  samples: Map<string, Float64Array>,
  latency: Record<CallArmKey, Summary>,
  throughput: Record<CallArmKey, Throughput>,
  cold: { ours: number[]; peer: number[] },
  memory: MemoryReport,
): Ratio[] {
  const raw = (key: CallArmKey) => samples.get(key)!;
  const [vsPeer50, vsPeer99] = bootstrapQuantileRatios(raw('ours'), raw('peer'), [0.5, 0.99], latencyBootstrapRounds);
  const [vsFloor50, vsFloor99] = bootstrapQuantileRatios(raw('ours'), raw('floor'), [0.5, 0.99], latencyBootstrapRounds);
  const [cold50, cold90] = bootstrapQuantileRatios(cold.ours, cold.peer, [0.5, 0.9], coldBootstrapRounds);
  const { ours, peer, floor } = latency;
  const coldOurs = summarize(cold.ours);
  const coldPeer = summarize(cold.peer);
  const call = { target: targets.callLatency, aspiration: targets.callLatencyAspiration };
  const list: Omit<Ratio, 'verdict'>[] = [
    { name: 'call p50, ours ÷ peer', value: ours.p50 / peer.p50, ci: vsPeer50!, ...call },
    { name: 'call p99, ours ÷ peer', value: ours.p99 / peer.p99, ci: vsPeer99!, ...call },
    { name: 'throughput, ours ÷ peer', value: throughput.ours.perSecond / throughput.peer.perSecond, higherIsBetter: true },
    { name: 'call p50, ours ÷ floor (explanatory)', value: ours.p50 / floor.p50, ci: vsFloor50! },
    { name: 'call p99, ours ÷ floor (explanatory)', value: ours.p99 / floor.p99, ci: vsFloor99! },
    { name: 'cold start median, ours ÷ peer', value: coldOurs.p50 / coldPeer.p50, ci: cold50!, target: targets.coldStart },
    { name: 'cold start p90, ours ÷ peer', value: coldOurs.p90 / coldPeer.p90, ci: cold90! },
  ];
  if (!('skipped' in memory)) {
    const perPlugin = memory.perPluginBytes;
    list.push(
      // The target is defined on RSS added per plugin (perf-anchors.md R2). Pss and Uss are the
      // stricter views: a child process shares most of node's pages, a thread shares them all.
      { name: 'memory per plugin (Rss), ours ÷ peer', value: perPlugin.ours.rss / perPlugin.peer.rss, target: targets.memory },
      { name: 'memory per plugin (Pss), ours ÷ peer', value: perPlugin.ours.pss / perPlugin.peer.pss },
      { name: 'memory per plugin (Uss), ours ÷ peer', value: perPlugin.ours.uss / perPlugin.peer.uss },
    );
  }
  return list.map(judge);
}

function byArm<T>(map: Map<string, T>): Record<CallArmKey, T> {
  return Object.fromEntries(map) as Record<CallArmKey, T>;
}

async function main(): Promise<void> {
  const started = performance.now();
  const parsed = parseSettings(process.argv.slice(2));
  if (!parsed) return;
  const { settings, json } = parsed;
  const environment = describeEnvironment();
  const candidate = await findBenchPlugin();
  // What every arm must answer: the handler called in-process.
  const expected = JSON.stringify(await invoke(await importPlugin(candidate.entry), 'inspectTask', inspectArgs));
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'taskhost-bench-'));
  try {
    const { samples, throughput } = await benchCalls(candidate, dataDir, settings, expected);
    const cold = await benchColdStarts(candidate, dataDir, settings);
    const memory = await benchMemory(settings);
    const latencyUs = byArm(new Map([...samples].map(([key, s]) => [key, summarize(s)])));
    const report: RpcBenchReport = {
      environment,
      settings,
      payloadBytes: Buffer.byteLength(expected),
      latencyUs,
      throughput: byArm(throughput),
      coldStartMs: { ours: summarize(cold.ours), peer: summarize(cold.peer) },
      memory,
      ratios: ratios(samples, latencyUs, byArm(throughput), cold, memory),
      elapsedSeconds: (performance.now() - started) / 1000,
    };
    process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : `${renderReport(report)}\n`);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

runBenchmark('bench:rpc', usage, main);
