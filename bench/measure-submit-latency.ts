/**
 * Submit to exit through a running agent, against doing the same without one:
 *
 *   - a hello container: POST /v1/tasks + GET /v1/tasks/{id}/wait over the agent's unix socket,
 *     against `docker run --rm --network none busybox:1.35 echo hello` (the same image and
 *     command; the CLI also waits for the container's removal, the agent answers the wait once
 *     the exit is recorded and removes the container after that);
 *   - raw_exec `/bin/true`: the same two requests, against `child_process.spawn('/bin/true')`
 *     awaited to 'exit'.
 *
 * The arms alternate run by run (AB BA), after discarded warm-up runs of each.
 */
import { spawn } from 'node:child_process';
import type { AgentClient } from './agent-client.js';
import { alternate } from './alternate.js';
import type { BenchCleanup } from './bench-cleanup.js';
import { judge, type Ratio } from './report.js';
import { bootstrapQuantileRatios, summarize, type Summary } from './stats.js';

export const helloImage = 'busybox:1.35';

export interface LatencySettings {
  runs: number;
  warmup: number;
}

export interface LatencyReport {
  what: string;
  ours: Summary;
  /** The POST /v1/tasks round trip alone (the record stored before the driver is called). */
  oursSubmit: Summary;
  peer: Summary;
  ratio: Ratio;
}

interface Arms {
  ours(): Promise<{ total: number; submit: number }>;
  peer(): Promise<number>;
}

/** Runs both arms `warmup` + `runs` times, alternating, and returns the ratio of the p50s. */
async function measure(what: string, arms: Arms, settings: LatencySettings, target?: number): Promise<LatencyReport> {
  const ours: number[] = [];
  const submits: number[] = [];
  const peer: number[] = [];
  for (let i = 0; i < settings.warmup + settings.runs; i++) {
    const keep = i >= settings.warmup;
    const runOurs = async () => {
      const t = await arms.ours();
      if (!keep) return;
      ours.push(t.total);
      submits.push(t.submit);
    };
    const runPeer = async () => {
      const t = await arms.peer();
      if (keep) peer.push(t);
    };
    // Neither arm always runs first (right after the other's garbage, or on a warm cache).
    await alternate(i, runOurs, runPeer);
  }
  const o = summarize(ours);
  const p = summarize(peer);
  const [ci] = bootstrapQuantileRatios(ours, peer, [0.5], 2_000);
  return {
    what,
    ours: o,
    oursSubmit: summarize(submits),
    peer: p,
    ratio: judge({ name: `${what}, p50 ours ÷ peer`, value: o.p50 / p.p50, ci: ci!, ...(target === undefined ? {} : { target }) }),
  };
}

/** Submits `spec`, waits for its exit, and checks it exited 0. Milliseconds. */
async function throughAgent(client: AgentClient, spec: unknown): Promise<{ total: number; submit: number }> {
  const start = performance.now();
  const record = await client.submit(spec);
  const submitted = performance.now();
  const done = await client.wait(record.id);
  const total = performance.now() - start;
  if (done.state !== 'exited' || done.exitResult?.exitCode !== 0) {
    throw new Error(`task ${done.id} ended ${done.state} ${JSON.stringify(done.exitResult ?? done.error)}, expected exit code 0`);
  }
  return { total, submit: submitted - start };
}

/** Spawns a command to its exit; rejects unless it exits 0 (and printed `expect`, when given). Milliseconds. */
function spawnToExit(command: string, args: string[], expect?: string): Promise<number> {
  const start = performance.now();
  const child = spawn(command, args, { stdio: ['ignore', expect === undefined ? 'ignore' : 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const ms = performance.now() - start;
      if (code !== 0) reject(new Error(`${command} ${args.join(' ')} exited ${signal ?? code}: ${err}`));
      else if (expect !== undefined && out !== expect)
        reject(new Error(`${command} printed ${JSON.stringify(out)}, not ${JSON.stringify(expect)}`));
      else resolve(ms);
    });
  });
}

export async function measureHelloContainer(client: AgentClient, cleanup: BenchCleanup, settings: LatencySettings): Promise<LatencyReport> {
  const spec = { name: 'hello', driver: 'docker', config: { image: helloImage, command: 'echo', args: ['hello'], networkMode: 'none' } };
  // The run's label too, so a container the CLI leaves behind on Ctrl-C is found and removed.
  const dockerArgs = ['run', '--rm', '--network', 'none', '--label', cleanup.label, helloImage, 'echo', 'hello'];
  return measure(
    `hello container (${helloImage}, echo hello)`,
    { ours: () => throughAgent(client, spec), peer: () => spawnToExit('docker', dockerArgs, 'hello\n') },
    settings,
    1.1,
  );
}

export async function measureRawExecTrue(client: AgentClient, settings: LatencySettings): Promise<LatencyReport> {
  const spec = { name: 'true', driver: 'raw_exec', config: { command: '/bin/true' } };
  return measure('raw_exec /bin/true', { ours: () => throughAgent(client, spec), peer: () => spawnToExit('/bin/true', []) }, settings);
}
