/**
 * Memory added per plugin, from memory-probe.ts runs (one fresh process per run, arms
 * alternating). Per run: ours = (process after - before) / K; peer = (process after - before +
 * sum over the K plugin processes) / K. The reported figure is the median over runs.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { MemoryArm, MemoryProbeResult } from './memory-probe.js';
import { siblingFile } from './paths.js';
import { addMemory, subtractMemory, type ProcessMemory } from './process-memory.js';
import { quantile, sortedCopy } from './stats.js';

const run = promisify(execFile);

export interface MemoryFigures {
  /** Median bytes added per plugin. */
  perPlugin: Record<MemoryArm, ProcessMemory>;
  runs: MemoryProbeResult[];
}

export async function measureMemory(options: { plugins: number; runs: number }): Promise<MemoryFigures> {
  const runs: MemoryProbeResult[] = [];
  for (let i = 0; i < options.runs; i++) {
    const order: MemoryArm[] = i % 2 === 0 ? ['ours', 'peer'] : ['peer', 'ours'];
    for (const arm of order) runs.push(await probe(arm, options.plugins));
  }
  const median = (arm: MemoryArm): ProcessMemory => {
    const each = runs.filter((r) => r.arm === arm).map(perPlugin);
    const mid = (pick: (m: ProcessMemory) => number) => quantile(sortedCopy(each.map(pick)), 0.5);
    return { pss: mid((m) => m.pss), uss: mid((m) => m.uss), rss: mid((m) => m.rss) };
  };
  return { perPlugin: { ours: median('ours'), peer: median('peer') }, runs };
}

function perPlugin(result: MemoryProbeResult): ProcessMemory {
  const added = result.children.reduce(addMemory, subtractMemory(result.after, result.before));
  return { pss: added.pss / result.plugins, uss: added.uss / result.plugins, rss: added.rss / result.plugins };
}

async function probe(arm: MemoryArm, plugins: number): Promise<MemoryProbeResult> {
  const { stdout } = await run(process.execPath, ['--expose-gc', siblingFile('memory-probe'), arm, String(plugins)], {
    timeout: 120_000,
  });
  return JSON.parse(stdout) as MemoryProbeResult;
}
