// bench:agent starts agents, raw_exec tasks and containers; Ctrl-C must take all of them down,
// including the tasks an agent leaves running when it stops. Pinned here with real processes and
// a real container, since a leak would only show on the machine of whoever pressed Ctrl-C.
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { requireDocker } from '../helpers/docker.js';
import { spawnFixture } from '../agent/spawn-ts.js';

const fixture = new URL('./fixtures/cleanup-on-signal.ts', import.meta.url);

interface Started {
  root: string;
  task: number;
  child: number;
  containerId: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` for up to 30 s: the fixture's cleanup runs on a busy machine. */
async function eventually(check: () => boolean | Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return true;
    await sleep(100);
  }
  return false;
}

async function interrupt(
  t: { teardown(fn: () => unknown): void; ok(value: unknown, message: string): void },
  args: string[],
): Promise<{ started: Started; code: number | null }> {
  const run = spawnFixture(t, fixture, args);
  const started = JSON.parse((await run.line('ready ')).slice('ready '.length)) as Started;
  t.teardown(() => {
    for (const pid of [started.task, started.child]) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  t.ok(alive(started.task) && alive(started.child) && existsSync(started.root), 'everything runs before the interrupt');
  const exited = new Promise<number | null>((resolve) => run.process.once('exit', (code) => resolve(code)));
  run.process.kill('SIGINT');
  return { started, code: await exited };
}

t.test('SIGINT kills the tracked children and the tasks working in the run folder, removes the folder, exits 130', async (t) => {
  const { started, code } = await interrupt(t, []);
  t.equal(code, 130);
  t.ok(await eventually(() => !alive(started.task)), 'the detached task in the run folder is killed');
  t.ok(await eventually(() => !alive(started.child)), 'the tracked child is killed');
  t.notOk(existsSync(started.root), 'the run folder is removed');
});

t.test("SIGINT removes the run's labelled containers", async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const { started, code } = await interrupt(t, ['docker']);
  t.teardown(() =>
    docker
      .getContainer(started.containerId)
      .remove({ force: true })
      .catch(() => undefined),
  );
  t.equal(code, 130);
  const gone = await docker
    .getContainer(started.containerId)
    .inspect()
    .then(
      () => false,
      (err: { statusCode?: number }) => err.statusCode === 404,
    );
  t.ok(gone, 'the container is removed');
});
