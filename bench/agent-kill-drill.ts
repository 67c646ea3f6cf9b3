/**
 * The kill -9 drill: running tasks (docker and raw_exec, alternating), a real `taskhost agent`
 * process killed with SIGKILL, started again. Each task appends a line to `<alloc>/runs` when it
 * starts and exits with its own code (10 + its index) once the benchmark creates `<alloc>/exit`,
 * so the benchmark chooses when each exits:
 *
 *   - group A (every 5th task) exits before the kill: recorded by the first agent;
 *   - group B (2 in 5) exits while the agent is down: the second agent must find the real code;
 *   - group C (the rest) is still running after the restart: the second agent must recover it.
 *
 * PASS only when no task is lost (every record ends `exited`), none ran twice (one line in its
 * `runs` file, at most one container per docker task), and every exit code is the task's own.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskRecord } from '../agent/store-records.js';
import { AgentClient } from './agent-client.js';
import { AgentProcess, writeAgentConfig } from './agent-process.js';
import { processesUnder, type BenchCleanup } from './bench-cleanup.js';
import { helloImage } from './measure-submit-latency.js';
import { inPool } from './measure-agent-scale.js';

export interface DrillSettings {
  tasks: number;
}

type Group = 'A' | 'B' | 'C';

export interface DrillTaskOutcome {
  index: number;
  driver: 'docker' | 'raw_exec';
  group: Group;
  expectedExitCode: number;
  state: string;
  exitCode: number | undefined;
  runs: number;
  problem?: string;
}

export interface DrillReport {
  tasks: number;
  byGroup: Record<Group, number>;
  /** ms: kill to the second agent listening; its start alone; restart to every record as expected; kill to that. */
  downMs: number;
  restartListenMs: number;
  restartToRecoveredMs: number | undefined;
  killToRecoveredMs: number | undefined;
  /** The states right after recovery, before group C is let go. */
  recoveredStates: Record<string, number>;
  lost: number;
  reRun: number;
  wrongExitCode: number;
  outcomes: DrillTaskOutcome[];
  verdict: 'PASS' | 'MISS';
}

const progress = (message: string) => process.stderr.write(`[bench:agent] ${message}\n`);

const groupOf = (i: number): Group => (i % 5 === 0 ? 'A' : i % 5 <= 2 ? 'B' : 'C');
const exitCodeOf = (i: number) => 10 + i;
const driverOf = (i: number): 'docker' | 'raw_exec' => (i % 2 === 0 ? 'docker' : 'raw_exec');

/** Appends to runs at start, then waits for the exit file and exits with `code`. */
const script = (code: number) =>
  `echo run >> "$TASKHOST_ALLOC_DIR/runs"; while [ ! -e "$TASKHOST_ALLOC_DIR/exit" ]; do sleep 1; done; exit ${code}`;

function spec(i: number): unknown {
  const labels = { bench: 'drill', index: String(i) };
  const args = ['-c', script(exitCodeOf(i))];
  return driverOf(i) === 'docker'
    ? {
        name: `drill-${i}`,
        driver: 'docker',
        labels,
        killTimeout: '1s',
        config: { image: helloImage, command: 'sh', args, networkMode: 'none' },
      }
    : { name: `drill-${i}`, driver: 'raw_exec', labels, killTimeout: '1s', config: { command: '/bin/sh', args } };
}

/** The host side of a task's alloc dir: `<dataDir>/allocs/<allocId>/alloc` (the id is `<allocId>/<name>/<suffix>`). */
const allocDirOf = (dataDir: string, id: string) => path.join(dataDir, 'allocs', id.split('/')[0]!, 'alloc');

function runsOf(dataDir: string, id: string): number {
  const file = path.join(allocDirOf(dataDir, id), 'runs');
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
}

async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`drill: ${what} did not happen within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

export async function runKillDrill(cleanup: BenchCleanup, settings: DrillSettings): Promise<DrillReport> {
  const configFile = writeAgentConfig(cleanup, 'drill', ['docker', 'raw_exec']);
  let agent = await AgentProcess.start({ cleanup, configFile });
  let client = new AgentClient(agent.socket);
  const n = settings.tasks;
  const indexes = Array.from({ length: n }, (_, i) => i);
  const ids: string[] = [];
  try {
    progress(`kill drill: ${n} tasks (docker and raw_exec alternating)`);
    ids.push(...(await inPool(n, 8, async (i) => (await client.submit(spec(i))).id)));
    const dataDir = agent.dataDir;
    await until('every drill task running and marked', 300_000, async () => {
      const tasks = await client.list('labels.bench==drill');
      const bad = tasks.find((t) => t.state !== 'running' && t.state !== 'pending');
      if (bad) throw new Error(`drill task ${bad.name} is ${bad.state} before the kill: ${JSON.stringify(bad.error ?? bad.exitResult)}`);
      return tasks.every((t) => t.state === 'running') && ids.every((id) => runsOf(dataDir, id) > 0) ? true : undefined;
    });
    const release = (group: Group) => {
      for (const i of indexes.filter((j) => groupOf(j) === group)) writeFileSync(path.join(allocDirOf(dataDir, ids[i]!), 'exit'), '');
    };
    const inGroup = (group: Group) => indexes.filter((i) => groupOf(i) === group);

    release('A');
    await Promise.all(inGroup('A').map((i) => client.wait(ids[i]!)));
    progress('kill drill: group A exited; kill -9 of the agent, then group B exits while it is down');
    client.close();
    const killedAt = performance.now();
    await agent.kill9();
    release('B');
    // Down until every B task has really exited: no process left in its alloc, its container stopped.
    await until('group B exiting while the agent is down', 60_000, async () => {
      for (const i of inGroup('B')) {
        const id = ids[i]!;
        if (driverOf(i) === 'raw_exec') {
          if ((await processesUnder(path.dirname(allocDirOf(dataDir, id)))).length) return undefined;
        } else {
          const running = await cleanup.docker.listContainers({ filters: { label: [`com.taskhost.task_id=${id}`], status: ['running'] } });
          if (running.length) return undefined;
        }
      }
      return true;
    });
    const downMs = performance.now() - killedAt;

    progress('kill drill: starting the agent again');
    const restartedAt = performance.now();
    agent = await AgentProcess.start({ cleanup, configFile });
    client = new AgentClient(agent.socket);
    const restartListenMs = agent.startMs;
    let restartToRecoveredMs: number | undefined;
    let recovered: TaskRecord[] = [];
    try {
      recovered = await until('every task recovered', 60_000, async () => {
        const tasks = await client.list('labels.bench==drill');
        const byId = new Map(tasks.map((t) => [t.id, t]));
        // Reconciled: A and B ended (their exits found), C back to running; a task lost or
        // failed counts as reconciled too (it will not recover later), and shows in the outcome.
        const done = indexes.every((i) => {
          const state = byId.get(ids[i]!)?.state;
          if (state === undefined || state === 'pending') return false;
          return groupOf(i) === 'C' || state !== 'running';
        });
        return done ? tasks : undefined;
      });
      restartToRecoveredMs = performance.now() - restartedAt;
    } catch (err) {
      progress(String(err));
      recovered = await client.list('labels.bench==drill');
    }
    const recoveredStates: Record<string, number> = {};
    for (const t of recovered) recoveredStates[t.state] = (recoveredStates[t.state] ?? 0) + 1;
    // Before C exits: one container per running docker task, no more.
    const containers = await cleanup.docker.listContainers({ all: true, filters: { label: [cleanup.label] } });
    const containersOf = (id: string) => containers.filter((c) => c.Labels['com.taskhost.task_id'] === id).length;

    progress('kill drill: letting group C exit');
    release('C');
    await Promise.all(
      inGroup('C').map((i) =>
        client
          .wait(ids[i]!, AbortSignal.timeout(60_000))
          .catch((err: unknown) => progress(`kill drill: wait for drill-${i}: ${String(err)}`)),
      ),
    );
    const final = new Map((await client.list('labels.bench==drill')).map((t) => [t.id, t]));
    const outcomes: DrillTaskOutcome[] = indexes.map((i) => {
      const id = ids[i]!;
      const record = final.get(id);
      const runs = runsOf(dataDir, id);
      const outcome: DrillTaskOutcome = {
        index: i,
        driver: driverOf(i),
        group: groupOf(i),
        expectedExitCode: exitCodeOf(i),
        state: record?.state ?? 'missing',
        exitCode: record?.exitResult?.exitCode,
        runs: Math.max(runs, driverOf(i) === 'docker' ? containersOf(id) : 0),
      };
      const problems: string[] = [];
      if (outcome.state !== 'exited') problems.push(`${outcome.state}: ${record?.error?.message ?? 'no record'}`);
      if (outcome.runs !== 1) problems.push(`ran ${outcome.runs} times`);
      if (outcome.state === 'exited' && outcome.exitCode !== outcome.expectedExitCode) {
        problems.push(`exit code ${outcome.exitCode} (${record?.exitResult?.err ?? 'no error'}), expected ${outcome.expectedExitCode}`);
      }
      if (problems.length) outcome.problem = problems.join('; ');
      return outcome;
    });
    const lost = outcomes.filter((o) => o.state !== 'exited').length;
    const reRun = outcomes.filter((o) => o.runs > 1).length;
    const wrongExitCode = outcomes.filter((o) => o.state === 'exited' && o.exitCode !== o.expectedExitCode).length;
    const byGroup = { A: inGroup('A').length, B: inGroup('B').length, C: inGroup('C').length };
    return {
      tasks: n,
      byGroup,
      downMs,
      restartListenMs,
      restartToRecoveredMs,
      killToRecoveredMs: restartToRecoveredMs === undefined ? undefined : restartedAt - killedAt + restartToRecoveredMs,
      recoveredStates,
      lost,
      reRun,
      wrongExitCode,
      outcomes,
      verdict: lost === 0 && reRun === 0 && wrongExitCode === 0 && restartToRecoveredMs !== undefined ? 'PASS' : 'MISS',
    };
  } finally {
    client.close();
    await agent.stop();
    await cleanup.removeContainers();
    await cleanup.killProcessesUnder(agent.dataDir);
  }
}
