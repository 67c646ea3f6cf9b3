// `taskhost run` as a real process (bin/taskhost.js) that is sent SIGTERM or SIGHUP, as a service
// manager or a closing terminal would: it stops its task as Ctrl-C does, and nothing of the task
// is left running, neither raw_exec's process group nor docker's container.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { groupMembers } from '../../drivers/raw_exec/group-usage.js';
import { BUSYBOX_IMAGE, requireDocker } from '../helpers/docker.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = path.join(root, 'bin/taskhost.js');
const compiled = path.join(root, 'dist/cli/run-task.js');
// bin/ runs dist/: this test needs it built from these sources (npm ci and npm run build do).
const stale = !existsSync(compiled)
  ? 'dist/ not built: npm run build'
  : statSync(compiled).mtimeMs < statSync(path.join(root, 'cli/run-task.ts')).mtimeMs && 'dist/ is older than cli/: npm run build';

const work = mkdtempSync(path.join(tmpdir(), 'taskhost-signals-'));
const agent = path.join(work, 'agent.json');
writeFileSync(
  agent,
  JSON.stringify({ pluginDir: path.join(work, 'no-plugins'), dataDir: path.join(work, 'data'), supervision: fastSupervision }),
);

interface Running {
  stderr: () => string;
  exited: Promise<number | null>;
  kill: (signal: NodeJS.Signals) => void;
}

/** Starts `taskhost run` on a spec, and kills it at the end of the test whatever happened. */
function taskhostRun(t: { teardown(fn: () => unknown): void }, spec: object): Running {
  const file = path.join(mkdtempSync(path.join(work, 't-')), 'task.json');
  writeFileSync(file, JSON.stringify(spec));
  const child = spawn(process.execPath, [bin, '--config', agent, 'run', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  return { stderr: () => stderr, exited, kill: (signal) => child.kill(signal) };
}

async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const alive = async (pgid: number) => (await groupMembers(pgid)).filter((p) => p.state !== 'Z');

for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
  t.test(`raw_exec: ${signal} to taskhost run stops the task's whole process group`, { skip: stale }, async (t) => {
    const run = taskhostRun(t, {
      name: 'sleeper',
      driver: 'raw_exec',
      config: { command: '/bin/sh', args: ['-c', 'sleep 300 & sleep 300 & wait'] },
      killTimeout: '2s',
    });
    const pgid = Number(await until('the task to start', () => /\[sleeper\] started: pid (\d+)/.exec(run.stderr())?.[1]));
    await until('the task’s children', async () => (await alive(pgid)).length >= 3 || undefined);
    run.kill(signal);
    const code = await run.exited;
    t.match(run.stderr(), `taskhost: ${signal}: stopping sleeper (up to 2s; a second signal kills it now)`);
    t.equal(code, 143, 'the task was stopped with its kill signal and taskhost exited with its code');
    t.same(await alive(pgid), [], 'nothing of the task’s process group is left');
  });
}

t.test('docker: SIGTERM to taskhost run stops and removes the container', { skip: stale }, async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const name = `sleeper-${randomBytes(4).toString('hex')}`;
  const ofTask = { all: true, filters: { label: [`com.taskhost.task_name=${name}`] } };
  t.teardown(async () => {
    for (const c of await docker.listContainers(ofTask)) await docker.getContainer(c.Id).remove({ force: true });
  });
  const run = taskhostRun(t, {
    name,
    driver: 'docker',
    config: { image: BUSYBOX_IMAGE, command: 'sleep', args: ['300'] },
    killTimeout: '1s',
  });
  await until('the container to start', () => run.stderr().includes(`[${name}] started container`));
  t.equal((await docker.listContainers(ofTask)).length, 1, 'it runs');
  run.kill('SIGTERM');
  const code = await run.exited;
  t.match(run.stderr(), `taskhost: SIGTERM: stopping ${name} (up to 1s; a second signal kills it now)`);
  t.equal(code, 137, 'sleep as PID 1 ignores SIGTERM, so it was killed after the timeout');
  t.same(await docker.listContainers(ofTask), [], 'no container of the task is left, running or not');
});
