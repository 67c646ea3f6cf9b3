/** The driver benchmark's findings as one document (printed as JSON with --json) and as text. */
import type { Supervision } from '../plugin-loader/agent-config.js';
import type { CrashDrillResult } from './crash-drill.js';
import type { Environment } from './environment.js';
import { formatNumber, formatTable } from './format-table.js';
import type { Throughput } from './measure-calls.js';
import type { HostFloors } from './measure-host-floors.js';
import type { Ratio } from './report.js';
import type { SpawnTaskTimes } from './spawn-task.js';
import { lifecyclePhases, type TaskLifecycleTimes } from './task-lifecycle.js';
import type { Summary } from './stats.js';

export interface DriversSettings {
  /** Measured serial lifecycles per arm and command, after `warmup` discarded ones. */
  runs: number;
  warmup: number;
  /** Tasks in flight for each throughput measurement, and measured ms per arm. */
  concurrency: number[];
  throughputMs: number;
  /** Samples per explanatory floor (plugin call round trip, /proc walk). */
  floorSamples: number;
  /** Crash drills, tasks per drill, and how long the drill's tasks run (task i: runForMs + i * runForStepMs). */
  drills: number;
  drillTasks: number;
  drillRunForMs: number;
  drillRunForStepMs: number;
  /** A waiter still open this long after the last task should have exited counts as hung. */
  drillGraceMs: number;
  /** Agent-wide supervision of the drill's host (the lifecycle host runs on the defaults). */
  drillSupervision: Supervision;
  quick: boolean;
}

export interface LifecycleReport {
  /** The command as a shell would show it. */
  command: string;
  /** Milliseconds. */
  ours: Record<keyof TaskLifecycleTimes, Summary>;
  peer: Record<keyof SpawnTaskTimes, Summary>;
  /** ours ÷ peer of the whole lifecycle, p50 and p99, with 95% bootstrap intervals. */
  ratios: Ratio[];
  /** What the host adds to one task, in ms: p50 and mean differences. */
  addedMs: { p50: number; mean: number };
}

export interface ThroughputReport {
  concurrency: number;
  ours: Throughput;
  peer: Throughput;
}

export interface DrillSummary {
  /** Medians over the drills. */
  restartedMs: number;
  allRecoveredMs: number;
  allSettledMs: number;
  /** PASS only if every drill passed. */
  verdict: 'PASS' | 'MISS';
}

export interface DriversBenchReport {
  environment: Environment;
  settings: DriversSettings;
  lifecycle: LifecycleReport[];
  floors: HostFloors;
  /** For the first command. */
  throughput: ThroughputReport[];
  drills: CrashDrillResult[];
  /** Absent when no drill was run (--drills 0). */
  drillSummary?: DrillSummary | undefined;
  elapsedSeconds: number;
}

const ms = (v: number | undefined) => (v === undefined ? 'n/a' : formatNumber(v));

/** A difference in ms, shown in µs below one millisecond. */
function formatAdded(valueMs: number): string {
  return Math.abs(valueMs) < 1 ? `${formatNumber(valueMs * 1000)} µs` : `${formatNumber(valueMs)} ms`;
}

function summaryRow(label: string, s: Summary): string[] {
  return [label, String(s.n), ...[s.p50, s.p90, s.p99, s.mean, s.max].map((v) => formatNumber(v))];
}

function renderLifecycle(l: LifecycleReport): string[] {
  const out: string[] = [];
  out.push(`   ${l.command}`);
  const rows = [
    summaryRow('ours: prepare + start + wait + destroy', l.ours.total),
    ...lifecyclePhases.map((p) => summaryRow(`  ${p}`, l.ours[p])),
    summaryRow("peer: child_process.spawn, await 'exit'", l.peer.total),
    summaryRow('  spawn() (open, spawn, close fds)', l.peer.spawn),
    summaryRow("  spawn() returned to 'exit'", l.peer.exit),
  ];
  out.push(indent(formatTable(['arm (ms)', 'n', 'p50', 'p90', 'p99', 'mean', 'max'], rows)));
  const ratio = (r: Ratio) => `${formatNumber(r.value)} (95% CI ${r.ci ? `${formatNumber(r.ci[0])}-${formatNumber(r.ci[1])}` : 'n/a'})`;
  const [p50, p99] = l.ratios;
  out.push(`   ours ÷ peer: p50 ${ratio(p50!)}, p99 ${ratio(p99!)}`);
  out.push(`   the host adds ${formatAdded(l.addedMs.p50)} per task at p50, ${formatAdded(l.addedMs.mean)} by mean`);
  return out;
}

/** The phases next to the floors they are made of, by median. */
function renderWhereTimeGoes(l: LifecycleReport, floors: HostFloors): string[] {
  const call = floors.callRoundTrip.p50;
  const ours = l.ours;
  return [
    `   Where ours' time goes (${l.command}, p50 ms; one plugin call round trip alone: ${formatNumber(call)}, ` +
      `n=${floors.callRoundTrip.n}):`,
    `   - prepare ${formatNumber(ours.prepare.p50)}: in the host, no plugin call: spec and config checks, env, task dirs and log files;`,
    `   - start ${formatNumber(ours.start.p50)}: one call, spawn() in the worker thread, /proc/<pid>/stat read; ` +
      `the peer's whole spawn() is ${formatNumber(l.peer.spawn.p50)};`,
    `   - wait ${formatNumber(ours.wait.p50)}: one call; the peer's spawn()-to-'exit' is ${formatNumber(l.peer.exit.p50)};`,
    `   - destroy ${formatNumber(ours.destroy.p50)}: one call and raw_exec's walk of /proc for leftovers of the task's process group ` +
      `(${floors.processes} processes now; the walk alone, timed on the main thread: p50 ${formatNumber(floors.procWalk.p50)}, p90 ${formatNumber(floors.procWalk.p90)}).`,
  ];
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `   ${line}`)
    .join('\n');
}

export function renderDriversReport(report: DriversBenchReport): string {
  const { environment: env, settings: s } = report;
  const out: string[] = [];
  out.push('taskhost bench:drivers: task start-to-exit on raw_exec vs child_process.spawn, and a crash drill on mock');
  out.push(
    `${env.node} | ${env.os} | ${env.cpus} x ${env.cpuModel} | ${env.memoryGiB} GiB | load ${env.loadAverage.join(' ')} | ` +
      `piscina ${env.piscina}${s.quick ? ' | QUICK MODE (smoke test, small n)' : ''}`,
  );
  out.push('');

  out.push(
    `1. Task start to exit, serial, ms (n per arm, arms alternating run by run in AB BA order, after ${s.warmup} warm-up runs per arm).`,
  );
  out.push(
    '   ours: DriverManager.prepare(spec) + startTask + waitTask + destroyTask on raw_exec (default supervision); ' +
      'peer: spawn of the same command, same env, cwd and log files, detached like raw_exec.',
  );
  for (const l of report.lifecycle) {
    out.push('');
    out.push(...renderLifecycle(l));
  }
  const first = report.lifecycle[0];
  if (first) {
    out.push('');
    out.push(...renderWhereTimeGoes(first, report.floors));
  }
  out.push('');
  out.push(
    `   Throughput (${first?.command ?? ''}): whole lifecycles per second with N in flight ` +
      `(${s.throughputMs / 1000} s per arm, in interleaved blocks, after a discarded warm-up block).`,
  );
  out.push(
    indent(
      formatTable(
        ['in flight', 'ours tasks/s', 'peer tasks/s', 'ours ÷ peer'],
        report.throughput.map((t) => [
          String(t.concurrency),
          formatNumber(t.ours.perSecond),
          formatNumber(t.peer.perSecond),
          formatNumber(t.ours.perSecond / t.peer.perSecond),
        ]),
      ),
    ),
  );
  out.push('');

  out.push(...renderDrills(report));
  out.push('');
  out.push(`Finished in ${formatNumber(report.elapsedSeconds)} s. A MISS is reported, not an error: the exit status is 0.`);
  return out.join('\n');
}

function renderDrills(report: DriversBenchReport): string[] {
  const { settings: s, drillSummary: sum } = report;
  if (!sum) return ['2. Crash drill: not run (--drills 0).'];
  const out: string[] = [];
  const sup = Object.entries(s.drillSupervision)
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(', ');
  const lastRunFor = s.drillRunForMs + (s.drillTasks - 1) * s.drillRunForStepMs;
  out.push(
    `2. Crash drill (${report.drills.length}x, a fresh host each): ${s.drillTasks} mock tasks (runFor ${formatNumber(s.drillRunForMs / 1000)}-` +
      `${formatNumber(lastRunFor / 1000)} s, exit codes 0-${Math.min(255, s.drillTasks - 1)}), a waitTask open on each, ` +
      "then loader.get('mock').kill(). Times in ms from the kill.",
  );
  out.push(`   Fast supervision for the drill: ${sup} (defaults: restartBackoff 250ms, maxRestartBackoff 30s).`);
  const drillRow = (label: string, d: CrashDrillResult) => [
    label,
    d.inFlightAtKill === undefined ? 'n/a' : String(d.inFlightAtKill),
    `${d.recovered}/${d.tasks}`,
    String(d.lost.length),
    String(d.waiterErrors.length + d.wrongResults.length + d.hung),
    ms(d.restartedMs),
    ms(d.allRecoveredMs),
    ms(d.allSettledMs),
    d.verdict,
  ];
  out.push(
    indent(
      formatTable(
        ['drill', 'in flight at kill', 'recovered', 'lost', 'waiters failed', 'restarted', 'all recovered', 'all exited', 'verdict'],
        [
          ...report.drills.map((d, i) => drillRow(String(i + 1), d)),
          ['median', '', '', '', '', ms(sum.restartedMs), ms(sum.allRecoveredMs), ms(sum.allSettledMs), sum.verdict],
        ],
      ),
    ),
  );
  out.push(
    `   "in flight at kill": the host's calls and streams to the driver when its worker died (${s.drillTasks} waitTask + the manager's fingerprint and event streams).`,
  );
  out.push(
    "   PASS = every task recovered, none lost, and every waiter resolved with its own task's exit code " +
      `("waiters failed" counts errors, wrong results and waiters still open ${formatNumber(s.drillGraceMs / 1000)} s after the last exit).`,
  );
  const passed = report.drills.filter((d) => d.verdict === 'PASS').length;
  out.push(`   Crash drill: ${sum.verdict} (${passed} of ${report.drills.length} drills passed).`);
  for (const [i, d] of report.drills.entries()) {
    const problems = [
      ...d.lost.map((l) => `lost ${l}`),
      ...d.waiterErrors.map((e) => `waiter error ${e}`),
      ...d.wrongResults.map((w) => `wrong result ${w}`),
    ];
    if (d.hung) problems.push(`${d.hung} waiter(s) still open at the deadline`);
    if (d.handlesAfterRecovery !== undefined && d.handlesAfterRecovery !== d.tasks) {
      problems.push(`the manager held ${d.handlesAfterRecovery} of ${d.tasks} handles once all were recovered`);
    }
    if (d.recoveredEvents !== d.recovered) problems.push(`${d.recoveredEvents} 'recovered' events for ${d.recovered} tasks`);
    for (const p of problems.slice(0, 5)) out.push(`   drill ${i + 1}: ${p}`);
    if (problems.length > 5) out.push(`   drill ${i + 1}: ... and ${problems.length - 5} more (--json lists them all)`);
  }
  return out;
}
