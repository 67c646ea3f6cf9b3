// The worker side of the protocol, driven in-process over MessageChannels.
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { PluginServer } from '../../plugin-loader/plugin-server.js';
import { verifyPlugin } from '../../plugin-loader/verify-plugin.js';
import type { LoadResult, StreamMessage, WorkerMessage } from '../../plugin-loader/protocol.js';
import type { PluginManifest } from '../../shared/plugin.js';

const fixture = (file: string) => new URL(`../fixtures/${file}`, import.meta.url).href;
const manifest = (name: string, type: PluginManifest['type'] = 'driver'): PluginManifest => ({
  type,
  name,
  apiVersions: ['1.0'],
});

async function loaded(file: string, name: string, type?: PluginManifest['type']) {
  const server = new PluginServer();
  const result = await server.load({ entry: fixture(file), manifest: manifest(name, type) });
  return { server, result };
}

/** Collects what a stream posts until its final message. */
function collect(port: MessagePort): Promise<StreamMessage[]> {
  const got: StreamMessage[] = [];
  return new Promise((resolve) => {
    port.on('message', (m: StreamMessage) => {
      got.push(m);
      if (m.type !== 'item') {
        port.close();
        resolve(got);
      }
    });
  });
}

t.test('load describes a good plugin: info, schema, methods', async (t) => {
  const { result } = await loaded('plugins/good/index.js', 'good');
  t.ok(result.ok);
  const value = (result as { value: LoadResult }).value;
  t.same(value.info, { type: 'driver', name: 'good', pluginVersion: '1.0.0', apiVersions: ['1.0'] });
  t.equal((value.configSchema as { type: string }).type, 'object');
  t.ok(value.methods.includes('echo'));
  t.ok(value.methods.includes('numbers'));
});

t.test('load accepts an async factory and a class instance', async (t) => {
  t.ok((await loaded('modules/factory.js', 'factory', 'device')).result.ok);
  const { result } = await loaded('modules/class-based.js', 'class-based');
  t.ok(result.ok);
  t.ok((result as { value: LoadResult }).value.methods.includes('streamFails'));
  t.notOk((result as { value: LoadResult }).value.methods.includes('constructor'));
});

t.test('load failures are PLUGIN_LOAD_FAILED with a message that says what to fix', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['plugins/throws-at-import/index.js', 'throws-at-import', /importing .* failed: this plugin is broken at import/],
    ['modules/does-not-exist.js', 'x', /importing .* failed/],
    ['modules/factory-throws.js', 'x', /factory \(default export\) threw: factory exploded/],
    ['modules/not-an-object.js', 'x', /must export default the plugin object .* got number/],
  ];
  for (const [file, name, message] of cases) {
    const { result } = await loaded(file, name);
    t.notOk(result.ok, file);
    if (!result.ok) {
      t.equal(result.error.code, 'PLUGIN_LOAD_FAILED', file);
      t.match(result.error.message, message, file);
    }
  }
});

t.test('the host verifies what a plugin says about itself', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['modules/missing-methods.js', 'x', /driver plugin "x" does not implement configSchema, setConfig/],
    [
      'modules/bad-info.js',
      'bad-info',
      /info\(\) returned an invalid value: \/pluginVersion: is required; \/apiVersions: must NOT have fewer than 1 items/,
    ],
    ['modules/wrong-name.js', 'wrong-name', /info\(\) says driver "someone-else" but package.json says driver "wrong-name"/],
    ['modules/bad-schema.js', 'bad-schema', /configSchema\(\) must return a JSON Schema object or null, got string/],
    [
      'modules/wrong-api-versions.js',
      'wrong-api-versions',
      /^info\(\) says apiVersions \["1\.0","2\.0"\] but package\.json says \["1\.0"\]: list the same API versions in both/,
    ],
  ];
  for (const [file, name, message] of cases) {
    const { result } = await loaded(file, name);
    t.ok(result.ok, `${file} loads in the worker`);
    if (result.ok) t.throws(() => verifyPlugin(manifest(name), result.value), { code: 'PLUGIN_LOAD_FAILED', message }, file);
  }
  const good = await loaded('plugins/good/index.js', 'good');
  if (good.result.ok) t.equal(verifyPlugin(manifest('good'), good.result.value).info.name, 'good');
  const arraySchema = {
    info: { type: 'driver', name: 'a', pluginVersion: '1', apiVersions: ['1.0'] },
    configSchema: [],
    methods: ['info', 'configSchema', 'setConfig'],
  };
  t.throws(() => verifyPlugin(manifest('a'), arraySchema as never), /got an array/);
});

t.test('calls return values, carry errors as data, and get a signal as last argument', async (t) => {
  const { server } = await loaded('plugins/good/index.js', 'good');
  t.same(await server.call({ id: 1, method: 'echo', args: [{ a: [1, 2] }] }), { ok: true, value: { a: [1, 2] } });
  const missing = await server.call({ id: 2, method: 'nope', args: [] });
  t.equal(!missing.ok && missing.error.code, 'NOT_IMPLEMENTED');
  const rejected = await (await loaded('plugins/rejects/index.js', 'rejects')).server.call({ id: 3, method: 'fail', args: [] });
  t.notOk(rejected.ok);
  if (!rejected.ok) {
    t.equal(rejected.error.code, 'PLUGIN_ERROR');
    t.equal(rejected.error.message, 'the plugin said no');
    t.same(rejected.error.details, { cause: 'ENOPE' });
  }
});

t.test('a call before load is refused', async (t) => {
  const result = await new PluginServer().call({ id: 1, method: 'echo', args: [] });
  t.equal(!result.ok && result.error.code, 'PLUGIN_SHUTDOWN');
});

t.test('the session answers pings, forwards cancellation to the call, and ends on close', async (t) => {
  const { server } = await loaded('plugins/good/index.js', 'good');
  const { port1, port2 } = new MessageChannel();
  const messages: WorkerMessage[] = [];
  port1.on('message', (m: WorkerMessage) => messages.push(m));
  const session = server.session({ port: port2 });
  port1.postMessage({ type: 'ping', seq: 7 });
  const slow = server.call({ id: 42, method: 'slow', args: [10_000] });
  await sleep(20);
  port1.postMessage({ type: 'cancel', id: 42 });
  const result = await slow;
  t.equal(!result.ok && result.error.message, 'aborted by host');
  t.ok(server.output('stdout', 'hello\n'));
  await sleep(20);
  t.same(messages, [
    { type: 'pong', seq: 7 },
    { type: 'output', stream: 'stdout', text: 'hello\n' },
  ]);
  port1.postMessage({ type: 'close' });
  await session;
  port1.close();
  t.notOk(new PluginServer().output('stdout', 'x'), 'no session, no capture');
});

t.test('a stream sends items, then end', async (t) => {
  const { server } = await loaded('plugins/good/index.js', 'good');
  const { port1, port2 } = new MessageChannel();
  const done = collect(port1);
  await server.stream({ id: 1, method: 'numbers', args: [3], port: port2, credit: 10 });
  t.same(await done, [{ type: 'item', value: 0 }, { type: 'item', value: 1 }, { type: 'item', value: 2 }, { type: 'end' }]);
});

t.test('a JSON stream sends each item as JSON text, and fails on an item that cannot cross', async (t) => {
  const { server } = await loaded('plugins/good/index.js', 'good');
  const run = async (list: unknown[]) => {
    const { port1, port2 } = new MessageChannel();
    const done = collect(port1);
    await server.stream({ id: 1, method: 'items', args: [list], port: port2, credit: 10, json: true });
    return done;
  };
  t.same(await run([{ a: 1, gone: undefined }, undefined]), [
    { type: 'item', json: '{"a":1}' },
    { type: 'item', json: 'null' },
    { type: 'end' },
  ]);
  const [first, last] = await run([{ ok: true }, { n: 1n }]);
  t.same(first, { type: 'item', json: '{"ok":true}' }, 'what came before the bad item was sent');
  t.match(last, {
    type: 'error',
    error: { code: 'PLUGIN_CONTRACT', message: /^items\(\) yielded an item that cannot cross to the host: \/n is a BigInt/ },
  });
  const [date] = await run([{ at: new Date(0) }]);
  t.match(date, { type: 'error', error: { message: /\/at is a Date: send date\.toISOString\(\)/ } });
});

t.test('a stream never runs ahead of its credit', async (t) => {
  const { server } = await loaded('plugins/good/index.js', 'good');
  const { port1, port2 } = new MessageChannel();
  const items: unknown[] = [];
  port1.on('message', (m: StreamMessage) => m.type === 'item' && items.push('value' in m ? m.value : m.json));
  const streaming = server.stream({ id: 1, method: 'numbers', args: [100], port: port2, credit: 3 });
  await sleep(50);
  t.equal(items.length, 3, 'stops at the initial credit');
  const produced = (await server.call({ id: 2, method: 'produced', args: [] })) as { value: number };
  t.ok(produced.value <= 4, `the plugin generator is paused too (produced ${produced.value})`);
  port1.postMessage({ type: 'credit', n: 2 });
  await sleep(50);
  t.equal(items.length, 5, 'two more after two more credits');
  port1.postMessage({ type: 'cancel' });
  await streaming;
  port1.close();
});

t.test('cancelling a stream aborts the plugin’s signal and sends nothing more', async (t) => {
  const { server } = await loaded('modules/class-based.js', 'class-based');
  const { port1, port2 } = new MessageChannel();
  const got: StreamMessage[] = [];
  port1.on('message', (m: StreamMessage) => got.push(m));
  const streaming = server.stream({ id: 1, method: 'forever', args: [], port: port2, credit: 1000 });
  await sleep(30);
  port1.postMessage({ type: 'cancel' });
  await streaming;
  await sleep(10);
  t.ok(got.length > 0);
  t.ok(
    got.every((m) => m.type === 'item'),
    'no end or error after a cancel',
  );
  t.equal((globalThis as { foreverStopped?: boolean }).foreverStopped, true);
  port1.close();
});

t.test('stream errors arrive as data; non-iterables and sync iterables are handled', async (t) => {
  const { server } = await loaded('modules/class-based.js', 'class-based');
  const run = async (method: string) => {
    const { port1, port2 } = new MessageChannel();
    const done = collect(port1);
    await server.stream({ id: 1, method, args: [], port: port2, credit: 10 });
    return done;
  };
  const failed = await run('streamFails');
  t.same(failed[0], { type: 'item', value: 1 });
  t.match(failed[1], { type: 'error', error: { code: 'PLUGIN_ERROR', message: 'stream broke', details: { cause: 'EPIPE' } } });
  t.match((await run('notIterable'))[0], {
    type: 'error',
    error: { code: 'NOT_IMPLEMENTED', message: /must return an AsyncIterable, got number/ },
  });
  t.same(
    (await run('syncItems')).map((m) => m.type),
    ['item', 'item', 'item', 'end'],
  );
  t.match((await run('missing'))[0], { type: 'error', error: { code: 'NOT_IMPLEMENTED' } });
});

t.test('a reply that cannot cross is an error for that call alone, naming the path of the bad value', async (t) => {
  const { server } = await loaded('modules/misbehaves.js', 'misbehaves');
  const cases: [string, RegExp][] = [
    ['function', /is a function \(function\): send data, not code/],
    ['bigint', /is a BigInt \(18446744073709551616n\): send a number/],
    ['symbol', /is a symbol \(Symbol\(s\)\): send a string/],
    ['map', /is a Map: send a plain object \(Object\.fromEntries\(map\)\)/],
    ['set', /is a Set: send an array/],
    ['date', /is a Date: send date\.toISOString\(\)/],
    ['point', /is a Point \(a class instance\): send a plain object/],
    ['buffer', /is a Buffer: send a string/],
    ['error', /is an Error \(boom\): throw it, or send its message/],
    ['child', /is a ChildProcess: send what the host needs to find it again \(its pid\)/],
  ];
  for (const [kind, what] of cases) {
    const result = await server.call({ id: 1, method: 'reply', args: [kind] });
    t.match(result, { ok: false, error: { code: 'PLUGIN_CONTRACT', details: { method: 'reply', path: '/deep/list/1' } } }, kind);
    if (!result.ok) {
      t.match(result.error.message, /^reply\(\) returned a value that cannot cross to the host: \/deep\/list\/1 is /, kind);
      t.match(result.error.message, what, kind);
    }
  }
  const cycle = await server.call({ id: 2, method: 'reply', args: ['cycle'] });
  t.match(cycle, { ok: false, error: { details: { path: '/deep/list/1/self' }, message: /is a cycle \(it contains itself\)/ } });
  const fine = await server.call({ id: 3, method: 'fine', args: [] });
  t.ok(fine.ok, 'shared objects, null-prototype objects, holes and NaN cross');
  t.same(await server.call({ id: 4, method: 'deep', args: [150] }).then((r) => r.ok), true);
  t.match(await server.call({ id: 5, method: 'deep', args: [250] }), { ok: false, error: { message: /is nested deeper than 200 levels/ } });
  t.same(await server.call({ id: 6, method: 'reply', args: ['none'] }), { ok: true, value: { ok: true, deep: { list: [0, undefined] } } });
});

t.test('diagnostics list what the plugin has not settled, and a cancel that overtakes its call still aborts it', async (t) => {
  const { server } = await loaded('modules/misbehaves.js', 'misbehaves');
  const { port1, port2 } = new MessageChannel();
  const session = server.session({ port: port2 });
  const ignored = server.call({ id: 10, method: 'ignoresAbort', args: [] });
  const { port1: streamHost, port2: streamWorker } = new MessageChannel();
  streamHost.on('message', () => undefined);
  void server.stream({ id: 11, method: 'ignoresAbortStream', args: [], port: streamWorker, credit: 10 });
  port1.postMessage({ type: 'cancel', id: 10 });
  streamHost.postMessage({ type: 'cancel' });
  // The cancel of call 12 arrives before the call itself.
  port1.postMessage({ type: 'cancel', id: 12 });
  await sleep(50);
  const honoured = await server.call({ id: 12, method: 'honoursAbort', args: [] });
  t.match(
    honoured,
    { ok: false, error: { code: 'CANCELLED', message: 'honoursAbort() was cancelled before it started' } },
    'a call whose cancel came first never reaches the plugin',
  );
  const report = server.diagnostics();
  t.match(report.inFlight, [
    { id: 10, kind: 'call', method: 'ignoresAbort', cancelledMs: Number },
    { id: 11, kind: 'stream', method: 'ignoresAbortStream', cancelledMs: Number },
  ]);
  t.equal(report.inFlight.length, 2, 'what settled is gone');
  // A cancel for a call that already settled is forgotten, not kept for later.
  port1.postMessage({ type: 'cancel', id: 3 });
  await sleep(20);
  t.same((await server.call({ id: 3, method: 'fine', args: [] })).ok, true);
  // The same, asked over the session port.
  const answer = new Promise<WorkerMessage>((resolve) => port1.once('message', resolve));
  port1.postMessage({ type: 'diagnose', seq: 99 });
  t.match(await answer, { type: 'diagnostics', seq: 99, report: { inFlight: [{ id: 10 }, { id: 11 }], timersTracked: false } });
  port1.postMessage({ type: 'close' });
  await session;
  port1.close();
  streamHost.close();
  void ignored;
});

t.test('with timers followed, each pending timer is listed with the call or stream that made it', async (t) => {
  const { server } = await loaded('modules/misbehaves.js', 'misbehaves');
  const { port1, port2 } = new MessageChannel();
  const session = server.session({ port: port2, trackTimers: true });
  await server.call({ id: 1, method: 'leakTimer', args: [true] });
  const { port1: streamHost, port2: streamWorker } = new MessageChannel();
  streamHost.on('message', () => undefined);
  void server.stream({ id: 2, method: 'ignoresAbortStream', args: [], port: streamWorker, credit: 10 });
  await sleep(20);
  const report = server.diagnostics();
  t.equal(report.timersTracked, true);
  t.match(
    report.timers.filter((x) => x.origin === 'leakTimer'),
    [{ origin: 'leakTimer', repeats: true, delayMs: 60_000, ref: false }],
  );
  t.match(report.inFlight, [{ id: 2, kind: 'stream', method: 'ignoresAbortStream' }]);
  await server.call({ id: 3, method: 'clearTimers', args: [] });
  await sleep(20);
  t.same(
    server.diagnostics().timers.filter((x) => x.origin === 'leakTimer'),
    [],
    'a cleared timer is gone',
  );
  port1.postMessage({ type: 'close' });
  await session;
  port1.close();
  streamHost.close();
});
