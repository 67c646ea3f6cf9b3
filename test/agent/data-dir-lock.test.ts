import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { lockDataDir } from '../../agent/data-dir-lock.js';
import { AgentStore } from '../../agent/store.js';
import { DataDirLockedError } from '../../shared/errors.js';
import { spawnFixture } from './spawn-ts.js';
import { dataDir } from './store-helpers.js';

const holder = new URL('./fixtures/lock-holder.ts', import.meta.url);

t.test('a second agent on the same data dir is refused, naming the pid that holds it', async (t) => {
  const dir = dataDir(t);
  const child = spawnFixture(t, holder, [dir]);
  await child.line('locked');
  const pid = child.process.pid!;
  await t.rejects(AgentStore.open({ dataDir: dir }), {
    code: 'DATA_DIR_LOCKED',
    details: { pid, hostname: hostname() },
    message: `data dir ${dir} is locked by pid ${pid} (another agent is running with this data dir): stop that agent, or start this one with another dataDir`,
  });
  t.throws(() => lockDataDir(dir), DataDirLockedError);
  await child.kill9();
  // The holder died without releasing: its lock is stale and taken over.
  const store = await AgentStore.open({ dataDir: dir });
  t.equal(JSON.parse(readFileSync(path.join(dir, 'agent.lock'), 'utf8')).pid, process.pid);
  await store.close();
  t.notOk(existsSync(path.join(dir, 'agent.lock')), 'close releases the lock');
});

t.test('the same process cannot take one data dir twice; release is idempotent', async (t) => {
  const dir = dataDir(t);
  const lock = lockDataDir(dir);
  t.throws(() => lockDataDir(dir), { code: 'DATA_DIR_LOCKED', message: /locked by pid \d+ \(this process already holds it\)/ });
  lock.release();
  lock.release();
  lockDataDir(dir).release();
});

t.test('a lock with our own pid that we do not hold, or unreadable content, is stale', async (t) => {
  for (const content of [JSON.stringify({ pid: process.pid, hostname: hostname(), acquiredAt: 'then' }), 'garbage']) {
    const dir = dataDir(t);
    writeFileSync(path.join(dir, 'agent.lock'), content);
    const lock = lockDataDir(dir);
    t.equal(lock.holder.pid, process.pid);
    lock.release();
  }
});

t.test('a live pid whose start time differs is a reused pid: stale', async (t) => {
  const dir = dataDir(t);
  writeFileSync(path.join(dir, 'agent.lock'), JSON.stringify({ pid: 1, hostname: hostname(), startTime: 'not-init', acquiredAt: 'then' }));
  const lock = lockDataDir(dir);
  t.equal(lock.holder.pid, process.pid, 'taken over');
  lock.release();
});

t.test('a lock from another host is held: its liveness cannot be checked from here', async (t) => {
  const dir = dataDir(t);
  writeFileSync(path.join(dir, 'agent.lock'), JSON.stringify({ pid: 42, hostname: 'elsewhere', acquiredAt: 'then' }));
  t.throws(() => lockDataDir(dir), { details: { pid: 42, hostname: 'elsewhere' }, message: /locked by pid 42 on host elsewhere/ });
});

t.test('release leaves a lock that another agent took meanwhile', async (t) => {
  const dir = dataDir(t);
  const lock = lockDataDir(dir);
  const other = JSON.stringify({ pid: 42, hostname: 'elsewhere', acquiredAt: 'now' });
  writeFileSync(path.join(dir, 'agent.lock'), other);
  lock.release();
  t.equal(readFileSync(path.join(dir, 'agent.lock'), 'utf8'), other);
});
