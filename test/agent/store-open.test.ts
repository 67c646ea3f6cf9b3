import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { open } from 'lmdb';
import t from 'tap';
import { AgentStore, storeSchemaVersion } from '../../agent/store.js';
import { metaKeys, storeMigrations, type StoreMigration } from '../../agent/store-migrations.js';
import { InvalidStoreError } from '../../shared/errors.js';
import { dataDir, task } from './store-helpers.js';

t.test('a file that is not LMDB is refused, and left as it was', async (t) => {
  const dir = dataDir(t);
  mkdirSync(path.join(dir, 'store'));
  writeFileSync(path.join(dir, 'store', 'data.mdb'), 'x'.repeat(20_000));
  await t.rejects(AgentStore.open({ dataDir: dir }), {
    code: 'STORE_INVALID',
    details: { reason: 'corrupt' },
    message: `the store ${path.join(dir, 'store', 'data.mdb')} is not an LMDB file (corrupt, or something else wrote it): move it aside (the agent never resets a store) or start the agent with another dataDir`,
  });
  // The lock was released: the error is the same the second time, not DATA_DIR_LOCKED.
  await t.rejects(AgentStore.open({ dataDir: dir }), InvalidStoreError);
});

t.test('a store path that is a file is refused', async (t) => {
  const dir = dataDir(t);
  writeFileSync(path.join(dir, 'store'), 'hi');
  await t.rejects(AgentStore.open({ dataDir: dir }), { code: 'STORE_INVALID', message: /is not a directory/ });
});

t.test('an LMDB file without the taskhost marker is refused as foreign', async (t) => {
  for (const [what, encoding] of [
    ['json values', 'json'],
    ['msgpack values', 'msgpack'],
  ] as const) {
    const dir = dataDir(t);
    const foreign = open({ path: path.join(dir, 'store'), encoding });
    await foreign.put('hello', { a: 1 });
    await foreign.close();
    await t.rejects(
      AgentStore.open({ dataDir: dir }),
      {
        code: 'STORE_INVALID',
        details: { reason: 'foreign' },
        message: `the store ${path.join(dir, 'store')} is an LMDB file that taskhost did not write (it has no taskhost marker): move it aside (the agent never resets a store) or start the agent with another dataDir`,
      },
      what,
    );
  }
});

t.test('a store from a newer taskhost is refused and not touched', async (t) => {
  const dir = dataDir(t);
  const store = await AgentStore.open({ dataDir: dir });
  await store.tasks.create(task('a1'));
  await store.close();
  const raw = open({ path: path.join(dir, 'store'), encoding: 'json' });
  await raw.put(metaKeys.schemaVersion, storeSchemaVersion + 1);
  await raw.close();
  await t.rejects(AgentStore.open({ dataDir: dir }), {
    code: 'STORE_INVALID',
    details: { reason: 'newer' },
    message: `the store ${path.join(dir, 'store')} has schema version ${storeSchemaVersion + 1}, newer than this taskhost knows (${storeSchemaVersion}): run the taskhost that wrote it, or move it aside (the agent never resets a store) or start the agent with another dataDir`,
  });
  const check = open({ path: path.join(dir, 'store'), encoding: 'json' });
  t.ok(check.get('v1/default/tasks/a1'), 'the record is still there');
  await check.close();
});

t.test('migrations run in order, once, each from the version the store is at', async (t) => {
  const dir = dataDir(t);
  const ran: string[] = [];
  const step = (from: number, apply: StoreMigration['migrate']): StoreMigration => ({
    from,
    description: `step ${from}`,
    migrate: (tx) => {
      ran.push(`${from}->${from + 1}`);
      apply(tx);
    },
  });
  const v1 = [storeMigrations[0]!];
  const first = await AgentStore.open({ dataDir: dir, migrations: v1 });
  t.equal(first.schemaVersion, 1);
  await first.tasks.create(task('a1', { labels: { owner: 'x' } }));
  await first.close();

  const later = [
    ...v1,
    // 1 -> 2: every task gets a label; 2 -> 3 sees what 1 -> 2 wrote.
    step(1, (tx) => {
      for (const key of tx.keys('v1/')) tx.put(key, { ...(tx.get(key) as object), labels: { migrated: '2' } });
    }),
    step(2, (tx) => {
      for (const key of tx.keys('v1/')) {
        const r = tx.get(key) as { labels: Record<string, string> };
        tx.put(key, { ...r, labels: { ...r.labels, seen: r.labels.migrated ?? 'no' } });
      }
    }),
  ];
  const second = await AgentStore.open({ dataDir: dir, migrations: later });
  t.equal(second.schemaVersion, 3);
  t.same(ran, ['1->2', '2->3']);
  t.same(second.tasks.get('default', 'a1')?.labels, { migrated: '2', seen: '2' });
  await second.close();
  await (await AgentStore.open({ dataDir: dir, migrations: later })).close();
  t.same(ran, ['1->2', '2->3'], 'nothing runs twice');
});

t.test('a migration that throws leaves the store at its old version', async (t) => {
  const dir = dataDir(t);
  await (await AgentStore.open({ dataDir: dir })).close();
  const failing: StoreMigration[] = [
    ...storeMigrations,
    {
      from: storeMigrations.length,
      description: 'a broken one',
      migrate: (tx) => {
        tx.put('v1/default/tasks/half', { written: true });
        throw new Error('disk says no');
      },
    },
  ];
  await t.rejects(AgentStore.open({ dataDir: dir, migrations: failing }), {
    code: 'STORE_INVALID',
    details: { reason: 'migration' },
    message: new RegExp(`from version ${storeMigrations.length} to ${storeMigrations.length + 1} \\(a broken one\\) failed: disk says no`),
  });
  const store = await AgentStore.open({ dataDir: dir });
  t.equal(store.schemaVersion, storeMigrations.length);
  t.same(store.tasks.list(), [], 'nothing of the failed migration stayed');
  await store.close();
});

t.test('options are checked up front', async (t) => {
  await t.rejects(AgentStore.open({ dataDir: dataDir(t), eventHistory: 0 }), {
    message: 'options.eventHistory must be a positive integer, not 0',
  });
  await t.rejects(AgentStore.open({ dataDir: dataDir(t), migrations: [{ from: 1, description: '', migrate: () => {} }] }), {
    message: 'migration 0 must be from version 0, not 1',
  });
});
