// How the agent's client commands print records: states and exits in words, the exit code a
// completed task stands for, ages, sizes and events, for every shape a record can take.
import t from 'tap';
import { age, describeState, eventLine, imagesTable, taskDetails, taskExitCode, tasksTable } from '../../cli/agent-output.js';
import type { TaskRecord } from '../../agent/store-records.js';

const now = Date.parse('2030-01-10T12:00:00.000Z');
const ago = (ms: number) => new Date(now - ms).toISOString();
const record = (extra: Partial<TaskRecord>): TaskRecord => ({
  id: 'a1/web/0123abcd',
  namespace: 'default',
  name: 'web',
  driver: 'docker',
  state: 'running',
  labels: {},
  spec: { name: 'web', driver: 'docker', killTimeout: '5s', config: { image: 'busybox:1.35', args: ['x'.repeat(300)] } },
  createdAt: ago(90_000),
  updatedAt: ago(1000),
  ...extra,
});
const exited = (exitResult: NonNullable<TaskRecord['exitResult']>) => record({ state: 'exited', exitResult });

t.test('a state in words, and the exit code of a command that waited for it', async (t) => {
  const cases: [TaskRecord, string, number][] = [
    [exited({ exitCode: 0, signal: null, oomKilled: false }), 'exited with code 0', 0],
    [exited({ exitCode: 137, signal: 'SIGKILL', oomKilled: true }), 'killed by SIGKILL (exit code 137), out of memory', 137],
    [
      exited({ exitCode: -1, signal: 'SIGTERM', oomKilled: false, err: 'reaped late' }),
      'killed by SIGTERM (exit code -1) (reaped late)',
      143,
    ],
    [exited({ exitCode: 300, signal: null, oomKilled: false }), 'exited with code 300', 1],
    [exited({ exitCode: -1, signal: 'SIGNOPE', oomKilled: false }), 'killed by SIGNOPE (exit code -1)', 1],
    [record({ state: 'failed', error: { code: 'PLUGIN_ERROR', message: 'no image' } }), 'failed: PLUGIN_ERROR: no image', 1],
    [record({ state: 'lost', error: { code: 'TASK_NOT_FOUND', message: 'gone' } }), 'lost: TASK_NOT_FOUND: gone', 1],
    [record({ state: 'pending' }), 'pending', 1],
  ];
  for (const [r, words, code] of cases) {
    t.equal(describeState(r), words);
    t.equal(taskExitCode(r), code, words);
  }
});

t.test('tasks table: the exit column says code, signal, OOM or the error code', async (t) => {
  const text = tasksTable(
    [
      record({}),
      exited({ exitCode: 143, signal: 'SIGTERM', oomKilled: false }),
      exited({ exitCode: 137, signal: 'SIGKILL', oomKilled: true }),
      record({ state: 'failed', error: { code: 'CANCELLED', message: 'x' } }),
    ],
    now,
  );
  t.same(
    text.split('\n').map((l) => l.split(/\s{2,}/)),
    [
      ['ID', 'DRIVER', 'STATE', 'EXIT', 'AGE'],
      ['a1/web/0123abcd', 'docker', 'running', '-', '1m'],
      ['a1/web/0123abcd', 'docker', 'exited', '143 SIGTERM', '1m'],
      ['a1/web/0123abcd', 'docker', 'exited', '137 OOM', '1m'],
      ['a1/web/0123abcd', 'docker', 'failed', 'CANCELLED', '1m'],
    ],
  );
});

t.test('details: a long config is cut, absent times are left out, no labels is a dash', async (t) => {
  const text = taskDetails(record({}), now);
  t.match(text, /\nlabels: +-\n/);
  t.match(text, /\nconfig: +\{"image":"busybox:1\.35","args":\["x+…\n/);
  t.equal(/\nconfig: +(.*)\n/.exec(text)![1]!.length, 200);
  t.match(text, /\ncreated: +2030-01-10T11:58:30\.000Z \(1m ago\)$/);
  t.notMatch(text, /started:|completed:/);
  const bare = record({ spec: { name: 'web', driver: 'docker' } as TaskRecord['spec'] });
  t.match(taskDetails(bare, now), /\nconfig: +\{\}\n/);
});

t.test('ages in their largest unit; sizes in SI units; events with or without a state', async (t) => {
  t.same(
    [0, 59_999, 60_000, 3_599_999, 3_600_000, 47 * 3_600_000, 48 * 3_600_000, -5000].map((ms) => age(ago(ms), now)),
    ['0s', '59s', '1m', '59m', '1h', '47h', '2d', '0s'],
  );
  t.equal(age('not a time', now), '-');
  const sizes = imagesTable(
    [0, 999, 1000, 15_500, 2_000_000_000, 3e15].map((sizeBytes, i) => ({ name: `i${i}`, id: 'abc', sizeBytes, users: [] })),
    now,
  )
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s{2,}/)[3]);
  t.same(sizes, ['0B', '999B', '1.0kB', '16kB', '2.0GB', '3000TB']);
  t.equal(
    eventLine({ index: 3, topic: 'devices', type: 'health', key: 'n/gpu0', payload: 'unhealthy' }),
    '     3  devices       health    n/gpu0',
  );
});
