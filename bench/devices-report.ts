/** bench:devices' findings: the figures from both arms' runs, judged against the targets, as text. */
import type { ArmKey, ArmRun } from './device-arms.js';
import type { Environment } from './environment.js';
import { formatNumber, formatTable } from './format-table.js';
import { bootstrapQuantileRatios, summarize, type Interval } from './stats.js';

export interface DevicesSettings {
  plugins: number;
  groups: number;
  devicesPerGroup: number;
  intervalMs: number;
  fingerprintMs: number;
  /** Measured seconds per arm per round. */
  seconds: number;
  rounds: number;
  warmupMs: number;
  quick: boolean;
}

export interface DevicesBenchReport {
  environment: Environment;
  settings: DevicesSettings;
  /** Devices per arm, all plugins together. */
  devices: number;
  runs: Record<ArmKey, ArmRun[]>;
  elapsedSeconds: number;
}

/** Targets (perf-anchors R6): ours ÷ peer at most this; no missed tick in our arm. */
export const targets = { cpuPerSample: 0.5, stalenessP99: 0.3 } as const;

export interface ArmFigures {
  samples: number;
  /** CPU ms (host + plugins) per stats message, and per device reading. */
  cpuMsPerSample: number;
  cpuUsPerDevice: number;
  /** CPU ms per second of wall time: how much of one core the pipeline keeps busy. */
  cpuMsPerSecond: number;
  stalenessMs: { p50: number; p90: number; p99: number; max: number };
  missedTicks: number;
  expectedTicks: number;
  longestGapMs: number;
  firstFingerprintMs: number;
}

export interface DevicesFigures {
  ours: ArmFigures;
  peer: ArmFigures;
  cpuRatio: number;
  /** The CPU ratio of each round, to show how much it moved. */
  cpuRatioByRound: number[];
  stalenessP99Ratio: number;
  stalenessP99Interval: Interval;
  stalenessP50Ratio: number;
  firstFingerprintRatio: number;
  verdicts: { cpu: boolean; staleness: boolean; missedTicks: boolean };
}

function armFigures(runs: ArmRun[], devicesPerSample: number): ArmFigures {
  const sum = (f: (r: ArmRun) => number) => runs.reduce((a, r) => a + f(r), 0);
  const samples = sum((r) => r.messages);
  const cpu = sum((r) => r.cpuMs);
  const staleness = summarize(runs.flatMap((r) => r.staleness));
  return {
    samples,
    cpuMsPerSample: cpu / samples,
    cpuUsPerDevice: (cpu * 1000) / (samples * devicesPerSample),
    cpuMsPerSecond: cpu / (sum((r) => r.windowMs) / 1000),
    stalenessMs: { p50: staleness.p50, p90: staleness.p90, p99: staleness.p99, max: staleness.max },
    missedTicks: sum((r) => r.missedTicks),
    expectedTicks: sum((r) => r.expectedTicks),
    longestGapMs: Math.max(...runs.map((r) => r.longestGapMs)),
    firstFingerprintMs: summarize(runs.map((r) => r.firstFingerprintMs)).p50,
  };
}

export function devicesFigures(report: DevicesBenchReport): DevicesFigures {
  const perSample = report.settings.groups * report.settings.devicesPerGroup;
  const ours = armFigures(report.runs.ours, perSample);
  const peer = armFigures(report.runs.peer, perSample);
  const [p99Interval] = bootstrapQuantileRatios(
    report.runs.ours.flatMap((r) => r.staleness),
    report.runs.peer.flatMap((r) => r.staleness),
    [0.99],
    2_000,
  );
  const cpuRatio = ours.cpuMsPerSample / peer.cpuMsPerSample;
  const stalenessP99Ratio = ours.stalenessMs.p99 / peer.stalenessMs.p99;
  return {
    ours,
    peer,
    cpuRatio,
    cpuRatioByRound: report.runs.ours.map((o, i) => {
      const p = report.runs.peer[i]!;
      return o.cpuMs / o.messages / (p.cpuMs / p.messages);
    }),
    stalenessP99Ratio,
    stalenessP99Interval: p99Interval!,
    stalenessP50Ratio: ours.stalenessMs.p50 / peer.stalenessMs.p50,
    firstFingerprintRatio: ours.firstFingerprintMs / peer.firstFingerprintMs,
    verdicts: {
      cpu: cpuRatio <= targets.cpuPerSample,
      staleness: stalenessP99Ratio <= targets.stalenessP99,
      missedTicks: ours.missedTicks === 0,
    },
  };
}

const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

export function renderDevicesReport(report: DevicesBenchReport): string {
  const { environment: env, settings: s } = report;
  const f = devicesFigures(report);
  const out: string[] = [];
  out.push('taskhost bench:devices: device stats pipeline, taskhost vs a Nomad-style gRPC peer');
  out.push(
    `${env.node} | ${env.os} | ${env.cpus} x ${env.cpuModel} | ${env.memoryGiB} GiB | load ${env.loadAverage.join(' ')} | ` +
      `piscina ${env.piscina} | @grpc/grpc-js ${env.grpcJs}${s.quick ? ' | QUICK MODE (smoke test, short windows)' : ''}`,
  );
  out.push(
    `${s.plugins} plugins x ${s.groups} groups x ${s.devicesPerGroup} devices = ${report.devices} devices per arm; ` +
      `stats every ${s.intervalMs} ms, fingerprint re-sent every ${s.fingerprintMs} ms; ` +
      `${s.rounds} round(s) x ${s.seconds} s measured per arm`,
  );
  out.push('ours: PluginLoader + DeviceManager, one worker thread per plugin (MessagePort stream)');
  out.push('peer: one child process per plugin, grpc-js server stream on a unix socket, same validators on the host');
  out.push('');
  const fmt = (n: number) => formatNumber(n);
  const row = (name: string, pick: (a: ArmFigures) => number) => [
    name,
    fmt(pick(f.ours)),
    fmt(pick(f.peer)),
    fmt(pick(f.ours) / pick(f.peer)),
  ];
  out.push(
    formatTable(
      ['figure', 'ours', 'peer', 'ours ÷ peer'],
      [
        row('stats samples received', (a) => a.samples),
        row('CPU ms per sample (host + plugins)', (a) => a.cpuMsPerSample),
        row('CPU µs per device reading', (a) => a.cpuUsPerDevice),
        row('CPU ms per second (of one core)', (a) => a.cpuMsPerSecond),
        row('staleness p50 (ms)', (a) => a.stalenessMs.p50),
        row('staleness p90 (ms)', (a) => a.stalenessMs.p90),
        row('staleness p99 (ms)', (a) => a.stalenessMs.p99),
        row('staleness max (ms)', (a) => a.stalenessMs.max),
        ['missed ticks', `${f.ours.missedTicks} of ${f.ours.expectedTicks}`, `${f.peer.missedTicks} of ${f.peer.expectedTicks}`, ''],
        row('longest gap between samples (ms)', (a) => a.longestGapMs),
        row('start to first fingerprint (ms, median)', (a) => a.firstFingerprintMs),
      ],
    ),
  );
  out.push('');
  const [lo, hi] = f.stalenessP99Interval;
  out.push(
    formatTable(
      ['target', 'value', 'goal', 'verdict'],
      [
        ['CPU per sample, ours ÷ peer', fmt(f.cpuRatio), `≤ ${targets.cpuPerSample}`, verdict(f.verdicts.cpu)],
        [
          `staleness p99, ours ÷ peer (95% CI ${fmt(lo)}–${fmt(hi)})`,
          fmt(f.stalenessP99Ratio),
          `≤ ${targets.stalenessP99}`,
          verdict(f.verdicts.staleness),
        ],
        ['missed ticks, ours', String(f.ours.missedTicks), '0', verdict(f.verdicts.missedTicks)],
      ],
    ),
  );
  if (f.cpuRatioByRound.length > 1) out.push(`CPU ratio by round: ${f.cpuRatioByRound.map(fmt).join(', ')}`);
  out.push('');
  out.push('staleness: from the plugin taking a sample (its timestamp) to the host accepting it, validated, into its');
  out.push('latest-stats table. A tick is missed when a plugin sends nothing for it: an arrival gap of k intervals');
  out.push("(rounded; the window's start and end count as arrivals) misses k - 1. CPU is user + system time of the");
  out.push('host process (all threads) and the plugin processes over the measured windows, divided by the stats');
  out.push('messages received in them.');
  out.push(`elapsed ${report.elapsedSeconds.toFixed(1)} s`);
  return out.join('\n');
}
