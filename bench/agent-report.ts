/** The agent benchmark's findings as one document (printed as JSON with --json) and as text. */
import type { DrillReport } from './agent-kill-drill.js';
import type { Environment } from './environment.js';
import { formatMiB, formatNumber, formatTable } from './format-table.js';
import type { ApiReport, ApiSettings } from './measure-agent-api.js';
import type { ScaleReport, ScaleRun, ScaleSettings } from './measure-agent-scale.js';
import type { LatencyReport, LatencySettings } from './measure-submit-latency.js';
import { judge, type Ratio } from './report.js';

export type Section = 'latency' | 'scale' | 'drill' | 'api';
export const sections: readonly Section[] = ['latency', 'scale', 'drill', 'api'];

export interface AgentBenchSettings {
  sections: Section[];
  hello: LatencySettings;
  rawExec: LatencySettings;
  scale: ScaleSettings;
  drillTasks: number;
  api: ApiSettings;
  quick: boolean;
}

export interface AgentBenchReport {
  environment: Environment;
  settings: AgentBenchSettings;
  latency?: { agentStartMs: number; hello?: LatencyReport; rawExec: LatencyReport };
  scale?: ScaleReport;
  drill?: DrillReport;
  api?: ApiReport;
  /** Sections not run, and why. */
  skipped: string[];
  /** Every ratio with its target (when it has one) and verdict. */
  ratios: Ratio[];
  elapsedSeconds: number;
}

/** Bytes the agent's RSS grew per task from its baseline, at a level. */
export function rssPerTask(run: ScaleRun, index: number): number {
  const level = run.levels[index]!;
  return (level.rss - run.baseline.rss) / level.tasks;
}

/** Bytes the agent's RSS grew per task added since the level before (the baseline for the first). */
export function rssMarginal(run: ScaleRun, index: number): number {
  const level = run.levels[index]!;
  const prev = index === 0 ? { tasks: 0, rss: run.baseline.rss } : run.levels[index - 1]!;
  return (level.rss - prev.rss) / (level.tasks - prev.tasks);
}

/**
 * The per-task memory the target is judged on: the larger of the growth over the baseline and the
 * marginal growth at the top level. A garbage collection between two samples moves RSS by tens of
 * MiB, which can make either one small (even negative); the larger is the conservative reading.
 */
export function judgedRssPerTask(run: ScaleRun): number {
  const top = run.levels.length - 1;
  return Math.max(rssPerTask(run, top), rssMarginal(run, top));
}

/** The ratios of a report, with verdicts: the summary table and the JSON's `ratios`. */
export function collectRatios(report: Omit<AgentBenchReport, 'ratios' | 'elapsedSeconds'>): Ratio[] {
  const out: Ratio[] = [];
  if (report.latency?.hello) out.push(report.latency.hello.ratio);
  if (report.latency) out.push(report.latency.rawExec.ratio);
  const { scale } = report;
  if (scale?.helper) {
    for (const run of [scale.docker, scale.raw]) {
      if (!run?.levels.length) continue;
      const top = run.levels.length - 1;
      out.push(
        judge({
          name: `memory per task, ${run.driver} at ${run.levels[top]!.tasks} tasks: agent RSS growth ÷ one log-follower process's RSS`,
          value: judgedRssPerTask(run) / scale.helper.rss,
          target: 0.2,
        }),
      );
    }
  }
  if (report.api) {
    out.push({
      name: `list ${report.api.list.records} records (label filter), p50 ours ÷ bare fastify + LMDB`,
      value: report.api.list.ratioP50,
      ci: report.api.list.ratioP50Ci,
    });
    out.push({
      name: `${report.api.submit.concurrent} concurrent submits, time to the last answer, ours ÷ bare fastify + LMDB`,
      value: report.api.submit.oursTotalMs / report.api.submit.peerTotalMs,
    });
  }
  return out;
}

const ms = (v: number | undefined) => (v === undefined ? 'n/a' : formatNumber(v));
const kib = (bytes: number) => `${formatNumber(bytes / 1024)} KiB`;

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `   ${line}`)
    .join('\n');
}

function renderLatency(report: NonNullable<AgentBenchReport['latency']>): string[] {
  const out: string[] = [];
  out.push(
    `1. Submit to exit through a running \`taskhost agent\` process (started in ${formatNumber(report.agentStartMs)} ms): ` +
      'POST /v1/tasks + GET /v1/tasks/{id}/wait over its unix socket (keep-alive), arms alternating AB BA, ms.',
  );
  const rows: string[][] = [];
  const add = (l: LatencyReport, peer: string) => {
    const row = (label: string, x: LatencyReport['ours']) => [
      label,
      String(x.n),
      ...[x.p50, x.p90, x.p99, x.mean, x.max].map((v) => formatNumber(v)),
    ];
    rows.push(
      row(`${l.what}: ours, submit to exit`, l.ours),
      row('  of which POST /v1/tasks answered', l.oursSubmit),
      row(`  peer: ${peer}`, l.peer),
    );
  };
  if (report.hello) add(report.hello, 'docker run --rm --network none busybox:1.35 echo hello');
  add(report.rawExec, "child_process.spawn('/bin/true') to 'exit'");
  out.push(indent(formatTable(['arm (ms)', 'n', 'p50', 'p90', 'p99', 'mean', 'max'], rows)));
  out.push(
    '   The agent answers the wait once the exit is recorded (on disk); it removes the container after that. docker run --rm returns ' +
      'once the container is removed too. raw_exec through the agent is two HTTP requests, three durable store writes and the driver.',
  );
  return out;
}

function renderScaleRun(run: ScaleRun): string[] {
  const base = run.baseline;
  const rows = [
    ['0 (baseline)', formatMiB(base.rss), '', formatNumber(base.cpuPercent), '', '', '', '', '', '', '', ''],
    ...run.levels.map((l, i) => {
      const marginal = rssMarginal(run, i);
      const quiet = l.withoutStats;
      return [
        String(l.tasks),
        formatMiB(quiet.rss),
        kib((quiet.rss - base.rss) / l.tasks),
        formatNumber(quiet.cpuPercent),
        formatMiB(l.rss),
        formatMiB(l.pss),
        kib(rssPerTask(run, i)),
        kib(marginal),
        formatNumber(l.cpuPercent),
        formatNumber((l.cpuPercent - base.cpuPercent) / l.tasks, 2),
        formatNumber(l.statsPerSecond),
        formatNumber(l.addSeconds),
      ];
    }),
  ];
  return [
    `   ${run.driver} (left: no stats streams; right: a stats stream per task):`,
    indent(
      formatTable(
        ['tasks', 'RSS', 'RSS/task', 'CPU %', '| RSS', 'PSS', 'RSS/task', 'marginal/task', 'CPU %', 'CPU %/task', 'stats/s', 'added in s'],
        rows,
      ),
    ),
    ...run.levels.flatMap((l) => l.statsErrors.slice(0, 3).map((e) => `   stats stream error at ${l.tasks} tasks: ${e}`)),
    ...run.levels.flatMap((l) =>
      l.startFailures.length
        ? [`   ${l.startFailures.length} task(s) failed to start while adding up to ${l.tasks} (replaced); first: ${l.startFailures[0]}`]
        : [],
    ),
  ];
}

function renderScale(scale: ScaleReport, s: ScaleSettings): string[] {
  const out: string[] = [];
  out.push(
    `2. Scale: the agent process's memory and CPU with N running tasks (a ${s.windowMs / 1000} s window per level, memory sampled every 0.5 s, medians).`,
  );
  out.push(
    '   The agent streams no task stats by itself: the bench runs the same Agent in bench/stats-agent.js and opens one ' +
      `taskStats stream per task (every ${s.statsIntervalMs} ms) through the driver manager's DriverClient, in the agent process. ` +
      "The Docker driver follows each container's logs into its files by itself; raw_exec tasks write their files directly. " +
      'docker tasks print a line every 5 s; raw_exec tasks are `sleep 3600`. Each level is measured without stats streams, then with ' +
      'one per task. RSS/task = growth over the baseline ÷ N; marginal = growth since the previous level ÷ the tasks added; ' +
      'CPU % is of one core; CPU %/task = (CPU − baseline CPU) ÷ N; stats/s = samples the agent received per second (N when every ' +
      'stream keeps up). RSS moves by tens of MiB with garbage collection, so below about 50 tasks the per-task figures are noise; ' +
      'the memory ratio is judged on the larger of RSS/task and marginal/task at the top level.',
  );
  if (scale.docker) out.push(...renderScaleRun(scale.docker));
  if (scale.raw) out.push(...renderScaleRun(scale.raw));
  if (scale.helper) {
    const h = scale.helper;
    out.push(
      `   peer, a helper process per task (Nomad's docker_logger/logmon): a minimal Node process following one container's logs ` +
        `(dockerode, follow: true, into two files), ${h.count} measured: RSS ${formatMiB(h.rss)}, PSS ${formatMiB(h.pss)}, ` +
        `CPU ${formatNumber(h.cpuPercent, 2)} % of a core each (medians). Nomad runs such helpers per task (docker_logger, ` +
        'and logmon; an executor per raw_exec task); one helper per task is the peer here.',
    );
  } else out.push('   peer: not measured (no docker level, or --helpers 0).');
  return out;
}

function renderDrill(d: DrillReport): string[] {
  const out: string[] = [];
  out.push(
    `3. kill -9 drill: ${d.tasks} tasks (docker and raw_exec alternating; exit codes 10-${9 + d.tasks}); ` +
      `group A (${d.byGroup.A}) exits before the kill, B (${d.byGroup.B}) while the agent is down, C (${d.byGroup.C}) after the restart. ` +
      'A real `taskhost agent` process, SIGKILL, started again on the same data dir.',
  );
  out.push(
    indent(
      formatTable(
        ['figure', 'value'],
        [
          ['agent down (until every B task had exited), ms', ms(d.downMs)],
          ['restart: spawn to listening, ms', ms(d.restartListenMs)],
          ['restart: spawn to every record reconciled, ms', ms(d.restartToRecoveredMs)],
          [
            'states when reconciled',
            Object.entries(d.recoveredStates)
              .map(([k, v]) => `${k} ${v}`)
              .join(', '),
          ],
          ['lost (not exited in the end)', String(d.lost)],
          ['run more than once', String(d.reRun)],
          ['wrong exit code', String(d.wrongExitCode)],
        ],
      ),
    ),
  );
  const wrong = d.outcomes.filter((o) => o.problem);
  const byKind = new Map<string, number>();
  for (const o of wrong) byKind.set(`${o.driver} ${o.group}`, (byKind.get(`${o.driver} ${o.group}`) ?? 0) + 1);
  for (const o of wrong.slice(0, 8)) out.push(`   drill-${o.index} (${o.driver}, group ${o.group}): ${o.problem}`);
  if (wrong.length > 8) out.push(`   ... and ${wrong.length - 8} more (--json lists them all)`);
  if (wrong.length) out.push(`   wrong, by driver and group: ${[...byKind].map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  out.push(`   kill -9 drill: ${d.verdict} (PASS = none lost, none run twice, every exit code right).`);
  return out;
}

function renderApi(a: ApiReport, s: ApiSettings): string[] {
  const l = a.list;
  const sub = a.submit;
  const row = (label: string, x: ApiReport['list']['ours']) => [
    label,
    String(x.n),
    ...[x.p50, x.p90, x.p99, x.mean, x.max].map((v) => formatNumber(v)),
  ];
  return [
    `4. API on a \`taskhost agent\` process. Peer: a bare fastify server over its own LMDB with the same records (no schemas, ` +
      "no filter language, no supervisor). No target: the ratios show what the agent's layers cost.",
    `   GET /v1/tasks?filter=labels.team==a over ${l.records} records (${l.matched} match, ${formatNumber(l.responseBytes / 1024)} KiB of JSON), ` +
      `${s.listRuns} serial requests per arm, ms:`,
    indent(formatTable(['arm (ms)', 'n', 'p50', 'p90', 'p99', 'mean', 'max'], [row('ours', l.ours), row('peer', l.peer)])),
    `   ours ÷ peer: p50 ${formatNumber(l.ratioP50)} (95% CI ${formatNumber(l.ratioP50Ci[0])}-${formatNumber(l.ratioP50Ci[1])}), p99 ${formatNumber(l.ratioP99)}`,
    `   ${sub.concurrent} POST /v1/tasks at once (mock tasks), ${sub.rounds} round(s) per arm: time to the last answer ` +
      `${formatNumber(sub.oursTotalMs)} ms (peer ${formatNumber(sub.peerTotalMs)} ms); per request, ms:`,
    indent(formatTable(['arm (ms)', 'n', 'p50', 'p90', 'p99', 'mean', 'max'], [row('ours', sub.ours), row('peer', sub.peer)])),
  ];
}

export function renderAgentReport(report: AgentBenchReport): string {
  const { environment: env, settings: s } = report;
  const out: string[] = [];
  out.push('taskhost bench:agent: the node agent against docker run, spawn, a helper process per task, and a bare API');
  out.push(
    `${env.node} | ${env.os} | ${env.cpus} x ${env.cpuModel} | ${env.memoryGiB} GiB | load ${env.loadAverage.join(' ')}` +
      `${s.quick ? ' | QUICK MODE (smoke test, small n)' : ''}`,
  );
  for (const skipped of report.skipped) out.push(`skipped: ${skipped}`);
  if (report.latency) out.push('', ...renderLatency(report.latency));
  if (report.scale) out.push('', ...renderScale(report.scale, s.scale));
  if (report.drill) out.push('', ...renderDrill(report.drill));
  if (report.api) out.push('', ...renderApi(report.api, s.api));
  if (report.ratios.length) {
    out.push('', 'Ratios, ours ÷ peer (lower is better); 95% bootstrap interval where the samples allow one.');
    out.push(
      formatTable(
        ['ratio', 'value', '95% CI', 'target', 'verdict'],
        report.ratios.map((r) => [
          r.name,
          formatNumber(r.value),
          r.ci ? `${formatNumber(r.ci[0])}-${formatNumber(r.ci[1])}` : '',
          r.target === undefined ? 'none' : `<= ${r.target}`,
          r.verdict ?? '',
        ]),
      ),
    );
  }
  if (report.drill) out.push(`kill -9 drill: ${report.drill.verdict}`);
  out.push('', `Finished in ${formatNumber(report.elapsedSeconds)} s. A MISS is reported, not an error: the exit status is 0.`);
  return out.join('\n');
}
