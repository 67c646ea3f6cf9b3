/**
 * npm run bench:agent: what the node agent costs, what it survives, and how its API holds up,
 * each against a peer in the same run (docs/benchmarks.md):
 *
 *   1. submit to exit of a hello container through a running agent against `docker run --rm`
 *      (target p50 ratio <= 1.1), and raw_exec /bin/true against child_process.spawn (no target);
 *   2. scale: the agent's memory and CPU per running task (docker at 1, 50, 200; raw_exec at
 *      500), logs followed and stats streaming, against a helper process per task (target <= 0.2);
 *   3. the kill -9 drill on a real `taskhost agent` process (PASS: none lost, none re-run, every
 *      exit code right);
 *   4. the API: a label-filtered list of 10,000 records, and 100 concurrent submits, against a
 *      bare fastify + LMDB server (no target).
 *
 * A MISS never fails the run (exit 0); errors do (exit 1; 2 for bad flags). Every container,
 * process and file the run starts is removed at the end, after an error and on Ctrl-C.
 */
import Dockerode from 'dockerode';
import { AgentClient } from './agent-client.js';
import { runKillDrill } from './agent-kill-drill.js';
import { AgentProcess, writeAgentConfig } from './agent-process.js';
import {
  collectRatios,
  renderAgentReport,
  sections as allSections,
  type AgentBenchReport,
  type AgentBenchSettings,
  type Section,
} from './agent-report.js';
import { BenchCleanup } from './bench-cleanup.js';
import { describeEnvironment } from './environment.js';
import { integerFlag, parseBenchFlags, runBenchmark, UsageError } from './flags.js';
import { measureAgentApi } from './measure-agent-api.js';
import { measureAgentScale } from './measure-agent-scale.js';
import { helloImage, measureHelloContainer, measureRawExecTrue } from './measure-submit-latency.js';

const usage = `Usage: node dist/bench/agent.js [options]   (or: npm run bench:agent -- [options])

  --only LIST          sections to run, comma list of latency,scale,drill,api   (default all)
  --hello-runs N       hello-container runs per arm                              (default 30)
  --raw-runs N         raw_exec /bin/true runs per arm                           (default 200)
  --docker-levels L    running docker tasks to measure at, comma list            (default 1,50,200)
  --raw-levels L       running raw_exec tasks to measure at, comma list          (default 500)
  --window-ms N        measured window per scale level, ms                       (default 10000)
  --helpers N          log-follower processes measured for the peer              (default 10)
  --drill-tasks N      tasks in the kill -9 drill                                (default 50)
  --records N          task records for the list                                 (default 10000)
  --list-runs N        serial list requests per arm                              (default 200)
  --submits N          concurrent submits per round                              (default 100)
  --quick              small counts for a smoke test (explicit flags still win)
  --json               print one JSON document instead of the tables
  --help`;

const fullSettings: AgentBenchSettings = {
  sections: [...allSections],
  hello: { runs: 30, warmup: 3 },
  rawExec: { runs: 200, warmup: 20 },
  scale: { dockerLevels: [1, 50, 200], rawLevels: [500], windowMs: 10_000, statsIntervalMs: 1_000, helpers: 10, submitConcurrency: 8 },
  drillTasks: 50,
  api: { records: 10_000, listRuns: 200, listWarmup: 10, submits: 100, submitRounds: 5 },
  quick: false,
};

const quickSettings: AgentBenchSettings = {
  ...fullSettings,
  hello: { runs: 5, warmup: 1 },
  rawExec: { runs: 20, warmup: 3 },
  scale: { ...fullSettings.scale, dockerLevels: [1, 5, 10], rawLevels: [50], windowMs: 3_000, helpers: 3 },
  drillTasks: 10,
  api: { ...fullSettings.api, listRuns: 30, listWarmup: 3, submitRounds: 1 },
  quick: true,
};

const flagNames = [
  'only',
  'hello-runs',
  'raw-runs',
  'docker-levels',
  'raw-levels',
  'window-ms',
  'helpers',
  'drill-tasks',
  'records',
  'list-runs',
  'submits',
] as const;

function levels(flag: string, raw: string | undefined, fallback: number[]): number[] {
  if (raw === undefined) return fallback;
  if (raw.trim() === '') return [];
  const out = raw.split(',').map((part) => integerFlag(flag, part.trim(), 0, 1));
  if (out.some((v, i) => i > 0 && v <= out[i - 1]!)) throw new UsageError(`--${flag} must be ascending, got "${raw}"`);
  return out;
}

function parseSettings(argv: string[]): { settings: AgentBenchSettings; json: boolean } | undefined {
  const flags = parseBenchFlags(argv, usage, flagNames);
  if (!flags) return undefined;
  const { values: v } = flags;
  const base = flags.quick ? quickSettings : fullSettings;
  const int = integerFlag;
  let chosen = base.sections;
  if (v.only !== undefined) {
    chosen = v.only.split(',').map((s) => s.trim()) as Section[];
    const unknown = chosen.filter((s) => !allSections.includes(s));
    if (unknown.length) throw new UsageError(`--only takes ${allSections.join(',')}, not "${unknown.join(',')}"`);
  }
  return {
    settings: {
      ...base,
      sections: chosen,
      hello: { ...base.hello, runs: int('hello-runs', v['hello-runs'], base.hello.runs, 1) },
      rawExec: { ...base.rawExec, runs: int('raw-runs', v['raw-runs'], base.rawExec.runs, 1) },
      scale: {
        ...base.scale,
        dockerLevels: levels('docker-levels', v['docker-levels'], base.scale.dockerLevels),
        rawLevels: levels('raw-levels', v['raw-levels'], base.scale.rawLevels),
        windowMs: int('window-ms', v['window-ms'], base.scale.windowMs, 1_000),
        helpers: int('helpers', v.helpers, base.scale.helpers, 0),
      },
      drillTasks: int('drill-tasks', v['drill-tasks'], base.drillTasks, 5),
      api: {
        ...base.api,
        records: int('records', v.records, base.api.records, 10),
        listRuns: int('list-runs', v['list-runs'], base.api.listRuns, 1),
        submits: int('submits', v.submits, base.api.submits, 1),
      },
    },
    json: flags.json,
  };
}

function progress(message: string): void {
  process.stderr.write(`[bench:agent] ${message}\n`);
}

/** Why Docker cannot be used here, or undefined when the engine answers and has the image. */
async function dockerProblem(): Promise<string | undefined> {
  const docker = new Dockerode();
  try {
    await docker.ping();
  } catch (err) {
    return `the Docker Engine does not answer (${(err as Error).message})`;
  }
  try {
    await docker.getImage(helloImage).inspect();
  } catch {
    return `the image ${helloImage} is not on the engine (the bench never pulls)`;
  }
  return undefined;
}

async function benchLatency(
  cleanup: BenchCleanup,
  settings: AgentBenchSettings,
  docker: boolean,
): Promise<NonNullable<AgentBenchReport['latency']>> {
  const agent = await AgentProcess.start({ cleanup, configFile: writeAgentConfig(cleanup, 'latency', ['docker', 'raw_exec']) });
  const client = new AgentClient(agent.socket);
  try {
    let hello;
    if (docker) {
      progress(`latency: hello container, 2 arms x (${settings.hello.warmup} warm-up + ${settings.hello.runs} runs)`);
      hello = await measureHelloContainer(client, cleanup, settings.hello);
    }
    progress(`latency: raw_exec /bin/true, 2 arms x (${settings.rawExec.warmup} warm-up + ${settings.rawExec.runs} runs)`);
    const rawExec = await measureRawExecTrue(client, settings.rawExec);
    return { agentStartMs: agent.startMs, ...(hello ? { hello } : {}), rawExec };
  } finally {
    client.close();
    await agent.stop();
    await cleanup.removeContainers();
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const parsed = parseSettings(process.argv.slice(2));
  if (!parsed) return;
  const { settings, json } = parsed;
  const cleanup = new BenchCleanup();
  cleanup.installSignalHandlers();
  const environment = describeEnvironment();
  const skipped: string[] = [];
  const partial: Omit<AgentBenchReport, 'ratios' | 'elapsedSeconds'> = { environment, settings, skipped };
  try {
    const problem = await dockerProblem();
    if (problem) {
      skipped.push(`everything with docker tasks: ${problem}`);
      if (process.env.TASKHOST_REQUIRE_DOCKER === '1') throw new Error(`TASKHOST_REQUIRE_DOCKER=1 but ${problem}`);
    }
    const docker = problem === undefined;
    const want = (s: Section) => settings.sections.includes(s);
    if (want('latency')) partial.latency = await benchLatency(cleanup, settings, docker);
    if (want('scale')) {
      const scale = docker ? settings.scale : { ...settings.scale, dockerLevels: [] };
      partial.scale = await measureAgentScale(cleanup, scale);
    }
    if (want('drill')) {
      if (docker) partial.drill = await runKillDrill(cleanup, { tasks: settings.drillTasks });
      else skipped.push('the kill -9 drill (it runs docker and raw_exec tasks)');
    }
    if (want('api')) partial.api = await measureAgentApi(cleanup, settings.api);
  } finally {
    await cleanup.run();
  }
  const report: AgentBenchReport = { ...partial, ratios: collectRatios(partial), elapsedSeconds: (performance.now() - started) / 1000 };
  process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : `${renderAgentReport(report)}\n`);
}

runBenchmark('bench:agent', usage, main);
