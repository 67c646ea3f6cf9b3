// `taskhost nomad serve` as a real process, driven the way go-plugin's client and Nomad drive
// it, with a grpc-js client on the socket its handshake names.
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { encode } from '@msgpack/msgpack';
import t from 'tap';
import type { HclSpec } from '../../../bridges/nomad/hclspec.js';
import { bridgeAgentConfig, serveNomadPlugin, taskhostArgv } from '../../helpers/nomad-plugin.js';
import { tsxChildEnv } from '../../helpers/tsx-child.js';

const base = 'hashicorp.nomad.plugins.base.proto.BasePlugin';
const health = 'grpc.health.v1.Health';
const controller = 'plugin.GRPCController';
const configFile = bridgeAgentConfig();

const statusOf = (p: Promise<unknown>) =>
  p.then(
    () => ({ code: grpc.status.OK, details: '' }),
    (e: grpc.ServiceError) => ({ code: e.code, details: e.details }),
  );

t.test('raw_exec served to Nomad: handshake, health, base calls, SIGINT ignored, Shutdown', async (t) => {
  const p = await serveNomadPlugin(t, 'raw_exec', { configFile });
  t.match(p.handshake, /^1\|2\|unix\|\/[^|]+\|grpc\|\n$/, 'core 1, app 2, unix, the socket, grpc, no certificate');
  t.equal(path.dirname(path.dirname(p.socket)), tmpdir(), 'the socket is in $TMPDIR');
  t.equal(statSync(p.socket).mode & 0o777, 0o600, 'only its owner may connect');

  t.same(await p.call(health, 'Check', { service: 'plugin' }), { status: 'SERVING' }, 'the "plugin" service is SERVING');
  t.equal((await statusOf(p.call(health, 'Check', { service: 'other' }))).code, grpc.status.NOT_FOUND);
  const watch = (p.client(health) as unknown as { Watch(r: unknown): grpc.ClientReadableStream<{ status: string }> }).Watch({
    service: 'plugin',
  });
  const first = await new Promise<{ status: string }>((resolve) => watch.once('data', resolve));
  t.equal(first.status, 'SERVING', 'Watch says SERVING at once');
  watch.cancel();
  watch.on('error', () => undefined);

  t.same(
    await p.call(base, 'PluginInfo'),
    { type: 'DRIVER', plugin_api_versions: ['v0.1.0'], plugin_version: '0.1.0', name: 'raw_exec' },
    "PluginInfo: a driver, Nomad's plugin API version, the manifest's version",
  );
  const schema = await p.call<{ spec: HclSpec }>(base, 'ConfigSchema');
  const interval = schema.spec.object!.attributes.fingerprint_interval!.default!;
  t.equal(interval.primary.Attr!.type, 'string');
  t.equal(interval.default.literal!.value, '"30s"', 'a string default is a quoted HCL literal');

  t.same(
    await p.call(base, 'SetConfig', { msgpack_config: encode({ allow_cwd_outside_task_dir: null, fingerprint_interval: '10s' }) }),
    {},
    'a good config (nil for the attribute left out) is taken',
  );
  const bad = await statusOf(
    p.call(base, 'SetConfig', { msgpack_config: encode({ allow_cwd_outside_task_dir: 'yes', fingerprint_interval: 'soon' }) }),
  );
  t.equal(bad.code, grpc.status.INVALID_ARGUMENT, 'a bad config is INVALID_ARGUMENT');
  t.match(bad.details, /\/fingerprint_interval: must be a duration/, 'naming the HCL path of each error');
  t.match(bad.details, /\/allow_cwd_outside_task_dir: must be boolean/);

  p.child.kill('SIGINT');
  t.same((await p.call(base, 'PluginInfo')).name, 'raw_exec', 'SIGINT is ignored: the client decides when a plugin stops');

  t.same(await p.call(controller, 'Shutdown'), {}, 'GRPCController/Shutdown answers');
  t.same(await p.exited, { code: 0, signal: null }, 'then the plugin exits cleanly');
  t.notOk(existsSync(p.socket), 'and its socket is gone');
  t.equal(p.stdout(), p.handshake, 'nothing but the handshake ever reached stdout');

  const lines = p.stderr().trim().split('\n');
  t.ok(lines.length > 0);
  for (const line of lines) {
    const record = JSON.parse(line) as Record<string, unknown>;
    t.match(record, { '@level': /^(trace|debug|info|warn|error)$/, '@message': String }, `an hclog line: ${line.slice(0, 80)}`);
    t.match(record['@timestamp'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'with the timestamp layout go-plugin parses');
  }
  t.ok(
    lines.some((l) => l.includes('serving taskhost plugin \\"raw_exec\\"')),
    'it says what it serves',
  );
});

t.test("ConfigSchema of mock and of the countdown example: the plugin's own schema, in HCL names", async (t) => {
  const mock = await serveNomadPlugin(t, 'mock', { configFile });
  const countdown = await serveNomadPlugin(t, 'countdown', { configFile });
  const mockSpec = (await mock.call<{ spec: HclSpec }>(base, 'ConfigSchema')).spec;
  const mockAttrs = mockSpec.object!.attributes;
  t.same(Object.keys(mockAttrs).sort(), ['fingerprint_interval', 'healthy']);
  t.same(mockAttrs.healthy!.default!.primary.Attr, { name: 'healthy', type: 'bool', required: false });
  t.equal(mockAttrs.healthy!.default!.default.literal!.value, 'true');

  const spec = (await countdown.call<{ spec: HclSpec }>(base, 'ConfigSchema')).spec;
  const tick = spec.object!.attributes.tick_ms!.default!;
  t.same(tick.primary.Attr, { name: 'tick_ms', type: 'number', required: false }, 'tickMs is tick_ms');
  t.equal(tick.default.literal!.value, '1000');
  t.same((await countdown.call(base, 'PluginInfo')).plugin_version, '1.0.0', "a third-party plugin's version from its package.json");

  t.same(await countdown.call(base, 'SetConfig', { msgpack_config: encode({ tick_ms: '2.5e1' }) }), {}, 'a number as a decimal string');
  const low = await statusOf(countdown.call(base, 'SetConfig', { msgpack_config: encode({ tick_ms: 5 }) }));
  t.equal(low.code, grpc.status.INVALID_ARGUMENT);
  t.match(low.details, /config of plugin "countdown" is invalid: \/tick_ms: must be >= 10/);
  for (const p of [mock, countdown]) {
    await p.call(controller, 'Shutdown');
    t.equal((await p.exited).code, 0);
  }
});

/** Runs `taskhost nomad serve` to its exit; its code and output. */
function runServe(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [node, ...rest] = taskhostArgv(['--config', configFile, 'nomad', 'serve', ...args]);
  const child = spawn(node!, rest, { env: tsxChildEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

t.test('started by hand, without Nomad: a message that says what it is, exit 1', async (t) => {
  const env = { NOMAD_PLUGIN_MAGIC_COOKIE: '', PLUGIN_PROTOCOL_VERSIONS: '' };
  const r = await runServe(['raw_exec'], env);
  t.equal(r.code, 1);
  t.equal(r.stdout, '', 'no handshake');
  t.match(r.stderr, /this is a Nomad plugin: Nomad starts it .*NOMAD_PLUGIN_MAGIC_COOKIE.*taskhost nomad install/);
});

t.test('a client of another plugin protocol version is refused', async (t) => {
  const r = await runServe(['raw_exec'], {
    NOMAD_PLUGIN_MAGIC_COOKIE: 'e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255',
    PLUGIN_PROTOCOL_VERSIONS: '1,3',
  });
  t.equal(r.code, 1);
  t.equal(r.stdout, '');
  t.match(r.stderr, /offers plugin protocol versions 1,3, and this plugin speaks only version 2/);
});

t.test('an unknown plugin: exit 1 before the handshake, with the closest name', async (t) => {
  const r = await runServe(['raw_exex'], {
    NOMAD_PLUGIN_MAGIC_COOKIE: 'e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255',
    PLUGIN_PROTOCOL_VERSIONS: '2',
  });
  t.equal(r.code, 1);
  t.equal(r.stdout, '');
  const line = JSON.parse(r.stderr.trim().split('\n').pop()!) as Record<string, string>;
  t.equal(line['@level'], 'error');
  t.match(line['@message'], /no plugin named "raw_exex" \(did you mean "raw_exec"\?\)/);
});

t.test("the client's end of stderr gone: the plugin keeps serving and still exits cleanly", async (t) => {
  const p = await serveNomadPlugin(t, 'countdown', { configFile });
  p.child.stderr!.destroy();
  // A new config restarts the plugin, which logs at info: writes into the closed pipe.
  t.same(await p.call(base, 'SetConfig', { msgpack_config: encode({ tick_ms: 20 }) }), {});
  t.same(await p.call(base, 'SetConfig', { msgpack_config: encode({ tick_ms: 30 }) }), {});
  t.equal((await p.call(base, 'PluginInfo')).name, 'countdown', 'still answering');
  await p.call(controller, 'Shutdown');
  t.same(await p.exited, { code: 0, signal: null });
});
