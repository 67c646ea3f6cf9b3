// The driver conformance suite against drivers that each make one mistake an author makes: a
// handle JSON changes, a reply that cannot cross the thread, info() and the manifest disagreeing,
// a typo in a JSON Schema keyword. Each fails the check that names the mistake, once, saying
// what to do, and the checks that depend on it are skipped with a pointer to it. The built-in
// drivers pass every check.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino } from 'pino';
import t from 'tap';
import type { ConformanceReport } from '../../conformance/check-runner.js';
import { runDriverConformance } from '../../conformance/driver-conformance.js';
import { processesMarked } from '../../conformance/leftover-processes.js';
import { fillSupervision } from '../../plugin-loader/agent-config.js';
import { PluginInstance } from '../../plugin-loader/plugin-instance.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';

const quiet = pino({ level: 'silent' });
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/conformance/${name}`, import.meta.url));
const run = (name: string) => runDriverConformance({ target: fixture(name), logger: quiet });

function byStatus(report: ConformanceReport, status: string): Record<string, string | undefined> {
  return Object.fromEntries(report.checks.filter((c) => c.status === status).map((c) => [c.name, c.message]));
}

const checks = [
  'loads through the plugin loader',
  'implements every driver method',
  'capabilities() are well formed',
  'configSchema() and taskConfigSchema() are valid JSON Schemas',
  'conformance.json describes the test tasks',
  'fingerprint() reports a healthy driver at once',
  'a bad task config is rejected with its JSON path',
  'startTask() returns a handle that can be stored as JSON',
  'inspectTask() reports a running task',
  'a second startTask() with the same id is refused',
  'unknown task ids are TASK_NOT_FOUND',
  'recoverTask() of a start that never ran is TASK_NOT_FOUND, and starts nothing',
  'taskStats() streams usage at the interval',
  'signalTask() delivers a signal and refuses an unknown one',
  'execTask() runs a command in the task and returns its output',
  'recoverTask() re-attaches after a simulated host restart',
  'stopTask() ends a task within its timeout and waitTask() reports it',
  'stopTask() kills a task that ignores its kill signal after the timeout',
  'destroyTask() refuses a running task unless forced',
  'a task that exits at once reports its exit code, every time',
  "a task's output lands in its stdout file",
  'taskEvents() reports events for the tasks',
  'waitTask(), taskStats(), fingerprint() and taskEvents() settle when their signal aborts',
  'destroyTask() leaves no timers or handles behind',
  'shutdown() leaves no timers or handles behind',
  'no process of its tasks is left running',
];

for (const builtin of ['mock', 'raw_exec']) {
  t.test(`the built-in ${builtin} driver passes every check`, async (t) => {
    const report = await runDriverConformance({ target: builtin, logger: quiet });
    t.same(
      report.checks.map((c) => [c.name, c.status, c.message]),
      checks.map((name) => [name, 'pass', undefined]),
    );
  });
}

t.test('a driverState that JSON changes fails the start, naming its path; the checks that need a task are skipped', async (t) => {
  const report = await run('handle-not-json');
  t.same(byStatus(report, 'fail'), {
    'startTask() returns a handle that can be stored as JSON':
      'PLUGIN_CONTRACT: startTask() returned a handle that does not survive JSON: /driverState/cpuShare is NaN, which JSON turns into null: keep driverState plain objects, arrays, strings, finite numbers and booleans (the host stores handles as JSON and gives them back to recoverTask() after a restart)',
  });
  const skipped = byStatus(report, 'skip');
  t.equal(
    skipped['a task that exits at once reports its exit code, every time'],
    'it needs startTask() to return a handle the host can keep: see "startTask() returns a handle that can be stored as JSON"',
  );
  t.equal(report.checks.at(-1)!.status, 'pass', 'the task the host could not keep was destroyed: nothing is left running');
});

t.test(
  'a reply that cannot cross fails that start alone, naming the path; the plugin keeps running, and the task is destroyed',
  async (t) => {
    const report = await run('reply-cannot-cross');
    t.same(Object.keys(byStatus(report, 'fail')), ['startTask() returns a handle that can be stored as JSON']);
    t.equal(
      byStatus(report, 'fail')['startTask() returns a handle that can be stored as JSON'],
      'PLUGIN_CONTRACT: startTask() returned a value that cannot cross to the host: /handle/driverState/child is a ChildProcess: send what the host needs to find it again (its pid). Replies are JSON-like data: plain objects, arrays, strings, numbers, booleans and null',
    );
    const passed = report.checks.filter((c) => c.status === 'pass').map((c) => c.name);
    t.ok(passed.includes('unknown task ids are TASK_NOT_FOUND'), 'later calls are answered: the plugin did not crash');
    t.ok(passed.includes('no process of its tasks is left running'), 'the sleep it started was destroyed by the host');
    t.same((await processesMarked([`TASKHOST_ALLOC_ID=${report.runId}`])) ?? [], []);
  },
);

t.test('info().apiVersions that disagree with the manifest: the host refuses the plugin, with both lists', async (t) => {
  const report = await run('api-versions-disagree');
  t.same(
    report.checks.map((c) => [c.name, c.status, c.message]),
    [
      [
        'loads through the plugin loader',
        'fail',
        'it did not start: info() says apiVersions ["1.0","2.0"] but package.json says ["1.0"]: list the same API versions in both (the host picks one from package.json before it loads the plugin)',
      ],
    ],
  );
});

t.test('an unknown keyword in taskConfigSchema() is reported once, with its path; what needs the schema is skipped', async (t) => {
  const report = await run('schema-typo');
  t.same(byStatus(report, 'fail'), {
    'configSchema() and taskConfigSchema() are valid JSON Schemas':
      'INVALID_SCHEMA: taskConfigSchema() /properties/seconds/minimun: unknown keyword (did you mean "minimum"?)',
  });
  const skipped = byStatus(report, 'skip');
  const pointer = 'it needs a valid taskConfigSchema(): see "configSchema() and taskConfigSchema() are valid JSON Schemas"';
  for (const name of [
    'a bad task config is rejected with its JSON path',
    'startTask() returns a handle that can be stored as JSON',
    'destroyTask() refuses a running task unless forced',
    'a task that exits at once reports its exit code, every time',
  ]) {
    t.equal(skipped[name], pointer, name);
  }
  t.notOk(
    report.checks.some((c) => c !== report.checks[3] && /minimun/.test(c.message ?? '')),
    'no other check repeats it',
  );
});

t.test('an unknown keyword in configSchema(): the plugin fails to start, with the path, and is not restarted', async (t) => {
  const instance = new PluginInstance({
    manifest: { type: 'driver', name: 'config-schema-typo', apiVersions: ['1.0'] },
    entry: pathToFileURL(path.join(fixture('config-schema-typo'), 'index.js')).href,
    apiVersion: '1.0',
    config: undefined,
    dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-schema-typo-')),
    supervision: fillSupervision(fastSupervision),
  });
  t.teardown(() => instance.close());
  await instance.start();
  t.equal(instance.state, 'failed');
  t.equal(instance.restarts, 0, 'no restart can fix a schema');
  t.match(instance.lastError, { code: 'INVALID_SCHEMA', errors: [{ path: '/properties/tickMs/minimun' }] });
  const report = await run('config-schema-typo');
  t.same(
    report.checks.map((c) => [c.name, c.status, c.message]),
    [
      [
        'loads through the plugin loader',
        'fail',
        'it did not start: configSchema() of plugin "config-schema-typo" /properties/tickMs/minimun: unknown keyword (did you mean "minimum"?)',
      ],
    ],
  );
});
