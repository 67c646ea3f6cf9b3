// Writes acknowledged by a process that is then killed with kill -9 are there at the next open.
import t from 'tap';
import { AgentStore } from '../../agent/store.js';
import { spawnFixture } from './spawn-ts.js';
import { dataDir } from './store-helpers.js';

const writer = new URL('./fixtures/store-writer.ts', import.meta.url);

t.test('an acknowledged write survives kill -9 of the writer, and the next agent takes over its lock', async (t) => {
  const dir = dataDir(t);
  for (const [round, id] of ['t1', 't2'].entries()) {
    const child = spawnFixture(t, writer, [dir, id]);
    const acked = await child.line('acked');
    t.equal(acked, `acked ${round + 1}`, 'the event index continues from the last run');
    await child.kill9();
  }
  const store = await AgentStore.open({ dataDir: dir });
  t.teardown(() => store.close());
  t.equal(store.tasks.get('default', 't1')?.name, 'crash');
  t.equal(store.tasks.get('default', 't2')?.state, 'pending');
  t.same(
    store.eventsSince(0).map((e) => [e.index, e.key]),
    [
      [1, 'default/t1'],
      [2, 'default/t2'],
    ],
  );
});
