/** The benchmark's findings as one document (printed as JSON with --json) and as text. */
import type { Environment } from './environment.js';
import { formatMiB, formatNumber, formatTable } from './format-table.js';
import type { Throughput } from './measure-calls.js';
import type { MemoryProbeResult } from './memory-probe.js';
import type { ProcessMemory } from './process-memory.js';
import type { Interval, Summary } from './stats.js';

export type CallArmKey = 'ours' | 'piscina' | 'floor' | 'peer';

export const callArmLabels: Record<CallArmKey, string> = {
  ours: 'ours: PluginInstance.call (piscina worker)',
  piscina: 'bare piscina pool, same options',
  floor: 'floor: raw Worker postMessage',
  peer: 'peer: grpc-js, child process, unix socket',
};

export interface Settings {
  /** Measured serial calls per arm, in blocks of `block`, after `warmup` discarded ones. */
  calls: number;
  block: number;
  warmup: number;
  /** Calls in flight and measured milliseconds per arm for throughput. */
  inFlight: number;
  throughputMs: number;
  /** Measured cold starts per arm, after `coldWarmup` discarded ones. */
  coldStarts: number;
  coldWarmup: number;
  /** Plugins per memory probe, and probe runs per arm. */
  plugins: number;
  memoryRuns: number;
  quick: boolean;
}

export interface Ratio {
  name: string;
  /** ours ÷ peer (or ÷ floor); lower is better unless `higherIsBetter`. */
  value: number;
  ci?: Interval;
  /** PASS when value ≤ target. */
  target?: number;
  aspiration?: number;
  verdict?: 'PASS' | 'MISS';
  higherIsBetter?: boolean;
}

export type MemoryReport =
  | { plugins: number; runs: number; perPluginBytes: Record<'ours' | 'peer', ProcessMemory>; probes: MemoryProbeResult[] }
  | { skipped: string };

export interface RpcBenchReport {
  environment: Environment;
  settings: Settings;
  /** Bytes of JSON inspectTask returns. */
  payloadBytes: number;
  latencyUs: Record<CallArmKey, Summary>;
  throughput: Record<CallArmKey, Throughput>;
  coldStartMs: Record<'ours' | 'peer', Summary>;
  memory: MemoryReport;
  ratios: Ratio[];
  /** Seconds the whole benchmark took. */
  elapsedSeconds: number;
}

/** A ratio with its verdict against `target`, when it has one. */
export function judge(ratio: Omit<Ratio, 'verdict'>): Ratio {
  if (ratio.target === undefined) return ratio;
  return { ...ratio, verdict: ratio.value <= ratio.target ? 'PASS' : 'MISS' };
}

export function renderReport(report: RpcBenchReport): string {
  const { environment: env, settings: s } = report;
  const out: string[] = [];
  out.push('taskhost bench:rpc: plugin calls, cold start and memory, taskhost vs a go-plugin-style gRPC peer');
  out.push(
    `${env.node} | ${env.os} | ${env.cpus} x ${env.cpuModel} | ${env.memoryGiB} GiB | load ${env.loadAverage.join(' ')} | ` +
      `piscina ${env.piscina} | @grpc/grpc-js ${env.grpcJs}${s.quick ? ' | QUICK MODE (smoke test, small n)' : ''}`,
  );
  out.push('');

  out.push(
    `1. Call round trip: inspectTask(id) -> ${report.payloadBytes}-byte object. Latency over serial calls, µs ` +
      `(n per arm in ${Math.ceil(s.calls / s.block)} interleaved blocks of ${s.block}, after ${s.warmup} warm-up calls); ` +
      `throughput with ${s.inFlight} in flight for ${s.throughputMs / 1000} s per arm.`,
  );
  const keys = Object.keys(callArmLabels) as CallArmKey[];
  out.push(
    formatTable(
      ['arm', 'n', 'p50', 'p90', 'p99', 'mean', 'max', 'calls/s'],
      keys.map((k) => {
        const l = report.latencyUs[k];
        return [
          callArmLabels[k],
          String(l.n),
          ...[l.p50, l.p90, l.p99, l.mean, l.max].map((v) => formatNumber(v)),
          formatNumber(report.throughput[k].perSecond),
        ];
      }),
    ),
  );
  // Means, not medians: a two-mode latency distribution's medians do not subtract meaningfully.
  const lat = report.latencyUs;
  out.push(
    `   ours by mean = thread hop (floor) ${formatNumber(lat.floor.mean)} + piscina dispatch ${formatNumber(lat.piscina.mean - lat.floor.mean)} ` +
      `+ taskhost protocol ${formatNumber(lat.ours.mean - lat.piscina.mean)} = ${formatNumber(lat.ours.mean)} µs`,
  );
  out.push('');

  out.push(
    `2. Cold start to first answer, ms (${s.coldStarts} per arm, alternating, after ${s.coldWarmup} warm-up per arm). ` +
      'ours: new PluginInstance + start() + call; peer: spawn + handshake line + dial + call.',
  );
  out.push(
    formatTable(
      ['arm', 'n', 'median', 'p90', 'min', 'max'],
      (['ours', 'peer'] as const).map((k) => {
        const c = report.coldStartMs[k];
        return [
          k === 'ours' ? 'ours: PluginInstance (worker thread)' : 'peer: grpc-js child process',
          String(c.n),
          ...[c.p50, c.p90, c.min, c.max].map((v) => formatNumber(v)),
        ];
      }),
    ),
  );
  out.push('');

  const mem = report.memory;
  if ('skipped' in mem) out.push(`3. Memory per plugin: skipped (${mem.skipped}).`);
  else {
    out.push(
      `3. Memory added per plugin (K=${mem.plugins} plugins per fresh probe process, median of ${mem.runs} runs per arm). ` +
        'peer = its K plugin processes + the host-side delta; Pss splits shared pages fairly, Uss counts private pages only.',
    );
    out.push(
      formatTable(
        ['arm', 'Pss', 'Uss', 'Rss'],
        (['ours', 'peer'] as const).map((k) => {
          const m = mem.perPluginBytes[k];
          return [k === 'ours' ? 'ours: worker thread' : 'peer: plugin process', formatMiB(m.pss), formatMiB(m.uss), formatMiB(m.rss)];
        }),
      ),
    );
  }
  out.push('');

  out.push('Ratios, ours ÷ other (lower is better unless marked); 95% bootstrap interval where the samples allow one.');
  out.push(
    formatTable(
      ['ratio', 'value', '95% CI', 'target', 'verdict'],
      report.ratios.map((r) => [
        r.higherIsBetter ? `${r.name} (higher is better)` : r.name,
        formatNumber(r.value),
        r.ci ? `${formatNumber(r.ci[0])}-${formatNumber(r.ci[1])}` : '',
        r.target === undefined ? '' : `<= ${r.target}`,
        r.verdict === undefined
          ? ''
          : r.aspiration === undefined
            ? r.verdict
            : `${r.verdict} (aspiration <= ${r.aspiration}: ${r.value <= r.aspiration ? 'met' : 'not met'})`,
      ]),
    ),
  );
  out.push('');
  out.push(`Finished in ${formatNumber(report.elapsedSeconds)} s. A MISS is reported, not an error: the exit status is 0.`);
  return out.join('\n');
}
