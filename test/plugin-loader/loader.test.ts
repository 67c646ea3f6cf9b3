import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseAgentConfig, fillSupervision, defaultSupervision } from '../../plugin-loader/agent-config.js';
import { PluginLoader } from '../../plugin-loader/loader.js';
import { PluginNotFoundError } from '../../shared/errors.js';
import { fastSupervision, fixturePluginDir } from '../helpers/fixture-plugins.js';
import { pino } from 'pino';

const quiet = pino({ level: 'silent' });

function loader(plugins: Record<string, unknown> = {}) {
  const config = parseAgentConfig({
    pluginDir: fixturePluginDir,
    dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-data-')),
    supervision: fastSupervision,
    plugins,
  });
  return new PluginLoader({ config, logger: quiet });
}

t.test('start hosts every enabled plugin and lists everything found', async (t) => {
  const l = loader({ spins: { enabled: false }, oom: { enabled: false }, good: { config: { greeting: 'hey' } } });
  t.teardown(() => l.close());
  const events: string[] = [];
  l.on('started', (name) => events.push(`started:${name}`));
  l.on('failed', (name) => events.push(`failed:${name}`));
  await Promise.all([l.start(), l.start()]);
  const rows = Object.fromEntries(l.list().map((r) => [r.name, r]));
  t.match(rows.good, { state: 'running', type: 'driver', version: '1.0.0', apiVersion: '1.0', source: 'plugin-dir', restarts: 0 });
  t.match(rows.mock, { state: 'running', source: 'builtin' });
  t.match(rows.spins, { state: 'disabled', reason: 'disabled in the agent config' });
  t.match(rows['throws-at-import'], { state: 'failed', error: { code: 'PLUGIN_LOAD_FAILED' } });
  t.match(rows['api-nine'], { state: 'skipped', type: 'unknown', reason: /speaks plugin API 9.0/ });
  t.ok(events.includes('started:good') && events.includes('failed:throws-at-import'));
  t.equal((await l.get('good').call<{ config: { greeting: string } }>('getConfig')).config.greeting, 'hey');
  t.same(
    l
      .instances('device')
      .map((i) => i.name)
      .sort(),
    ['nvidia'],
    'example-file needs config this agent does not give it',
  );
  t.match(rows['example-file'], { state: 'unconfigured', type: 'device', source: 'builtin', reason: /\/dir: is required/ });
  t.ok(l.instances('driver').length >= 4);
  t.same(l.problems, []);
});

t.test('a built-in that needs config is hosted only once the agent config gives it some', async (t) => {
  const exampleFile = fileURLToPath(new URL('../../devices/example-file', import.meta.url));
  const dataDir = mkdtempSync(path.join(tmpdir(), 'taskhost-data-'));
  const host = (plugins: Record<string, unknown>) => {
    const config = parseAgentConfig({ pluginDir: path.join(dataDir, 'no-plugins'), dataDir, plugins });
    const l = new PluginLoader({ config, logger: quiet, builtinDirs: [exampleFile] });
    t.teardown(() => l.close());
    return l;
  };
  const unconfigured = host({});
  const events: string[] = [];
  unconfigured.on('state', (name, state) => events.push(`${name}:${state}`));
  unconfigured.on('failed', (name) => events.push(`failed:${name}`));
  await unconfigured.start();
  t.same(unconfigured.instances(), []);
  t.same(
    unconfigured.list().map((r) => [r.name, r.state, r.reason]),
    [
      [
        'example-file',
        'unconfigured',
        'needs config, and the agent config has none for it: config of plugin "example-file" is invalid: /dir: is required',
      ],
    ],
  );
  t.same(events, [], 'no failed state, no failed event');

  const configured = host({ 'example-file': { config: { dir: dataDir } } });
  await configured.start();
  t.same(
    configured.instances('device').map((i) => i.name),
    ['example-file'],
  );
  const named = host({ 'example-file': {} });
  await named.start();
  t.match(
    named.list(),
    [{ name: 'example-file', state: 'failed', error: { code: 'INVALID_CONFIG' } }],
    'named in the agent config without its dir: an error to fix',
  );
});

t.test('get() of an unknown plugin suggests the closest name', async (t) => {
  const l = loader({ spins: { enabled: false }, oom: { enabled: false } });
  t.teardown(() => l.close());
  await l.start();
  t.throws(() => l.get('goood'), PluginNotFoundError);
  t.throws(() => l.get('goood'), /no plugin named "goood" is loaded \(did you mean "good"\?\)/);
  t.throws(() => l.get('zzzzzzzzzz'), /\(loaded: /);
});

t.test('config entries for plugins that do not exist are reported with a suggestion', async (t) => {
  const l = loader({ god: {}, 'api-nine': {} });
  await l.discover();
  t.same(l.problems, [
    {
      path: '/plugins/god',
      message:
        'no plugin named "god" (did you mean "good"?); found: docker, mock, raw_exec, example-file, nvidia, exits, good, oom, rejects, spins, throws-at-import',
    },
    { path: '/plugins/api-nine', message: 'plugin "api-nine" was found but skipped: speaks plugin API 9.0; this host speaks 1.0' },
  ]);
  await l.close();
});

t.test('loader events carry the plugin name through a crash and restart', async (t) => {
  const l = loader({ spins: { enabled: false }, oom: { enabled: false } });
  t.teardown(() => l.close());
  await l.start();
  const seen: string[] = [];
  l.on('crashed', (name, err, inFlight) => seen.push(`crashed:${name}:${err.code}:${inFlight}`));
  const restarted = new Promise((r) => l.once('restarted', (name, n) => r(`${name}:${n}`)));
  l.on('restarted', () => {
    throw new Error('a listener that throws must not break supervision');
  });
  await l
    .get('exits')
    .call('exit')
    .catch(() => undefined);
  t.equal(await restarted, 'exits:1');
  t.same(seen, ['crashed:exits:PLUGIN_CRASHED:1']);
  t.equal(await l.get('exits').call('ping'), 'pong');
});

t.test('agent config: defaults, and supervision layered agent-wide then per plugin', async (t) => {
  const config = parseAgentConfig({});
  t.same(config, { pluginDir: './plugins', dataDir: './.taskhost', hostEnvAllow: ['PATH', 'LANG', 'LC_*', 'TZ'], plugins: {} });
  const filled = fillSupervision({ heapMB: 128, restartBackoff: '1s' }, { restartBackoff: '2s', crashLoopRestarts: 9 });
  t.equal(filled.heapMB, 128);
  t.equal(filled.restartBackoffMs, 2000);
  t.equal(filled.crashLoopRestarts, 9);
  t.equal(filled.livenessTimeoutMs, defaultSupervision.livenessTimeoutMs);
  t.throws(() => parseAgentConfig({ plugins: { x: { supervision: { heapMB: 4 } } } }), /\/plugins\/x\/supervision\/heapMB: must be >= 16/);
  t.throws(
    () => parseAgentConfig({ supervision: { livenessInterval: 'often' } }),
    /\/supervision\/livenessInterval: must be a duration: a number and a unit/,
  );
});

t.test('a cancelled call the plugin never settles is logged as a warning, once per method', async (t) => {
  const lines: { level: number; msg: string; method?: string }[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
  const config = parseAgentConfig({
    pluginDir: path.join(tmpdir(), 'taskhost-no-plugins'),
    dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-data-')),
  });
  const ignoresAbort = fileURLToPath(new URL('../fixtures/conformance/ignores-abort', import.meta.url));
  const l = new PluginLoader({ config, logger, builtinDirs: [], extraDirs: [ignoresAbort] });
  t.teardown(() => l.close());
  await l.start();
  for (let i = 0; i < 2; i++) {
    const stop = new AbortController();
    const stream = l.get('ignores-abort').stream('fingerprint', [], { signal: stop.signal })[Symbol.asyncIterator]();
    await stream.next();
    stop.abort();
    await t.rejects(stream.next(), { code: 'CANCELLED' }, 'the host stops waiting at once');
  }
  // The host checks 5 s after the cancel; wait well past that on a busy machine.
  const deadline = Date.now() + 30_000;
  while (!lines.some((l) => l.method === 'fingerprint') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const warned = lines.filter((l) => l.method === 'fingerprint');
  t.equal(warned.length, 1, 'once, however often it happens');
  t.match(warned[0], {
    level: 40,
    msg: /^fingerprint\(\) was cancelled \d+\.\ds ago and the plugin has not settled it: it ignores its AbortSignal \(pass the signal on, or listen for its 'abort' event\); reported once per method$/,
  });
});

t.test('close() while plugins are still starting leaves no worker behind', async (t) => {
  // Each tick count closes at another point of the start: during discovery, while each
  // plugin's data folder is made, while workers load. A worker started after close() would
  // keep this process alive with its MessagePorts (`taskhost run` cancelled by a signal did).
  for (const ticks of [0, 1, 2, 4, 8, 16]) {
    const l = loader({ spins: { enabled: false }, oom: { enabled: false }, good: { config: { greeting: 'hey' } } });
    const starting = l.start();
    for (let i = 0; i < ticks; i++) await new Promise((r) => setImmediate(r));
    await l.close();
    await starting;
    t.same(
      l.instances().filter((i) => i.state !== 'stopped'),
      [],
      `closed after ${ticks} ticks: every plugin is stopped`,
    );
  }
  const ports = process.getActiveResourcesInfo().filter((r) => r === 'MessagePort');
  t.same(ports, [], 'no worker thread is left');
});
