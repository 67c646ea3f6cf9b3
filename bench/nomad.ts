/**
 * npm run bench:nomad: what the Nomad bridge costs, in one run with the arms interleaved, as
 * same-run ratios with no target yet (issue 11):
 *
 *   1. a small call's round trip through `taskhost nomad serve` (gRPC on its unix socket, the
 *      bridge, the worker hop: Driver/InspectTask of a mock task) against bench:rpc's grpc-js
 *      peer (a plugin process answering inspectTask over gRPC, go-plugin's transport), with the
 *      same mock call made in-process through a DriverManager (the worker hop alone) to show
 *      where the time goes;
 *   2. a raw_exec task's StartTask to WaitTask through the bridge (msgpack task config, output
 *      FIFOs being read as Nomad's logmon reads them) against `spawn` of the same command.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { encode } from '@msgpack/msgpack';
import { pino } from 'pino';
import { nomadMagicCookie } from '../bridges/nomad/go-plugin-server.js';
import { protoAt } from '../bridges/nomad/nomad-protos.js';
import { DriverManager } from '../drivers/driver-manager.js';
import { parseAgentConfig } from '../plugin-loader/agent-config.js';
import { PluginLoader } from '../plugin-loader/loader.js';
import { findBenchPlugin } from './bench-plugin.js';
import { describeEnvironment, type Environment } from './environment.js';
import { integerFlag, parseBenchFlags, runBenchmark } from './flags.js';
import { formatNumber, formatTable } from './format-table.js';
import { GrpcPluginClient } from './grpc-plugin-client.js';
import { measureLatency, type CallArm } from './measure-calls.js';
import { repoRoot } from './paths.js';
import { summarize, type Summary } from './stats.js';

const usage = `Usage: node dist/bench/nomad.js [options]   (or: npm run bench:nomad -- [options])

  --calls N        measured serial calls per call arm        (default 3000)
  --block N        calls per interleaved block               (default 200)
  --warmup N       discarded warm-up calls per call arm      (default 300)
  --lifecycles N   measured task lifecycles per arm          (default 40)
  --quick          small counts for a smoke test (explicit flags still win)
  --json           print one JSON document instead of the tables
  --help`;

interface Settings {
  calls: number;
  block: number;
  warmup: number;
  lifecycles: number;
  quick: boolean;
}

const full: Settings = { calls: 3_000, block: 200, warmup: 300, lifecycles: 40, quick: false };
const quick: Settings = { calls: 300, block: 100, warmup: 50, lifecycles: 5, quick: true };

function progress(message: string): void {
  process.stderr.write(`[bench:nomad] ${message}\n`);
}

type Unary = (request: unknown, callback: (err: grpc.ServiceError | null, reply: unknown) => void) => void;

/** `taskhost nomad serve <driver>` as Nomad starts it, and a Driver client on its socket. */
class ServedDriver {
  private constructor(
    readonly child: ChildProcess,
    readonly client: grpc.Client,
  ) {}

  static async launch(driver: string, configFile: string): Promise<ServedDriver> {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin/taskhost.js'), '--config', configFile, 'nomad', 'serve', driver], {
      env: { ...process.env, [nomadMagicCookie.key]: nomadMagicCookie.value, PLUGIN_PROTOCOL_VERSIONS: '2' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`taskhost nomad serve ${driver} exited (${code}) before its handshake`)));
    });
    const socket = line.split('|')[3]!;
    const Driver = protoAt<grpc.ServiceClientConstructor>('hashicorp.nomad.plugins.drivers.proto.Driver');
    return new ServedDriver(child, new Driver(`unix:${socket}`, grpc.credentials.createInsecure()));
  }

  call<T = Record<string, unknown>>(method: string, request: unknown = {}): Promise<T> {
    const fn = (this.client as unknown as Record<string, Unary>)[method]!.bind(this.client);
    return new Promise((resolve, reject) => fn(request, (err, reply) => (err ? reject(err) : resolve(reply as T))));
  }

  async close(): Promise<void> {
    this.client.close();
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}

/** A Nomad TaskConfig in an alloc dir of its own; with `fifos`, stdout and stderr FIFOs being read. */
function nomadTask(root: string, name: string, driverConfig: Record<string, unknown>, fifos: boolean) {
  const allocDir = path.join(root, randomUUID());
  const logs = path.join(allocDir, 'alloc', 'logs');
  for (const d of [logs, path.join(allocDir, name, 'local'), path.join(allocDir, name, 'secrets')]) mkdirSync(d, { recursive: true });
  const stdoutPath = fifos ? path.join(logs, `.${name}.stdout.fifo`) : '';
  const stderrPath = fifos ? path.join(logs, `.${name}.stderr.fifo`) : '';
  let drained: Promise<unknown> = Promise.resolve();
  if (fifos) {
    execFileSync('mkfifo', [stdoutPath, stderrPath]);
    drained = Promise.all(
      [stdoutPath, stderrPath].map(
        (f) =>
          new Promise<void>((resolve, reject) => {
            const s = createReadStream(f);
            s.on('data', () => undefined);
            s.on('end', () => resolve());
            s.on('error', reject);
          }),
      ),
    );
  }
  const allocId = randomUUID();
  const task = {
    id: `${allocId}/${name}/${randomBytes(4).toString('hex')}`,
    name,
    msgpack_driver_config: Buffer.from(encode(driverConfig)),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NOMAD_TASK_NAME: name },
    alloc_dir: allocDir,
    stdout_path: stdoutPath,
    stderr_path: stderrPath,
    task_group_name: 'group',
    job_name: 'job',
    alloc_id: allocId,
  };
  return { task, drained };
}

interface CallReport {
  latencyUs: Record<string, Summary>;
}

async function benchCalls(root: string, configFile: string, settings: Settings): Promise<CallReport> {
  const arms: (CallArm & { close(): Promise<void> })[] = [];
  try {
    const served = await ServedDriver.launch('mock', configFile);
    arms.push({ key: 'bridge', call: () => Promise.resolve(), close: () => served.close() });
    const { task } = nomadTask(root, 'inspected', { run_for: '1h' }, false);
    await served.call('StartTask', { task });
    arms[0] = { ...arms[0]!, call: () => served.call('InspectTask', { task_id: task.id }) };

    const candidate = await findBenchPlugin();
    const peer = await GrpcPluginClient.launch({ entry: candidate.entry, methods: ['inspectTask'] });
    arms.push({ key: 'peer', call: () => peer.call('inspectTask', [task.id]), close: () => peer.close() });

    const config = parseAgentConfig(JSON.parse(readFileSync(configFile, 'utf8')));
    const loader = new PluginLoader({ config, logger: pino({ level: 'silent' }), only: { names: ['mock'] } });
    const manager = new DriverManager({ loader, logger: pino({ level: 'silent' }) });
    await manager.start();
    const local = nomadTask(root, 'local', {}, false).task;
    const taskDir = path.join(local.alloc_dir, 'local');
    await manager.startTask(
      {
        id: local.id,
        name: local.name,
        allocId: local.alloc_id,
        jobName: 'job',
        groupName: 'group',
        driver: 'mock',
        config: { runFor: '1h' },
        env: {},
        deviceEnv: {},
        resources: {},
        devices: [],
        mounts: [],
        killTimeoutMs: 5_000,
        allocDir: local.alloc_dir,
        taskDir,
        secretsDir: path.join(local.alloc_dir, 'local', 'secrets'),
        stdoutPath: path.join(taskDir, 'out'),
        stderrPath: path.join(taskDir, 'err'),
      },
      AbortSignal.timeout(60_000),
    );
    arms.push({
      key: 'worker hop',
      call: () => manager.inspectTask(local.id),
      close: async () => (await manager.close(), await loader.close()),
    });

    progress(`call latency: ${arms.length} arms x (${settings.warmup} warm-up + ${settings.calls} calls)`);
    const samples = await measureLatency(arms, settings);
    return { latencyUs: Object.fromEntries([...samples].map(([k, s]) => [k, summarize(s)])) };
  } finally {
    await Promise.all(arms.map((a) => a.close().catch(() => undefined)));
  }
}

async function benchLifecycles(root: string, configFile: string, settings: Settings): Promise<Record<string, Summary>> {
  const served = await ServedDriver.launch('raw_exec', configFile);
  const bridge: number[] = [];
  const bare: number[] = [];
  try {
    const once = async () => {
      const { task, drained } = nomadTask(root, 'quick', { command: 'true', args: [], cwd: null }, true);
      const start = performance.now();
      await served.call('StartTask', { task });
      await served.call('WaitTask', { task_id: task.id });
      const ms = performance.now() - start;
      await drained;
      await served.call('DestroyTask', { task_id: task.id, force: true });
      return ms;
    };
    const spawned = () =>
      new Promise<number>((resolve, reject) => {
        const start = performance.now();
        const child = spawn('true', [], { stdio: 'ignore' });
        child.once('error', reject);
        child.once('exit', () => resolve(performance.now() - start));
      });
    progress(`raw_exec lifecycles: 2 arms x (2 warm-up + ${settings.lifecycles})`);
    for (let i = 0; i < 2; i++) {
      await once();
      await spawned();
    }
    // Alternating which arm goes first, so drift lands on both alike.
    for (let i = 0; i < settings.lifecycles; i++) {
      if (i % 2 === 0) bridge.push(await once());
      bare.push(await spawned());
      if (i % 2 === 1) bridge.push(await once());
    }
  } finally {
    await served.close();
  }
  return { bridge: summarize(bridge), spawn: summarize(bare) };
}

interface NomadBenchReport {
  environment: Environment;
  settings: Settings;
  calls: CallReport;
  lifecycleMs: Record<string, Summary>;
  ratios: { name: string; value: number }[];
  seconds: number;
}

function render(r: NomadBenchReport): string {
  const us = (s: Summary) => [formatNumber(s.p50), formatNumber(s.p90), formatNumber(s.p99)];
  const calls = formatTable(
    ['call (µs)', 'p50', 'p90', 'p99'],
    Object.entries(r.calls.latencyUs).map(([k, s]) => [k, ...us(s)]),
  );
  const lifecycles = formatTable(
    ['start to exit (ms)', 'p50', 'p90', 'p99'],
    Object.entries(r.lifecycleMs).map(([k, s]) => [k, ...us(s)]),
  );
  const ratios = formatTable(
    ['ratio (no target yet)', 'value'],
    r.ratios.map((x) => [x.name, formatNumber(x.value)]),
  );
  const env = r.environment;
  return [
    `bench:nomad on ${env.cpus}x ${env.cpuModel}, node ${env.node}, load ${env.loadAverage.join(' ')}${r.settings.quick ? ' (--quick)' : ''}`,
    '',
    calls,
    '',
    lifecycles,
    '',
    ratios,
    '',
    `${formatNumber(r.seconds)} s`,
  ].join('\n');
}

async function main(): Promise<void> {
  const started = performance.now();
  const flags = parseBenchFlags(process.argv.slice(2), usage, ['calls', 'block', 'warmup', 'lifecycles']);
  if (!flags) return;
  const base = flags.quick ? quick : full;
  const v = flags.values;
  const settings: Settings = {
    calls: integerFlag('calls', v.calls, base.calls, 1),
    block: integerFlag('block', v.block, base.block, 1),
    warmup: integerFlag('warmup', v.warmup, base.warmup, 0),
    lifecycles: integerFlag('lifecycles', v.lifecycles, base.lifecycles, 1),
    quick: flags.quick,
  };
  const environment = describeEnvironment();
  const root = await mkdtemp(path.join(os.tmpdir(), 'taskhost-bench-nomad-'));
  try {
    const configFile = path.join(root, 'agent.json');
    writeFileSync(configFile, JSON.stringify({ pluginDir: path.join(root, 'no-plugins'), dataDir: path.join(root, 'data') }));
    const calls = await benchCalls(root, configFile, settings);
    const lifecycleMs = await benchLifecycles(root, configFile, settings);
    const l = calls.latencyUs;
    const report: NomadBenchReport = {
      environment,
      settings,
      calls,
      lifecycleMs,
      ratios: [
        { name: 'call p50, bridge ÷ grpc-js peer', value: l.bridge!.p50 / l.peer!.p50 },
        { name: 'call p99, bridge ÷ grpc-js peer', value: l.bridge!.p99 / l.peer!.p99 },
        { name: 'call p50, bridge ÷ worker hop (explanatory)', value: l.bridge!.p50 / l['worker hop']!.p50 },
        { name: 'raw_exec start to exit p50, bridge ÷ spawn', value: lifecycleMs.bridge!.p50 / lifecycleMs.spawn!.p50 },
        { name: 'raw_exec start to exit p90, bridge ÷ spawn', value: lifecycleMs.bridge!.p90 / lifecycleMs.spawn!.p90 },
      ],
      seconds: (performance.now() - started) / 1000,
    };
    process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${render(report)}\n`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

runBenchmark('bench:nomad', usage, main);
