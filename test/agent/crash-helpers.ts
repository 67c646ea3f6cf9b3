// For the crash tests: the real `taskhost agent` (the CLI from sources) as a child process, on a
// data dir of its own, driven over its real unix socket, killed with -9 (or made to kill itself
// at a crash point, shared/crash-points.ts) and started again. Tasks write one line to a file per
// run, so "ran exactly once" is a line count; everything a test started (agents, task processes,
// containers) is killed and removed at its teardown.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type Docker from 'dockerode';
import type { TaskRecord } from '../../agent/store-records.js';
import type { CrashPoint } from '../../shared/crash-points.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';
import { request, taskPath } from './agent-request.js';
import { BUSYBOX_IMAGE } from '../helpers/docker.js';
import { tsxChildEnv, tsxLoader } from '../helpers/tsx-child.js';

const cli = new URL('./fixtures/agent-cli.ts', import.meta.url).pathname;

/** Every container a home's agent makes carries it (the docker plugin's extraLabels), for the teardown. */
export const homeLabel = 'org.taskhost.test-home';
/** The docker driver's label with the task id (drivers/docker/container-spec.ts). */
export const taskIdLabel = 'com.taskhost.task_id';

/** A generous bound for anything to happen on a busy machine. */
export const patience = 90_000;

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** One agent's world: its data dir and config, a work dir for the tasks' files. */
export interface Home {
  id: string;
  dataDir: string;
  configFile: string;
  socket: string;
  /** Where raw_exec tasks keep their files; its path is in their command line (see killTaskProcesses). */
  work: string;
  agents: AgentProcess[];
}

export interface AgentProcess {
  pid: number;
  /** How it ended: an exit code, or the signal that killed it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with how it ended, failing if it is still running after `patience`. */
  ended(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  kill(signal: NodeJS.Signals): void;
}

/**
 * A fresh home: the docker plugin labels its containers with the home's id; the device plugins
 * are off (they have nothing to do here). The teardown kills the home's agents, task processes
 * and containers, then removes its directories.
 */
export function createHome(t: Teardown, docker?: Docker, dockerConfig: Record<string, unknown> = {}): Home {
  const root = mkdtempSync(path.join(tmpdir(), 'taskhost-crash-'));
  const id = randomBytes(4).toString('hex');
  const dataDir = path.join(root, 'data');
  const work = path.join(root, 'work');
  const configFile = path.join(root, 'agent.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      pluginDir: path.join(root, 'no-plugins'),
      dataDir,
      supervision: { ...fastSupervision, startTimeout: '120s' },
      plugins: {
        nvidia: { enabled: false },
        'example-file': { enabled: false },
        docker: { config: { ...dockerConfig, extraLabels: { [homeLabel]: id } } },
      },
    }),
  );
  mkdirSync(work);
  const home: Home = { id, dataDir, configFile, socket: path.join(dataDir, 'agent.sock'), work, agents: [] };
  t.teardown(async () => {
    for (const agent of home.agents) {
      agent.kill('SIGKILL');
      await agent.exited;
    }
    killTaskProcesses(home.work);
    if (docker) await removeContainers(docker, home.id);
    rmSync(root, { recursive: true, force: true });
  });
  return home;
}

/**
 * Starts `taskhost agent` on the home and resolves once it listens. With `crashAt`, it kills
 * itself with SIGKILL when a task reaches that step (TASKHOST_TEST_CRASH_AT).
 */
export async function startAgent(home: Home, options: { crashAt?: CrashPoint } = {}): Promise<AgentProcess> {
  const env = tsxChildEnv();
  delete env.TASKHOST_TEST_CRASH_AT;
  if (options.crashAt) env.TASKHOST_TEST_CRASH_AT = options.crashAt;
  const child = spawn(process.execPath, ['--import', tsxLoader, cli, '--config', home.configFile, 'agent'], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let ending: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((how) => (ending = how));
  const agent: AgentProcess = {
    pid: child.pid!,
    exited,
    ended: () => until(`agent ${child.pid} to exit`, () => ending),
    stderr: () => stderr,
    kill: (signal) => child.kill(signal),
  };
  home.agents.push(agent);
  await until('the agent to listen', () => {
    if (ending) throw new Error(`the agent exited (${JSON.stringify(ending)}) before it listened: ${stderr}`);
    return stderr.includes('agent listening');
  });
  return agent;
}

export { request, taskPath, type Answer as Reply } from './agent-request.js';

/** Every task record of the default namespace. */
export async function listTasks(home: Home): Promise<TaskRecord[]> {
  const reply = await request(home.socket, 'GET', '/v1/tasks');
  if (reply.status !== 200) throw new Error(`GET /v1/tasks: ${reply.status} ${JSON.stringify(reply.json)}`);
  return (reply.json as { tasks: TaskRecord[] }).tasks;
}

export async function getTask(home: Home, id: string): Promise<TaskRecord> {
  const reply = await request(home.socket, 'GET', taskPath(id));
  if (reply.status !== 200) throw new Error(`GET ${taskPath(id)}: ${reply.status} ${JSON.stringify(reply.json)}`);
  return reply.json as TaskRecord;
}

export async function submit(home: Home, spec: object): Promise<TaskRecord> {
  const reply = await request(home.socket, 'POST', '/v1/tasks', spec);
  if (reply.status !== 201) throw new Error(`POST /v1/tasks: ${reply.status} ${JSON.stringify(reply.json)}`);
  return reply.json as TaskRecord;
}

const terminal = new Set(['exited', 'failed', 'lost']);

/** Resolves with the record once it is in one of `states` (or, with `'terminal'`, exited, failed or lost). */
export function untilState(home: Home, id: string, states: string[] | 'terminal'): Promise<TaskRecord> {
  const ok = (s: string) => (states === 'terminal' ? terminal.has(s) : states.includes(s));
  return until(`task ${id} to be ${String(states)}`, async () => {
    const record = await getTask(home, id);
    return ok(record.state) ? record : undefined;
  });
}

/** Polls `check` until it returns something truthy; fails after `ms`. */
export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms = patience,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await delay(100);
  }
}

/** The lines of a file, none when it does not exist. */
export function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/** The task's alloc dir on the host (`<dataDir>/allocs/<allocId>/alloc`, `/alloc` in its container). */
export function allocDir(home: Home, taskId: string): string {
  return path.join(home.dataDir, 'allocs', taskId.split('/')[0]!, 'alloc');
}

/** The task ids whose handle files are in the agent's handle store. */
export function storedHandles(home: Home): string[] {
  const dir = path.join(home.dataDir, 'handles');
  return existsSync(dir) ? readdirSync(dir).map((n) => decodeURIComponent(n.replace(/\.json$/, ''))) : [];
}

/**
 * A raw_exec task that appends a line to `work/<name>.ran` when it runs, then waits for
 * `work/<name>.go` to exist and exits 5 (`waits: false`: exits 5 at once).
 */
export function rawExecTask(home: Home, name: string, options: { waits?: boolean } = {}) {
  const ran = path.join(home.work, `${name}.ran`);
  const go = path.join(home.work, `${name}.go`);
  const wait = options.waits === false ? '' : `while [ ! -e ${go} ]; do sleep 0.1; done; `;
  return {
    ran,
    go,
    spec: {
      name,
      driver: 'raw_exec',
      labels: { test: name },
      config: { command: 'sh', args: ['-c', `echo ran >> ${ran}; ${wait}exit 5`] },
    },
  };
}

/** The same in a busybox container, its files in its alloc dir (`/alloc/ran`, `/alloc/go`). */
export function dockerTask(name: string, options: { waits?: boolean } = {}) {
  const wait = options.waits === false ? '' : 'while [ ! -e /alloc/go ]; do sleep 0.1; done; ';
  return {
    ran: (home: Home, id: string) => path.join(allocDir(home, id), 'ran'),
    go: (home: Home, id: string) => path.join(allocDir(home, id), 'go'),
    spec: {
      name,
      driver: 'docker',
      labels: { test: name },
      config: { image: BUSYBOX_IMAGE, command: 'sh', args: ['-c', `echo ran >> /alloc/ran; ${wait}exit 5`] },
    },
  };
}

/** Pids of the live processes whose command line mentions `marker` (a home's work dir). */
export function taskProcesses(marker: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      const state = /\) (\S)/.exec(readFileSync(`/proc/${name}/stat`, 'utf8'))?.[1];
      if (cmdline.includes(marker) && state !== 'Z') pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** SIGKILLs every raw_exec task of a home, with its process group (each task leads one). */
export function killTaskProcesses(marker: string): void {
  for (const pid of taskProcesses(marker)) {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
}

/** The containers of a home, all states. */
export function homeContainers(docker: Docker, homeId: string, taskId?: string): Promise<Docker.ContainerInfo[]> {
  const label = [`${homeLabel}=${homeId}`, ...(taskId ? [`${taskIdLabel}=${taskId}`] : [])];
  return docker.listContainers({ all: true, filters: { label } });
}

export async function removeContainers(docker: Docker, homeId: string): Promise<void> {
  for (const c of await homeContainers(docker, homeId)) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true, v: true })
      .catch(() => undefined);
  }
}

export interface DockerHome extends Home {
  /** How many containers the Engine created for the task since the home was made. */
  created(taskId: string): number;
}

/**
 * A home for docker tasks that also follows the Engine's container creations of its agents
 * live (the Engine's event history for `since` queries is short and shared by every test).
 */
export async function createDockerHome(t: Teardown, docker: Docker, dockerConfig: Record<string, unknown> = {}): Promise<DockerHome> {
  const home = createHome(t, docker, dockerConfig);
  const creations: string[] = [];
  const stream = (await docker.getEvents({
    filters: { type: ['container'], event: ['create'], label: [`${homeLabel}=${home.id}`] },
  })) as NodeJS.ReadableStream & { destroy(): void };
  let pending = '';
  stream.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf('\n')) !== -1) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line) creations.push((JSON.parse(line) as { Actor: { Attributes: Record<string, string> } }).Actor.Attributes[taskIdLabel] ?? '');
    }
  });
  stream.on('error', () => undefined);
  t.teardown(() => stream.destroy());
  return Object.assign(home, { created: (taskId: string) => creations.filter((id) => id === taskId).length });
}
