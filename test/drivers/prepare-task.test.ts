// The task builder refuses names, ids and numbers that would escape the data directory, break a
// file name or reach a task as nonsense, each at its path; and it makes nothing on disk.
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import {
  buildTaskConfig,
  createTaskDirs,
  hostAllocDir,
  parseTaskSpec,
  prepareTask,
  type PrepareOptions,
} from '../../drivers/prepare-task.js';
import type { DriverCapabilities, TaskSpec } from '../../shared/driver.js';
import { InvalidConfigError } from '../../shared/errors.js';

const capabilities: DriverCapabilities = { sendSignals: true, exec: true, fsIsolation: 'none', networkModes: ['host'], mounts: false };
const options = (spec: Partial<TaskSpec> & Record<string, unknown>, more: Partial<PrepareOptions> = {}): PrepareOptions => ({
  spec: { name: 'web', driver: 'mock', config: {}, killTimeout: '5s', ...spec } as TaskSpec,
  schema: { type: 'object' },
  capabilities,
  dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-build-')),
  ...more,
});
const issues = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidConfigError) return err.errors.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  return [];
};
const namePattern = 'must start with a letter or digit and hold only letters, digits, "_", "." and "-"';

t.test('a 300-character task name is refused at /name with the limit, before any directory is made', async (t) => {
  t.same(
    issues(() => parseTaskSpec({ name: 'n'.repeat(300), driver: 'raw_exec' })),
    ['/name: must be at most 128 characters'],
  );
  t.same(
    issues(() => parseTaskSpec({ name: 'n'.repeat(128), driver: 'raw_exec' })),
    [],
  );
});

t.test('names, jobs, groups and drivers hold only what a file name can: no "..", no "/", no spaces', async (t) => {
  t.same(
    issues(() => parseTaskSpec({ name: '../x', driver: 'mock', job: 'a/b', group: 'my group' })),
    [`/name: ${namePattern}`, `/job: ${namePattern}`, `/group: ${namePattern}`],
  );
  t.same(
    issues(() => parseTaskSpec({ name: '..', driver: 'dock er' })),
    [`/name: ${namePattern}`, `/driver: ${namePattern}`],
  );
  t.same(
    issues(() => parseTaskSpec({ name: 'web-1.a_b', driver: 'Docker', job: 'J', group: 'g0' })),
    [],
    'a driver in capitals is the lookup’s to answer',
  );
});

t.test('the builder checks a hand-made spec too: it cannot put task directories outside <dataDir>/allocs', async (t) => {
  const o = options({ name: '../../escaped' });
  t.same(
    issues(() => buildTaskConfig(o)),
    [`/name: ${namePattern}`],
  );
  t.same(readdirSync(o.dataDir), [], 'nothing made');
});

t.test('TASKHOST_LOCK_FILE is <alloc dir>/<name>.lock as the task sees it: the host path, or /alloc in a container', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'taskhost-build-'));
  const host = buildTaskConfig(options({}, { allocId: 'a1', dataDir }));
  t.equal(host.env.TASKHOST_LOCK_FILE, path.join(dataDir, 'allocs', 'a1', 'alloc', 'web.lock'));
  t.equal(hostAllocDir(dataDir, 'a1'), host.allocDir, 'hostAllocDir is where buildTaskConfig puts the alloc dir');
  const contained = buildTaskConfig(options({}, { allocId: 'a1', dataDir, capabilities: { ...capabilities, fsIsolation: 'image' } }));
  t.equal(contained.env.TASKHOST_LOCK_FILE, '/alloc/web.lock');
  t.equal(contained.allocDir, host.allocDir, 'the host alloc dir, mounted at /alloc');
});

t.test('allocId is checked like a name: "../../x" is refused at /allocId', async (t) => {
  t.same(
    issues(() => buildTaskConfig(options({}, { allocId: '../../x' }))),
    [`/allocId: allocId "../../x" ${namePattern}`],
  );
  const escape = `escaped-${process.pid}`;
  const o = options({}, { allocId: `../../${escape}` });
  await t.rejects(prepareTask(o), { code: 'INVALID_CONFIG' });
  t.notOk(existsSync(path.join(path.dirname(o.dataDir), escape)), 'nothing beside the data directory');
  t.same(readdirSync(o.dataDir), []);
  t.same(
    issues(() => buildTaskConfig(options({}, { allocId: 'a'.repeat(129) }))),
    [`/allocId: allocId "${'a'.repeat(129)}" must be at most 128 characters`],
  );
  t.match(buildTaskConfig(options({}, { allocId: 'alloc-7' })).id, /^alloc-7\/web\/[0-9a-f]{8}$/);
});

t.test('resources and device counts within what a kernel or Engine accepts; never 1e308', async (t) => {
  t.same(
    issues(() => parseTaskSpec({ name: 'x', driver: 'mock', resources: { memoryMB: 1e308, cpuShares: 1e6 } })),
    ['/resources/cpuShares: must be <= 262144', '/resources/memoryMB: must be <= 16777216'],
  );
  t.same(
    issues(() => parseTaskSpec({ name: 'x', driver: 'mock', resources: { memoryMB: 64.5, cpuShares: -1 } })),
    ['/resources/cpuShares: must be >= 1', '/resources/memoryMB: must be integer'],
  );
  t.same(
    issues(() => parseTaskSpec({ name: 'x', driver: 'mock', devices: [{ name: 'gpu', count: 1e9 }] })),
    ['/devices/0/count: must be <= 1024'],
  );
  const task = buildTaskConfig(options({ resources: { memoryMB: 16 * 1024 * 1024, cpuShares: 262_144 } }));
  t.equal(task.env.TASKHOST_MEMORY_LIMIT, '16777216');
  t.equal(task.env.TASKHOST_CPU_LIMIT, '262144');
});

t.test('an unknown kill signal is refused when the task is built, not when it is stopped', async (t) => {
  t.same(
    issues(() => buildTaskConfig(options({ killSignal: 'SIGNOPE' }))),
    ['/killSignal: unknown signal "SIGNOPE": use a name such as SIGTERM, SIGINT or SIGQUIT'],
  );
  t.equal(buildTaskConfig(options({ killSignal: 'SIGQUIT' })).killSignal, 'SIGQUIT');
});

t.test('buildTaskConfig makes nothing on disk; createTaskDirs makes the directories and log files', async (t) => {
  const o = options({ config: { greeting: 'hi ${TASKHOST_TASK_NAME}' } });
  const task = buildTaskConfig(o);
  t.same(readdirSync(o.dataDir), []);
  t.equal(task.config.greeting, 'hi web');
  t.equal(task.taskDir, path.join(o.dataDir, 'allocs', task.allocId, 'web', 'local'));
  await createTaskDirs(task);
  for (const p of [task.taskDir, task.secretsDir, task.stdoutPath, task.stderrPath]) t.ok(existsSync(p), p);
});
