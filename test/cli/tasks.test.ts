// `taskhost run`, `fingerprint`, `validate --task` and `conformance`, in-process, on the example
// countdown driver (the built-in drivers have their own tests).
import { EventEmitter } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { runCli } from '../helpers/run-cli.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';

const examples = fileURLToPath(new URL('../../examples/plugins', import.meta.url));
const work = mkdtempSync(path.join(tmpdir(), 'taskhost-cli-tasks-'));
const agent = path.join(work, 'agent.json');
writeFileSync(
  agent,
  JSON.stringify({
    pluginDir: examples,
    dataDir: path.join(work, 'data'),
    supervision: fastSupervision,
    plugins: { countdown: { config: { tickMs: 100 } } },
  }),
);
function taskFile(doc: unknown): string {
  const file = path.join(mkdtempSync(path.join(work, 't-')), 'task.json');
  writeFileSync(file, JSON.stringify(doc));
  return file;
}
const countdown = (config: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  taskFile({ name: 'count', driver: 'countdown', config, ...extra });

t.test('run streams the task’s output and exits with its code', async (t) => {
  const { code, stdout, stderr } = await runCli(['--config', agent, 'run', countdown({ seconds: 0.35, exitCode: 3, message: 'liftoff' })]);
  t.equal(code, 3);
  t.match(stdout, /^(\d\n)*liftoff\n$/, 'the task’s stdout, as it came');
  t.match(stderr, /taskhost: \[count\] exited with code 3/);
  t.match(stderr, /taskhost: task count exited with code 3 after /);
});

t.test('run --json: the result document is the only thing on stdout', async (t) => {
  const { code, stdout, stderr } = await runCli(['--config', agent, 'run', '--json', countdown({ seconds: 0, message: 'hi' })]);
  t.equal(code, 0);
  const result = JSON.parse(stdout) as Record<string, unknown>;
  t.match(result, { driver: 'countdown', name: 'count', exitCode: 0, signal: null, oomKilled: false });
  t.match(result.taskId, /\/count\/[0-9a-f]{8}$/);
  t.ok(Array.isArray(result.events));
  t.match(stderr, /^hi\n/, 'task output went to stderr');
});

t.test('run: a bad config key fails with its path; an unknown driver is named', async (t) => {
  const bad = await runCli(['--config', agent, 'run', countdown({ seconds: 1, secnds: 1 })]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /error: \/config\/secnds: unknown key \(did you mean "seconds"\?\)/);
  const spec = await runCli(['--config', agent, 'run', taskFile({ name: 'x', driver: 'countdown', confg: {} })]);
  t.equal(spec.code, 1);
  t.match(spec.stderr, /error: \/confg: unknown key \(did you mean "config"\?\)/);
  const nope = await runCli(['--config', agent, 'run', taskFile({ name: 'x', driver: 'nope', config: {} })]);
  t.equal(nope.code, 1);
  t.match(nope.stderr, /no driver named "nope"/);
});

t.test('run: Ctrl-C stops the task cleanly and exits with its code', async (t) => {
  const keyboard = new EventEmitter();
  const live = { stdout: '', stderr: '' };
  const running = runCli(['--config', agent, 'run', countdown({ seconds: 30 })], keyboard, live);
  while (!/\d\n/.test(live.stdout)) await new Promise((r) => setTimeout(r, 50)); // the task is running: it counts
  keyboard.emit('SIGINT');
  const { code, stderr } = await running;
  t.match(stderr, /stopping count \(up to 5s; Ctrl-C again to kill it now\)/);
  t.match(stderr, /was killed by SIGTERM \(exit code 143\)/);
  t.equal(code, 143);
});

t.test('run: SIGTERM and SIGHUP stop the task as Ctrl-C does; a second signal kills it', async (t) => {
  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    const process = new EventEmitter();
    const live = { stdout: '', stderr: '' };
    const running = runCli(['--config', agent, 'run', countdown({ seconds: 30 })], process, live);
    while (!/\d\n/.test(live.stdout)) await new Promise((r) => setTimeout(r, 50));
    process.emit(signal);
    const { code, stderr } = await running;
    t.match(stderr, `${signal}: stopping count (up to 5s; a second signal kills it now)`, signal);
    t.equal(code, 143, 'the task got its kill signal, SIGTERM');
    t.equal(process.listenerCount(signal), 0, 'no listener left behind');
  }
  const process = new EventEmitter();
  const live = { stdout: '', stderr: '' };
  const running = runCli(['--config', agent, 'run', countdown({ seconds: 30 })], process, live);
  while (!/\d\n/.test(live.stdout)) await new Promise((r) => setTimeout(r, 50));
  process.emit('SIGTERM');
  process.emit('SIGTERM');
  const { stderr } = await running;
  t.match(stderr, 'taskhost: killing count\n', 'the second signal kills');
});

t.test('run: a signal before the task has started cancels the start; nothing runs', async (t) => {
  const process = new EventEmitter();
  const running = runCli(['--config', agent, 'run', countdown({ seconds: 30 })], process);
  while (process.listenerCount('SIGTERM') === 0) await new Promise((r) => setImmediate(r));
  process.emit('SIGTERM');
  const { code, stdout, stderr } = await running;
  t.match(stderr, 'taskhost: SIGTERM: cancelling count before it started\ntaskhost: task count was not started: SIGTERM arrived first\n');
  t.equal(stdout, '', 'the task never counted');
  t.equal(code, 143);
});

t.test('fingerprint lists each driver’s health', async (t) => {
  const human = await runCli(['--config', agent, 'fingerprint']);
  t.equal(human.code, 0);
  t.match(human.stdout, /^DRIVER\s+HEALTH\s+DESCRIPTION\s+ATTRIBUTES\n/);
  t.match(human.stdout, /\ncountdown\s+healthy\s+ready to count\s+driver\.countdown\.tickMs=100\n/);
  const json = JSON.parse((await runCli(['--config', agent, 'fingerprint', '--json'])).stdout) as {
    drivers: { name: string; health: string }[];
  };
  t.match(
    json.drivers.find((d) => d.name === 'countdown'),
    { health: 'healthy' },
  );
});

t.test('validate --task checks the spec and the driver config', async (t) => {
  const good = await runCli(['--config', agent, 'validate', '--task', countdown({ seconds: 1 })]);
  t.equal(good.code, 0);
  t.match(good.stdout, /valid/);
  const bad = countdown({ seconds: 'soon' }, { killTimeout: 'later' });
  const result = await runCli(['--config', agent, 'validate', '--task', bad]);
  t.equal(result.code, 1);
  t.same(result.stdout.trim().split('\n'), [
    `${bad}: /killTimeout: must be a duration: a number and a unit (ms, s, m, h), e.g. "5s" or "1m30s"`,
  ]);
  const driverBad = countdown({ seconds: 'soon' });
  const json = JSON.parse((await runCli(['--config', agent, 'validate', '--task', driverBad, '--json'])).stdout) as { issues: unknown[] };
  t.same(json.issues, [{ path: '/config/seconds', message: 'must be number' }]);
  const typo = await runCli(['--config', agent, 'validate', '--task', taskFile({ name: 'x', driver: 'countdwn', config: {} })]);
  t.match(typo.stdout, /\/driver: no driver named "countdwn" \(did you mean "countdown"\?\)/);
});

t.test('conformance passes the example driver and fails the broken one, saying what to fix', async (t) => {
  const pass = await runCli(['conformance', path.join(examples, 'countdown')]);
  t.equal(pass.code, 0, pass.stdout);
  t.match(pass.stdout, /countdown, version 1\.0\.0, API 1\.0, path: \d+ passed, 0 failed/);
  const fail = await runCli(['conformance', path.join(examples, 'broken'), '--json']);
  t.equal(fail.code, 1);
  const report = JSON.parse(fail.stdout) as { failed: number; checks: { name: string; status: string; message?: string }[] };
  const failed = Object.fromEntries(report.checks.filter((c) => c.status === 'fail').map((c) => [c.name, c.message]));
  t.match(failed['a bad task config is rejected with its JSON path'], /must reject it at \/config\/seconds/);
  t.match(failed['a second startTask() with the same id is refused'], /reject a duplicate with TaskExistsError/);
  t.match(failed['destroyTask() refuses a running task unless forced'], /throw TaskRunningError/);
  t.match(failed['a task that exits at once reports its exit code, every time'], /also when called after the task has exited/);
  t.match(
    failed['waitTask(), taskStats(), fingerprint() and taskEvents() settle when their signal aborts'],
    /^fingerprint\(\) \(a stream\) had not settled/,
  );
  t.match(failed['destroyTask() leaves no timers or handles behind'], /timers \(Timeout, setInterval\) created in startTask\(\)/);
  t.equal(report.failed, 9);
  const missing = await runCli(['conformance', path.join(work, 'nowhere')]);
  t.equal(missing.code, 1);
  t.match(missing.stdout, /FAIL {2}loads through the plugin loader/);
});

t.test('the README’s example task runs on raw_exec', async (t) => {
  const hello = fileURLToPath(new URL('../../examples/hello.json', import.meta.url));
  const { code, stdout, stderr } = await runCli(['--plugin-dir', path.join(work, 'none'), 'run', hello]);
  t.equal(code, 0, stderr);
  t.equal(stdout, 'hello from hello (raw_exec says hi)\nworking 1\nworking 2\nworking 3\n');
  t.match(stderr, /done\n/);
  t.match(stderr, /task hello exited with code 0/);
});
