// What the driver conformance suite catches that only shows in production: methods that ignore
// their AbortSignal, timers left running after destroyTask() and shutdown(), and processes left
// running after the run, also when the plugin crashed mid-run or a check timed out. Each fixture
// driver is the countdown example with one such mistake.
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import t from 'tap';
import type { ConformanceReport } from '../../conformance/check-runner.js';
import { runDriverConformance } from '../../conformance/driver-conformance.js';
import { processesMarked } from '../../conformance/leftover-processes.js';

const quiet = pino({ level: 'silent' });
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/conformance/${name}`, import.meta.url));

function failed(report: ConformanceReport): Record<string, string | undefined> {
  return Object.fromEntries(report.checks.filter((c) => c.status === 'fail').map((c) => [c.name, c.message]));
}

/** The run's task processes still running (each carries the run's id as its alloc id). */
const running = async (report: ConformanceReport) => (await processesMarked([`TASKHOST_ALLOC_ID=${report.runId}`])) ?? [];

t.test('methods that ignore their AbortSignal are named, with what to do', async (t) => {
  const report = await runDriverConformance({ target: fixture('ignores-abort'), logger: quiet });
  t.same(failed(report), {
    'waitTask(), taskStats(), fingerprint() and taskEvents() settle when their signal aborts':
      "waitTask(), taskStats() (a stream) and fingerprint() (a stream) had not settled 3s after their AbortSignal aborted: pass the signal (the argument after the declared ones) on to what the method waits for, or listen for its 'abort' event and return or throw at once; a cancelled call that never settles keeps its memory, timers and handles for ever",
  });
});

t.test('timers left after destroyTask() and after shutdown() are counted, with where they were made', async (t) => {
  const report = await runDriverConformance({ target: fixture('leaks-timers'), logger: quiet });
  const got = failed(report);
  t.same(Object.keys(got), ['destroyTask() leaves no timers or handles behind', 'shutdown() leaves no timers or handles behind']);
  t.match(
    got['destroyTask() leaves no timers or handles behind'],
    /^\d+ timers \(Timeout, setInterval\) created in startTask\(\) still active after every task was destroyed and every stream closed: clear each task's timers and close what it opened in destroyTask\(\)/,
  );
  t.match(
    got['shutdown() leaves no timers or handles behind'],
    /^\d+ timers \(Timeout, setInterval\) created in startTask\(\), 1 timer \(Timeout, setInterval\) created in init\(\) still active after shutdown\(\), more than the worker held before the plugin was imported: stop them in shutdown\(\)/,
  );
  // Every task the suite started leaked one: the count is the suite's, not a guess.
  const perTask = Number(/^(\d+)/.exec(got['destroyTask() leaves no timers or handles behind']!)![1]);
  t.ok(perTask >= 8, `${perTask} tasks' heartbeats`);
});

t.test('processes a driver leaves running are reported by pid and command, and killed', async (t) => {
  const report = await runDriverConformance({ target: fixture('leaves-processes'), logger: quiet });
  const got = failed(report);
  t.same(Object.keys(got), ['no process of its tasks is left running']);
  t.match(
    got['no process of its tasks is left running'],
    /^pid \d+ \(sleep 300\)(, pid \d+ \(sleep 300\))+ of the suite's tasks were still running after every task was destroyed and the plugin shut down, and were killed: destroyTask\(id, true\) must stop the task and everything it started$/,
  );
  t.same(await running(report), [], 'none is left');
});

t.test('a plugin that crashes mid-run: the suite recovers each task from its handle to destroy it', async (t) => {
  const report = await runDriverConformance({ target: fixture('crashes-mid-run'), logger: quiet });
  t.same(failed(report), {
    'destroyTask() refuses a running task unless forced':
      'destroyTask(id, false) on a running task failed with PLUGIN_CRASHED; throw TaskRunningError',
  });
  t.equal(report.checks.at(-1)!.name, 'no process of its tasks is left running');
  t.equal(report.checks.at(-1)!.status, 'pass');
  t.same(await running(report), [], 'every task process was stopped by its driver');
});

t.test('a check that times out: what its task left running is found and killed at the end', async (t) => {
  const report = await runDriverConformance({ target: fixture('start-hangs'), logger: quiet, checkTimeoutMs: 10_000 });
  const got = failed(report);
  t.equal(got['startTask() returns a handle that can be stored as JSON'], 'the check did not finish within 10s');
  t.match(
    got['no process of its tasks is left running'],
    /^pid \d+ \(sleep 300\) of the suite's tasks was still running after every task was destroyed and the plugin shut down, and was killed/,
  );
  t.same(await running(report), []);
});
