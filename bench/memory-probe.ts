/**
 * Memory added per plugin, measured in a fresh process so the benchmark's own heap does not
 * count. Usage: node --expose-gc dist/bench/memory-probe.js <ours|peer> <plugins>
 *
 *   ours: K PluginInstances (K worker threads) in this process.
 *   peer: K gRPC plugin processes plus K client channels in this process.
 *
 * Both arms load their libraries before the baseline, start K plugins, wait, call each once and
 * measure again. Prints one JSON line (MemoryProbeResult) on stdout.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findBenchPlugin, hostPlugin, startPlugin } from './bench-plugin.js';
import { GrpcPluginClient } from './grpc-plugin-client.js';
import { readProcessMemory, type ProcessMemory } from './process-memory.js';

export type MemoryArm = 'ours' | 'peer';

export interface MemoryProbeResult {
  arm: MemoryArm;
  plugins: number;
  /** This process before starting any plugin. */
  before: ProcessMemory;
  /** This process with the plugins running. */
  after: ProcessMemory;
  /** Each plugin process (peer arm only). */
  children: ProcessMemory[];
}

/** Long enough for start-up garbage to be collected and lazy initialisation to finish. */
const settleMs = 1000;
const taskId = 'c0ffee00-0000-4000-8000-000000000042';

const [arm, count] = [process.argv[2], Number(process.argv[3])];
if ((arm !== 'ours' && arm !== 'peer') || !Number.isInteger(count) || count < 1) {
  throw new Error('usage: memory-probe.js <ours|peer> <plugins>');
}
const candidate = await findBenchPlugin();

async function measure(): Promise<ProcessMemory> {
  globalThis.gc?.();
  return readProcessMemory();
}

let result: MemoryProbeResult;
if (arm === 'ours') {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'taskhost-bench-'));
  const before = await measure();
  const instances = Array.from({ length: count }, () => hostPlugin(candidate, dataDir));
  try {
    await Promise.all(instances.map(startPlugin));
    await sleep(settleMs);
    await Promise.all(instances.map((i) => i.call('inspectTask', [taskId])));
    result = { arm, plugins: count, before, after: await measure(), children: [] };
  } finally {
    await Promise.all(instances.map((i) => i.close()));
    await rm(dataDir, { recursive: true, force: true });
  }
} else {
  const before = await measure();
  const launching = Array.from({ length: count }, () => GrpcPluginClient.launch({ entry: candidate.entry, methods: ['inspectTask'] }));
  const settled = await Promise.allSettled(launching);
  const clients = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  try {
    const failure = settled.find((s) => s.status === 'rejected');
    if (failure) throw failure.reason;
    await sleep(settleMs);
    await Promise.all(clients.map((c) => c.call('inspectTask', [taskId])));
    const after = await measure();
    const children = await Promise.all(clients.map((c) => readProcessMemory(c.child.pid!)));
    result = { arm, plugins: count, before, after, children };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}
process.stdout.write(`${JSON.stringify(result)}\n`);
