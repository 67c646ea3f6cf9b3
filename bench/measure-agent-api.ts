/**
 * The API under load, on a `taskhost agent` process:
 *
 *   - list: 10,000 task records seeded into its store (through AgentStore, before the agent
 *     starts), 1 in 10 labelled team=a; GET /v1/tasks?filter=labels.team==a, serial requests;
 *   - submits: 100 POST /v1/tasks at once (mock tasks that exit at once), in rounds; the time
 *     until the last 201 and each request's latency.
 *
 * The peer is a bare fastify server over its own LMDB (bench/bare-api-server.ts) holding the same
 * records: the same transport and store without the agent's layers (schemas, namespaces, the
 * filter language, the supervisor). There is no target: the ratios say what the layers cost.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentStore } from '../agent/store.js';
import type { TaskRecord } from '../agent/store-records.js';
import { alternate } from './alternate.js';
import { AgentClient } from './agent-client.js';
import { AgentProcess, writeAgentConfig } from './agent-process.js';
import type { BenchCleanup } from './bench-cleanup.js';
import { siblingFile } from './paths.js';
import { bootstrapQuantileRatios, summarize, type Interval, type Summary } from './stats.js';

export interface ApiSettings {
  records: number;
  /** Serial list requests per arm (after `listWarmup` discarded ones). */
  listRuns: number;
  listWarmup: number;
  /** Submissions in flight at once, and rounds of them per arm (after one discarded round each). */
  submits: number;
  submitRounds: number;
}

export interface ListFigures {
  records: number;
  matched: number;
  responseBytes: number;
  ours: Summary;
  peer: Summary;
  ratioP50: number;
  ratioP50Ci: Interval;
  ratioP99: number;
}

export interface SubmitFigures {
  concurrent: number;
  rounds: number;
  /** Milliseconds from the first request to the last answer, per round (median). */
  oursTotalMs: number;
  peerTotalMs: number;
  /** Per request, all rounds together. */
  ours: Summary;
  peer: Summary;
}

export interface ApiReport {
  list: ListFigures;
  submit: SubmitFigures;
}

const progress = (message: string) => process.stderr.write(`[bench:agent] ${message}\n`);
const filter = 'labels.team==a';

/** Writes `count` exited mock-task records into the store of `dataDir`, 1 in 10 labelled team=a. */
async function seedStore(dataDir: string, count: number): Promise<TaskRecord[]> {
  const store = await AgentStore.open({ dataDir });
  const out: TaskRecord[] = [];
  try {
    const now = new Date().toISOString();
    for (let from = 0; from < count; from += 1_000) {
      const batch = await store.transaction((tx) =>
        Array.from({ length: Math.min(1_000, count - from) }, (_, k) => {
          const i = from + k;
          const name = `seed-${i}`;
          return tx.tasks.create(
            {
              id: `seed${i}/${name}/${randomBytes(4).toString('hex')}`,
              namespace: 'default',
              name,
              driver: 'mock',
              state: 'exited',
              labels: { team: i % 10 === 0 ? 'a' : 'b', index: String(i) },
              spec: { name, driver: 'mock', config: { exitCode: 0 }, killTimeout: '5s' },
              exitResult: { exitCode: 0, signal: null, oomKilled: false },
              startedAt: now,
              completedAt: now,
            },
            { event: false },
          );
        }),
      );
      out.push(...batch);
    }
  } finally {
    await store.close();
  }
  return out;
}

async function startPeer(cleanup: BenchCleanup, records: TaskRecord[]): Promise<{ socket: string; stop: () => Promise<void> }> {
  const dir = path.join(cleanup.root, 'api-peer');
  const recordsFile = path.join(cleanup.root, 'api-records.json');
  writeFileSync(recordsFile, JSON.stringify(records));
  const socket = path.join(cleanup.root, 'api-peer.sock');
  const child = cleanup.track(
    spawn(process.execPath, [siblingFile('bare-api-server'), socket, dir, recordsFile], { stdio: ['ignore', 'pipe', 'inherit'] }),
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (s: string) => s.includes('listening') && resolve());
    child.once('exit', (code) => reject(new Error(`the bare API server exited (${code}) before listening`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    socket,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function timedList(client: AgentClient): Promise<{ ms: number; matched: number; bytes: number }> {
  const start = performance.now();
  const res = await client.request<{ tasks: unknown[] }>('GET', `/v1/tasks?filter=${encodeURIComponent(filter)}`);
  const ms = performance.now() - start;
  if (res.status !== 200) throw new Error(`list answered ${res.status}`);
  return { ms, matched: res.json.tasks.length, bytes: JSON.stringify(res.json).length };
}

/** `count` submissions at once; the time to the last answer and each one's latency. */
async function burst(client: AgentClient, count: number, round: number): Promise<{ totalMs: number; latencies: number[] }> {
  const start = performance.now();
  const latencies = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const t = performance.now();
      const res = await client.request('POST', '/v1/tasks', { name: `burst-${round}-${i}`, driver: 'mock', config: { exitCode: 0 } });
      if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${JSON.stringify(res.json)}`);
      return performance.now() - t;
    }),
  );
  return { totalMs: performance.now() - start, latencies };
}

/** Waits until the agent has no burst task left pending or running, so its starts load neither arm's next round. */
async function drained(client: AgentClient): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if ((await client.list('state==pending', 'state==running')).length === 0) return;
    await sleep(100);
  }
  throw new Error('the burst tasks did not all end within 60 s');
}

export async function measureAgentApi(cleanup: BenchCleanup, settings: ApiSettings): Promise<ApiReport> {
  const configFile = writeAgentConfig(cleanup, 'api', ['mock']);
  const dataDir = path.join(path.dirname(configFile), 'data');
  progress(`api: seeding ${settings.records} task records through AgentStore`);
  const records = await seedStore(dataDir, settings.records);
  const agent = await AgentProcess.start({ cleanup, configFile });
  const peer = await startPeer(cleanup, records);
  const ours = new AgentClient(agent.socket, { maxSockets: settings.submits });
  const bursts = new AgentClient(agent.socket, { maxSockets: settings.submits, namespace: 'burst' });
  const bare = new AgentClient(peer.socket, { maxSockets: settings.submits });
  try {
    progress(`api: list with ${filter}, ${settings.listRuns} serial requests per arm`);
    const oursList: number[] = [];
    const peerList: number[] = [];
    let matched = 0;
    let bytes = 0;
    for (let i = 0; i < settings.listWarmup + settings.listRuns; i++) {
      const keep = i >= settings.listWarmup;
      const runOurs = async () => {
        const r = await timedList(ours);
        if (keep) oursList.push(r.ms);
        matched = r.matched;
        bytes = r.bytes;
      };
      const runPeer = async () => {
        const r = await timedList(bare);
        if (keep) peerList.push(r.ms);
        if (r.matched !== matched && matched) throw new Error(`the peer listed ${r.matched} tasks, the agent ${matched}`);
      };
      await alternate(i, runOurs, runPeer);
    }
    const [ci50] = bootstrapQuantileRatios(oursList, peerList, [0.5], 2_000);
    const o = summarize(oursList);
    const p = summarize(peerList);

    progress(`api: ${settings.submits} concurrent submits, ${settings.submitRounds} rounds per arm`);
    const oursTotals: number[] = [];
    const peerTotals: number[] = [];
    const oursLat: number[] = [];
    const peerLat: number[] = [];
    for (let round = 0; round <= settings.submitRounds; round++) {
      const keep = round > 0;
      const runOurs = async () => {
        const r = await burst(bursts, settings.submits, round);
        if (keep) {
          oursTotals.push(r.totalMs);
          oursLat.push(...r.latencies);
        }
        await drained(bursts);
      };
      const runPeer = async () => {
        const r = await burst(bare, settings.submits, round);
        if (keep) {
          peerTotals.push(r.totalMs);
          peerLat.push(...r.latencies);
        }
      };
      await alternate(round, runOurs, runPeer);
    }
    return {
      list: {
        records: settings.records,
        matched,
        responseBytes: bytes,
        ours: o,
        peer: p,
        ratioP50: o.p50 / p.p50,
        ratioP50Ci: ci50!,
        ratioP99: o.p99 / p.p99,
      },
      submit: {
        concurrent: settings.submits,
        rounds: settings.submitRounds,
        oursTotalMs: summarize(oursTotals).p50,
        peerTotalMs: summarize(peerTotals).p50,
        ours: summarize(oursLat),
        peer: summarize(peerLat),
      },
    };
  } finally {
    ours.close();
    bursts.close();
    bare.close();
    await peer.stop();
    await agent.stop();
  }
}
