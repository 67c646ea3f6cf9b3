// The call contract: a plugin method gets every argument it declares (undefined for one the
// caller left out), then the AbortSignal, at the position shared/method-args.ts gives it.
import { MessageChannel } from 'node:worker_threads';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { fillSupervision } from '../../plugin-loader/agent-config.js';
import { PluginInstance } from '../../plugin-loader/plugin-instance.js';
import { PluginServer } from '../../plugin-loader/plugin-server.js';
import type { StreamMessage } from '../../plugin-loader/protocol.js';
import type { PluginManifest } from '../../shared/plugin.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';

const entry = new URL('../fixtures/modules/records-args.js', import.meta.url).href;

interface Seen {
  count: number;
  signalAt: number;
  args: unknown[];
}

async function server(type: PluginManifest['type'] = 'driver'): Promise<PluginServer> {
  const s = new PluginServer();
  const loaded = await s.load({ entry, manifest: { type, name: 'records-args', apiVersions: ['1.0'] } });
  if (!loaded.ok) throw new Error(loaded.error.message);
  return s;
}

let nextId = 1;
async function call(s: PluginServer, method: string, args: unknown[]): Promise<Seen> {
  const reply = await s.call({ id: nextId++, method, args });
  if (!reply.ok) throw new Error(reply.error.message);
  return reply.value as Seen;
}

async function stream(s: PluginServer, method: string, args: unknown[]): Promise<Seen> {
  const { port1, port2 } = new MessageChannel();
  const first = new Promise<StreamMessage>((resolve) => port1.once('message', resolve));
  await s.stream({ id: nextId++, method, args, port: port2, credit: 10 });
  const message = await first;
  port1.close();
  if (message.type !== 'item' || !('value' in message)) throw new Error(`expected an item, got ${message.type}`);
  return message.value as Seen;
}

t.test('a call with fewer arguments than declared gets the signal at the declared position', async (t) => {
  const s = await server();
  t.same(await call(s, 'stopTask', ['a/b/00000000', 100]), {
    count: 4,
    signalAt: 3,
    args: ['a/b/00000000', 100, '<undefined>', '<signal>'],
  });
  t.same(await call(s, 'startTask', []), { count: 2, signalAt: 1, args: ['<undefined>', '<signal>'] });
  t.same(await call(s, 'destroyTask', ['a/b/00000000']), { count: 3, signalAt: 2, args: ['a/b/00000000', '<undefined>', '<signal>'] });
  t.same((await call(s, 'setConfig', [])).signalAt, 1, 'base methods follow the table too');
});

t.test('every declared argument arrives as sent, undefined ones included', async (t) => {
  const s = await server();
  t.same(await call(s, 'stopTask', ['a/b/00000000', 100, 'SIGINT']), {
    count: 4,
    signalAt: 3,
    args: ['a/b/00000000', 100, 'SIGINT', '<signal>'],
  });
  t.same((await call(s, 'stopTask', ['a/b/00000000', 100, undefined])).args, ['a/b/00000000', 100, '<undefined>', '<signal>']);
  t.same((await call(s, 'execTask', ['a/b/00000000', ['true'], 5_000])).args, ['a/b/00000000', ['true'], 5_000, '<signal>']);
});

t.test('arguments beyond the declared ones are cut, so the signal never moves', async (t) => {
  const s = await server();
  t.same(await call(s, 'startTask', [{ id: 'x' }, 'extra', 'more']), { count: 2, signalAt: 1, args: [{ id: 'x' }, '<signal>'] });
});

t.test('streams follow the same table', async (t) => {
  const s = await server();
  t.same(await stream(s, 'taskStats', ['a/b/00000000']), {
    count: 3,
    signalAt: 2,
    args: ['a/b/00000000', '<undefined>', '<signal>'],
  });
  t.same(await stream(s, 'fingerprint', ['stray']), { count: 1, signalAt: 0, args: ['<signal>'] });
});

t.test("the plugin's type picks the table: a device plugin's stats declares one argument", async (t) => {
  const device = await server('device');
  t.same(await stream(device, 'stats', []), { count: 2, signalAt: 1, args: ['<undefined>', '<signal>'] });
  t.same(await call(device, 'reserve', [['gpu0'], 'extra']), { count: 2, signalAt: 1, args: [['gpu0'], '<signal>'] });
  const driver = await server('driver');
  t.same((await stream(driver, 'stats', [])).signalAt, 0, 'stats is no driver method: arguments as sent, then the signal');
});

t.test('a method outside the contract gets its arguments as sent, then the signal', async (t) => {
  const s = await server();
  t.same(await call(s, 'custom', [1, undefined, 3]), { count: 4, signalAt: 3, args: [1, '<undefined>', 3, '<signal>'] });
  t.same(await call(s, 'custom', []), { count: 1, signalAt: 0, args: ['<signal>'] });
});

t.test('through a real worker: stopTask(id, timeout) gets killSignal undefined and the signal fourth', async (t) => {
  const instance = new PluginInstance({
    manifest: { type: 'driver', name: 'records-args', apiVersions: ['1.0'] },
    entry,
    apiVersion: '1.0',
    config: undefined,
    dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-test-')),
    supervision: fillSupervision(fastSupervision),
  });
  t.teardown(() => instance.close());
  await instance.start();
  t.same(await instance.call<Seen>('stopTask', ['a/b/00000000', 100]), {
    count: 4,
    signalAt: 3,
    args: ['a/b/00000000', 100, '<undefined>', '<signal>'],
  });
});
