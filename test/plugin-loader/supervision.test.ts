// Real worker threads, real misbehaving plugins: the host survives each one, the caller gets
// the right typed error, and the plugin comes back or is reported failed by the breaker.
import t from 'tap';
import { CancelledError, PluginCrashedError, PluginError, PluginFailedError, PluginShutdownError } from '../../shared/errors.js';
import { backoff } from '../../plugin-loader/backoff.js';
import { fixtureInstance, next } from '../helpers/fixture-plugins.js';

t.test('a healthy plugin: config with defaults reaches setConfig, state lives in the worker', async (t) => {
  const p = await fixtureInstance('good', { config: { greeting: 'hi' } });
  t.teardown(() => p.close());
  const started = next(p, 'started');
  await p.start();
  await started;
  t.equal(p.state, 'running');
  t.equal(p.info?.pluginVersion, '1.0.0');
  t.same(p.config, { greeting: 'hi', limits: { maxItems: 10 } });
  const request = await p.call<{ apiVersion: string; config: unknown; agent: { pluginDataDir: string } }>('getConfig');
  t.equal(request.apiVersion, '1.0');
  t.same(request.config, { greeting: 'hi', limits: { maxItems: 10 } });
  t.match(request.agent.pluginDataDir, /plugins\/good$/);
  t.equal(await p.call('count'), 1);
  t.equal(await p.call('count'), 2, 'module state persists between calls');
  t.ok(p.implements('echo'));
  t.notOk(p.implements('nope'));
});

t.test('a plugin that rejects: the caller gets the error, the plugin keeps running', async (t) => {
  const p = await fixtureInstance('rejects');
  t.teardown(() => p.close());
  await p.start();
  await t.rejects(p.call('fail'), { code: 'PLUGIN_ERROR', message: 'the plugin said no' });
  const err = await p.call('fail').catch((e: unknown) => e);
  t.ok(err instanceof PluginError);
  t.equal(await p.call('calls'), 2, 'same worker, state intact');
  t.equal(p.restarts, 0);
  t.equal(p.state, 'running');
});

t.test('an exception or rejection nobody catches kills the worker, not the host', async (t) => {
  const p = await fixtureInstance('rejects');
  t.teardown(() => p.close());
  await p.start();
  const thrown = await p.call('throwLater').catch((e: unknown) => e);
  t.match(thrown, { code: 'PLUGIN_CRASHED', details: { reason: 'uncaught-exception', error: 'uncaught in a timer' } });
  await next(p, 'restarted');
  const rejected = await p.call('rejectLater').catch((e: unknown) => e);
  t.match(rejected, { code: 'PLUGIN_CRASHED', details: { reason: 'uncaught-exception', error: 'nobody handled this rejection' } });
  await next(p, 'restarted');
  t.equal(await p.call('calls'), 0, 'a fresh worker');
});

t.test('a plugin that exits: in-flight calls settle as crashed, it restarts with fresh state', async (t) => {
  const p = await fixtureInstance('exits');
  t.teardown(() => p.close());
  await p.start();
  const crashed = next<[PluginCrashedError, number]>(p, 'crashed');
  const restarted = next<[number]>(p, 'restarted');
  const inFlight = [p.call('exit'), p.call('exit')];
  for (const call of inFlight) {
    const err = await call.catch((e: unknown) => e);
    t.ok(err instanceof PluginCrashedError, 'typed crash error');
    t.match(err, { code: 'PLUGIN_CRASHED', recoverable: true, details: { reason: 'exit', exitCode: 7 } });
  }
  const [error, count] = await crashed;
  t.equal(count, 2, 'both in-flight calls were counted');
  t.match(error.details?.output, ['about to exit with code 7'], 'the crash report carries the plugin’s last output');
  t.same(await restarted, [1]);
  t.equal(await p.call('ping'), 'pong');
  t.equal(p.state, 'running');
});

t.test('a plugin that exits at every start trips the breaker and reports its last error', async (t) => {
  const p = await fixtureInstance('exits', {
    config: { exitAt: 'init' },
    supervision: { crashLoopRestarts: 3, breakerCooldown: '0s' },
  });
  t.teardown(() => p.close());
  const crashes: PluginCrashedError[] = [];
  p.on('crashed', (e) => crashes.push(e));
  const failed = next<[PluginFailedError]>(p, 'failed');
  await p.start();
  const [error] = await failed;
  t.equal(crashes.length, 3);
  t.equal(p.state, 'failed');
  t.ok(error instanceof PluginFailedError);
  t.match(error.message, /crashed 3 times within .*last error: plugin "exits" exited \(code 3\)/);
  await t.rejects(p.call('ping'), PluginFailedError);
  t.match(p.status(), { state: 'failed', restarts: 2, lastError: { code: 'PLUGIN_FAILED' } });
});

t.test('a tripped breaker half-opens after its cooldown, and reset() retries at once', async (t) => {
  const p = await fixtureInstance('exits', {
    config: { exitAt: 'init' },
    supervision: { crashLoopRestarts: 1, breakerCooldown: '100ms' },
  });
  t.teardown(() => p.close());
  await p.start();
  t.equal(p.state, 'failed');
  const retried = Promise.all([next(p, 'crashed'), next(p, 'failed')]);
  await retried;
  t.equal(p.restarts, 1, 'tried once more after the cooldown, and failed again');
  const before = p.restarts;
  const again = next(p, 'crashed');
  await p.reset();
  await again;
  t.ok(p.restarts >= before);
});

t.test('a plugin that blocks its event loop is terminated by the liveness check and comes back', async (t) => {
  const p = await fixtureInstance('spins', { supervision: { livenessTimeout: '300ms' } });
  t.teardown(() => p.close());
  await p.start();
  const restarted = next(p, 'restarted');
  const err = await p.call('spin').catch((e: unknown) => e);
  t.ok(err instanceof PluginCrashedError);
  t.match(err, { details: { reason: 'unresponsive' }, message: /stopped answering/ });
  await restarted;
  t.equal(await p.call('ping'), 'pong');
});

t.test('a plugin that allocates without end hits its heap limit, not the host’s', async (t) => {
  const p = await fixtureInstance('oom', { supervision: { heapMB: 32 } });
  t.teardown(() => p.close());
  await p.start();
  const restarted = next(p, 'restarted');
  const err = await p.call('grow').catch((e: unknown) => e);
  t.ok(err instanceof PluginCrashedError);
  t.match(err, { details: { reason: 'out-of-memory', heapMB: 32 }, message: /ran out of memory \(heap limit 32 MiB\)/ });
  await restarted;
  t.equal(await p.call('ping'), 'pong');
  t.ok(process.memoryUsage().heapUsed < 256 * 1024 * 1024, 'the host heap is untouched');
});

t.test('a plugin that throws at import fails at once with the import error, no restarts', async (t) => {
  const p = await fixtureInstance('throws-at-import');
  t.teardown(() => p.close());
  await p.start();
  t.equal(p.state, 'failed');
  t.equal(p.restarts, 0);
  t.match(p.lastError, { code: 'PLUGIN_LOAD_FAILED', message: /this plugin is broken at import/ });
  await t.rejects(p.call('anything'), { code: 'PLUGIN_FAILED', message: /broken at import/ });
});

t.test('a config that fails the plugin’s schema fails the plugin with the path', async (t) => {
  const p = await fixtureInstance('good', { config: { limits: { maxItems: 0 } } });
  t.teardown(() => p.close());
  await p.start();
  t.equal(p.state, 'failed');
  t.match(p.lastError, { code: 'INVALID_CONFIG', details: { errors: [{ path: '/limits/maxItems', message: 'must be >= 1' }] } });
  const none = await fixtureInstance('rejects', { config: { anything: 1 } });
  t.teardown(() => none.close());
  await none.start();
  t.match(none.lastError, { code: 'INVALID_CONFIG', message: /takes no config/ });
});

t.test('calls wait while the plugin restarts, and honour the caller’s signal', async (t) => {
  const p = await fixtureInstance('exits', { supervision: { restartBackoff: '300ms', maxRestartBackoff: '300ms' } });
  t.teardown(() => p.close());
  await p.start();
  const crashed = next(p, 'crashed');
  p.call('exit').catch(() => undefined);
  await crashed;
  t.equal(p.state, 'restarting');
  const waiting = p.call('ping');
  await t.rejects(p.call('ping', [], { signal: AbortSignal.timeout(20) }), CancelledError);
  t.equal(await waiting, 'pong', 'the waiting call went through after the restart');
});

t.test('a cancelled call rejects at once and aborts the plugin’s signal', async (t) => {
  const p = await fixtureInstance('good');
  t.teardown(() => p.close());
  await p.start();
  const controller = new AbortController();
  const slow = p.call('slow', [60_000], { signal: controller.signal });
  setTimeout(() => controller.abort(), 20);
  await t.rejects(slow, { code: 'CANCELLED', message: 'slow() was cancelled by the caller' });
  await t.rejects(p.call('slow', [1], { signal: AbortSignal.abort() }), CancelledError);
  t.equal(await p.call('echo', [1]), 1, 'the worker is fine');
});

t.test('a JSON stream delivers the same objects a cloned one does, minus what JSON drops', async (t) => {
  const p = await fixtureInstance('good');
  t.teardown(() => p.close());
  await p.start();
  const items = [{ id: 'gpu-0', stats: { power: { value: 627.4, unit: 'W' } }, note: undefined }, [1, 'two', null]];
  const read = async (json: boolean) => {
    const got: unknown[] = [];
    for await (const item of p.stream('items', [items], { json })) got.push(item);
    return got;
  };
  const viaJson = await read(true);
  t.same(viaJson, [{ id: 'gpu-0', stats: { power: { value: 627.4, unit: 'W' } } }, [1, 'two', null]]);
  t.notOk('note' in (viaJson[0] as object), 'an undefined property is dropped');
  t.same(await read(false), items, 'a cloned stream keeps it');
});

t.test('streams cross the thread with backpressure, and end early when the consumer stops', async (t) => {
  const p = await fixtureInstance('good');
  t.teardown(() => p.close());
  await p.start();
  const all: number[] = [];
  for await (const n of p.stream<number>('numbers', [50], { window: 4 })) all.push(n);
  t.same(
    all,
    Array.from({ length: 50 }, (_, i) => i),
  );
  const stream = p.stream<number>('numbers', [10_000], { window: 4 });
  const first = await stream.next();
  t.same(first, { done: false, value: 0 });
  await new Promise((r) => setTimeout(r, 50));
  const produced = await p.call<number>('produced');
  t.ok(produced <= 6, `plugin stayed within its window while the consumer idled (produced ${produced})`);
  await stream.return(undefined);
  const controller = new AbortController();
  const aborted = p.stream<number>('numbers', [10_000], { signal: controller.signal });
  await aborted.next();
  controller.abort();
  await t.rejects(async () => {
    for (;;) if ((await aborted.next()).done) break;
  }, CancelledError);
});

t.test('a stream open when the plugin crashes ends with the crash error', async (t) => {
  const p = await fixtureInstance('exits');
  t.teardown(() => p.close());
  await p.start();
  const stream = p.stream<number>('ticks');
  t.same(await stream.next(), { done: false, value: 0 });
  const crash = p.call('exit').catch(() => undefined);
  const err = await (async () => {
    for (;;) if ((await stream.next()).done) return undefined;
  })().catch((e: unknown) => e);
  t.ok(err instanceof PluginCrashedError, 'the consumer learns the plugin crashed');
  t.match(err, { details: { reason: 'exit', exitCode: 7 } });
  await crash;
  await t.rejects(p.stream('ticks', [], { signal: AbortSignal.abort() }).next(), CancelledError);
});

t.test('close() runs shutdown within its deadline; later calls are refused', async (t) => {
  const p = await fixtureInstance('good');
  await p.start();
  const pending = p.call('slow', [60_000]).catch((e: unknown) => e);
  await p.close();
  t.ok((await pending) instanceof PluginShutdownError, 'the in-flight call settles as shut down');
  await t.rejects(p.call('echo', [1]), PluginShutdownError);
  t.equal(p.state, 'stopped');
  await p.close();
  t.pass('close is idempotent');
});

t.test('plugin output is captured line by line, never written to the host’s stdout', async (t) => {
  const p = await fixtureInstance('good');
  t.teardown(() => p.close());
  await p.start();
  const lines: string[] = [];
  p.on('output', (stream, line) => lines.push(`${stream}:${line}`));
  await p.call('say', ['one\ntwo']);
  await new Promise((r) => setTimeout(r, 50));
  t.same(lines, ['stdout:one', 'stdout:two']);
  t.same(p.recentOutput.slice(-2), ['one', 'two']);
});

t.test('backoff doubles per step with equal jitter, capped', async (t) => {
  for (let step = 0; step < 12; step++) {
    const ceiling = Math.min(1000, 10 * 2 ** step);
    const d = backoff(10, 1000, step);
    t.ok(d >= ceiling / 2 && d <= ceiling, `step ${step}: ${d} within [${ceiling / 2}, ${ceiling}]`);
  }
});

t.test('a plugin that hangs or exits while importing is killed, retried, then failed', async (t) => {
  const { PluginInstance } = await import('../../plugin-loader/plugin-instance.js');
  const { fillSupervision } = await import('../../plugin-loader/agent-config.js');
  const { fastSupervision } = await import('../helpers/fixture-plugins.js');
  // The spinning plugin must time out, so its deadline is short (a slow start only makes it
  // later still); the exiting one gets a wide deadline, so that on a busy machine it is its
  // exit, not a slow start, that the supervisor sees.
  const make = (file: string, startTimeout: string) =>
    new PluginInstance({
      manifest: { type: 'driver', name: file.replace('.js', ''), apiVersions: ['1.0'] },
      entry: new URL(`../fixtures/modules/${file}`, import.meta.url).href,
      apiVersion: '1.0',
      config: undefined,
      dataDir: '/tmp/taskhost-test-import',
      supervision: fillSupervision(fastSupervision, { startTimeout, crashLoopRestarts: 2, breakerCooldown: '0s' }),
    });
  const spins = make('spins-at-import.js', '500ms');
  t.teardown(() => spins.close());
  const failed = next<[Error]>(spins, 'failed');
  await spins.start();
  const [err] = await failed;
  t.match(err, { code: 'PLUGIN_FAILED', message: /crashed 2 times .* did not start within 500ms/ });
  const exits = make('exits-at-import.js', '120s');
  t.teardown(() => exits.close());
  const exitFailed = next<[Error]>(exits, 'failed');
  await exits.start();
  t.match((await exitFailed)[0], { code: 'PLUGIN_FAILED', message: /exited \(code 9\)/ });
});
