/** `taskhost bench`: runs the lifecycle benchmark and prints tables (or one JSON document). */
import type { Logger } from 'pino';
import { describeEnvironment } from '../../bench/environment.js';
import { formatNumber, formatTable } from '../../bench/format-table.js';
import { DriverManager } from '../../drivers/driver-manager.js';
import type { AgentConfig } from '../../plugin-loader/agent-config.js';
import { PluginLoader } from '../../plugin-loader/loader.js';
import type { CliIO } from '../main.js';
import {
  dockerCliArm,
  driverArm,
  engineApiArm,
  operations,
  removeLeftovers,
  runLifecycleBench,
  type ArmResult,
  type LifecycleArm,
} from './lifecycle-bench.js';

export interface BenchCommandOptions {
  image: string;
  lifecycles: number;
  concurrency: number;
  warmup: number;
  json: boolean;
  config: AgentConfig;
  logger: Logger;
  io: CliIO;
}

const targets = { vsEngine: 1.05, vsCli: 0.9, throughputVsEngine: 0.95, eventLoopP99Ms: 20 };

export async function benchCommand(options: BenchCommandOptions): Promise<number> {
  const { io } = options;
  const loader = new PluginLoader({ config: options.config, logger: options.logger });
  const manager = new DriverManager({ loader, logger: options.logger });
  const arms: LifecycleArm[] = [];
  try {
    await manager.waitForFirstFingerprint(15_000);
    const docker = manager.health().find((h) => h.name === 'docker');
    if (docker?.health !== 'healthy') {
      io.stderr.write(
        `taskhost bench: the docker driver is ${docker?.health ?? 'not loaded'}${docker ? `: ${docker.healthDescription}` : ''}\n`,
      );
      return 1;
    }
    arms.push(driverArm(manager, options.image), engineApiArm(options.image), dockerCliArm(options.image));
    const progress = (m: string) => io.stderr.write(`taskhost bench: ${m}\n`);
    progress(`${options.lifecycles} lifecycles per arm of ${options.image}, then concurrency ${options.concurrency}`);
    const results = await runLifecycleBench(arms, {
      lifecycles: options.lifecycles,
      concurrency: options.concurrency,
      warmup: options.warmup,
      onProgress: progress,
    });
    const ratios = ratiosOf(results);
    if (options.json) {
      const document = {
        environment: describeEnvironment(),
        image: options.image,
        lifecycles: options.lifecycles,
        concurrency: options.concurrency,
        results,
        ratios,
      };
      io.stdout.write(JSON.stringify(document, null, 2) + '\n');
    } else io.stdout.write(render(results, ratios, options) + '\n');
    return results.some((r) => r.errors > 0) ? 1 : 0;
  } finally {
    for (const arm of arms) await arm.close();
    await removeLeftovers().catch(() => undefined);
    await manager.close();
    await loader.close();
  }
}

interface Ratio {
  name: string;
  value: number;
  target: string;
  pass: boolean;
}

function ratiosOf(results: ArmResult[]): Ratio[] {
  const by = Object.fromEntries(results.map((r) => [r.name, r]));
  const ours = by.taskhost!;
  const engine = by['engine-api']!;
  const cli = by['docker-cli']!;
  const vsEngine = ours.lifecycle.p50 / engine.lifecycle.p50;
  const vsCli = ours.lifecycle.p50 / cli.lifecycle.p50;
  const throughput = ours.throughput / engine.throughput;
  return [
    {
      name: 'lifecycle median, taskhost ÷ engine API',
      value: vsEngine,
      target: `<= ${targets.vsEngine}`,
      pass: vsEngine <= targets.vsEngine,
    },
    { name: 'lifecycle median, taskhost ÷ docker CLI', value: vsCli, target: `<= ${targets.vsCli}`, pass: vsCli <= targets.vsCli },
    {
      name: 'lifecycles/s, taskhost ÷ engine API',
      value: throughput,
      target: `>= ${targets.throughputVsEngine}`,
      pass: throughput >= targets.throughputVsEngine,
    },
    {
      name: 'event-loop delay p99 during taskhost, ms',
      value: ours.eventLoopP99Ms,
      target: `< ${targets.eventLoopP99Ms}`,
      pass: ours.eventLoopP99Ms < targets.eventLoopP99Ms,
    },
  ];
}

function render(results: ArmResult[], ratios: Ratio[], options: BenchCommandOptions): string {
  const env = describeEnvironment();
  const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(1));
  const detail = results.flatMap((r) =>
    operations.map((op) => {
      const s = r.operations[op];
      return [r.name, op, ms(s?.min), ms(s?.p50), ms(s?.p99), ms(s?.max), ms(s?.mean)];
    }),
  );
  const summary = results.map((r) => [
    r.name,
    ms(r.lifecycle.p50),
    ms(r.lifecycle.p99),
    formatNumber(r.throughput),
    ms(r.eventLoopP99Ms),
    String(r.errors),
  ]);
  return [
    `taskhost bench: ${options.image}, ${options.lifecycles} lifecycles per arm (interleaved), concurrency ${options.concurrency}`,
    `${env.node} | ${env.os} | ${env.cpus} x ${env.cpuModel} | load ${env.loadAverage.join(' ')}`,
    '',
    'DETAILED COMMAND TIMINGS (ms, serial lifecycles; pause/unpause: the driver contract has none)',
    formatTable(['arm', 'operation', 'min', 'median', 'p99', 'max', 'mean'], detail),
    '',
    `SUMMARY (lifecycle = create+start + stop + wait + remove)`,
    formatTable(
      ['arm', 'lifecycle median', 'lifecycle p99', `lifecycles/s @${options.concurrency}`, 'event-loop p99 ms', 'errors'],
      summary,
    ),
    '',
    'RATIOS',
    formatTable(
      ['ratio', 'value', 'target', 'verdict'],
      ratios.map((r) => [r.name, formatNumber(r.value), r.target, r.pass ? 'PASS' : 'MISS']),
    ),
  ].join('\n');
}
