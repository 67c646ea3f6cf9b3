/**
 * An agent in its own process, as it runs for real: `taskhost agent --config F` (bin/taskhost.js),
 * or the benchmark's stats agent (bench/stats-agent.ts: the same Agent, plus a stats stream per
 * task the benchmark asks for, over IPC). The benchmark talks to it over its unix socket and
 * reads its memory and CPU time from /proc, so the figures are the agent process's alone: the
 * Docker Engine, the containers and the benchmark itself are not in them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentSocket } from '../agent/agent.js';
import { runLabelKey, type BenchCleanup } from './bench-cleanup.js';
import { repoRoot, siblingFile } from './paths.js';
import { processCpuMs } from './process-cpu.js';
import { readProcessMemory, type ProcessMemory } from './process-memory.js';

/** The drivers an agent of the benchmark hosts (device plugins are off: nothing here uses them). */
export type AgentDriver = 'docker' | 'raw_exec' | 'mock';
const allDrivers: readonly AgentDriver[] = ['docker', 'raw_exec', 'mock'];

/**
 * Writes `<dir>/agent.json` for an agent on `<dir>/data` hosting `drivers`, and returns its path.
 * The Docker driver labels every container with the run's label (so cleanup finds them) and
 * never collects images: busybox cannot be pulled again on a machine without the internet.
 */
export function writeAgentConfig(cleanup: BenchCleanup, name: string, drivers: readonly AgentDriver[]): string {
  const dir = path.join(cleanup.root, name);
  mkdirSync(dir, { recursive: true });
  const plugins: Record<string, unknown> = { 'example-file': { enabled: false }, nvidia: { enabled: false } };
  for (const d of allDrivers) plugins[d] = { enabled: drivers.includes(d) };
  if (drivers.includes('docker')) {
    plugins.docker = { enabled: true, config: { gc: { image: false }, extraLabels: { [runLabelKey]: cleanup.runId } } };
  }
  const file = path.join(dir, 'agent.json');
  writeFileSync(
    file,
    JSON.stringify({ pluginDir: path.join(dir, 'no-plugins'), dataDir: path.join(dir, 'data'), logLevel: 'warn', plugins }, null, 2),
  );
  return file;
}

export interface AgentProcessOptions {
  cleanup: BenchCleanup;
  configFile: string;
  /** `cli`: `taskhost agent`; `stats`: bench/stats-agent.js, which takes stats commands over IPC. */
  kind?: 'cli' | 'stats';
  /** How long the agent may take to listen (a start after kill -9 recovers every task first). */
  startTimeoutMs?: number;
}

/** A message the stats agent answers over IPC. */
export type StatsCommand = { type: 'stats'; ids: string[]; intervalMs: number } | { type: 'stats-report' } | { type: 'stats-stop' };

export interface StatsReport {
  /** Streams open now, samples received since the last report, streams that ended with an error. */
  open: number;
  samples: number;
  errors: string[];
}

export class AgentProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly socket: string;
  readonly dataDir: string;
  /** Milliseconds from spawn to the agent saying it listens. */
  readonly startMs: number;
  readonly #log: { text: string };
  readonly #exited: Promise<void>;

  private constructor(child: ChildProcess, socket: string, dataDir: string, startMs: number, log: { text: string }, exited: Promise<void>) {
    this.child = child;
    this.pid = child.pid!;
    this.socket = socket;
    this.dataDir = dataDir;
    this.startMs = startMs;
    this.#log = log;
    this.#exited = exited;
  }

  /** Spawns the agent and resolves once it listens; rejects with its stderr if it exits first. */
  static async start(options: AgentProcessOptions): Promise<AgentProcess> {
    const kind = options.kind ?? 'cli';
    const dataDir = path.join(path.dirname(options.configFile), 'data');
    const args =
      kind === 'cli'
        ? [path.join(repoRoot, 'bin', 'taskhost.js'), '--config', options.configFile, 'agent']
        : [siblingFile('stats-agent'), options.configFile];
    const started = performance.now();
    const child = options.cleanup.track(
      spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe', ...(kind === 'stats' ? ['ipc' as const] : [])] }),
    );
    const log = { text: '' };
    // A failed send or kill is reported where it is made; without a listener it would crash the bench.
    child.on('error', (err) => (log.text += `\n[bench] ${err.message}\n`));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let listening!: () => void;
    const listeningNow = new Promise<void>((resolve) => (listening = resolve));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      log.text = (log.text + chunk).slice(-64 * 1024);
      if (log.text.includes('agent listening on')) listening();
    });
    const timeoutMs = options.startTimeoutMs ?? 120_000;
    const outcome = await Promise.race([
      listeningNow.then(() => 'listening' as const),
      exited.then(() => 'exited' as const),
      sleep(timeoutMs, 'timeout' as const, { ref: false }),
    ]);
    if (outcome !== 'listening') {
      child.kill('SIGKILL');
      await exited;
      throw new Error(
        `the agent (${args.join(' ')}) ${outcome === 'exited' ? 'exited' : `did not listen within ${timeoutMs} ms`}: ${log.text}`,
      );
    }
    return new AgentProcess(child, agentSocket(dataDir), dataDir, performance.now() - started, log, exited);
  }

  /** The agent's stderr, the last 64 KiB. */
  get log(): string {
    return this.#log.text;
  }

  memory(): Promise<ProcessMemory> {
    return readProcessMemory(this.pid);
  }

  cpuMs(): Promise<number> {
    return processCpuMs(this.pid);
  }

  /** kill -9, and resolves once the process is gone. */
  async kill9(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.#exited;
  }

  /** SIGTERM (the agent stops and leaves its tasks running); SIGKILL after 30 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    if ((await Promise.race([this.#exited.then(() => 'exited'), sleep(30_000, 'timeout', { ref: false })])) === 'timeout')
      await this.kill9();
  }

  /** Sends a command to the stats agent and resolves with its answer. */
  command(message: StatsCommand): Promise<StatsReport> {
    if (!this.child.connected) return Promise.reject(new Error(`the stats agent is gone: ${this.log}`));
    return new Promise((resolve, reject) => {
      const onMessage = (reply: unknown) => {
        this.child.off('exit', onExit);
        resolve(reply as StatsReport);
      };
      const onExit = () => {
        this.child.off('message', onMessage);
        reject(new Error(`the stats agent exited: ${this.log}`));
      };
      this.child.once('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send(message, (err) => {
        if (!err) return;
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
        reject(err);
      });
    });
  }
}
