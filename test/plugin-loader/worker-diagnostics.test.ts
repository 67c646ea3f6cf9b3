// What only the worker can see, asked over the session port: the calls and streams a plugin has
// not settled (cancelled ones too, which the host stops waiting for at once), and the thread's
// active resources, unref'd timers included when the conformance probe asks for them.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { fillSupervision } from '../../plugin-loader/agent-config.js';
import { PluginInstance, type PluginInstanceOptions } from '../../plugin-loader/plugin-instance.js';
import type { WorkerDiagnostics } from '../../plugin-loader/protocol.js';
import { fastSupervision, next } from '../helpers/fixture-plugins.js';

async function misbehaves(t: { teardown(fn: () => unknown): void }, options: Partial<PluginInstanceOptions> = {}) {
  const instance = new PluginInstance({
    manifest: { type: 'driver', name: 'misbehaves', apiVersions: ['1.0'] },
    entry: new URL('../fixtures/modules/misbehaves.js', import.meta.url).href,
    apiVersion: '1.0',
    config: undefined,
    dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-diagnostics-')),
    supervision: fillSupervision(fastSupervision),
    ...options,
  });
  t.teardown(() => instance.close());
  await instance.start();
  return instance;
}

/** Polls until `ok` holds for the diagnostics, or a generous deadline passes. */
async function until(instance: PluginInstance, ok: (d: WorkerDiagnostics) => boolean): Promise<WorkerDiagnostics> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const report = await instance.diagnostics();
    if (ok(report) || Date.now() > deadline) return report;
    await sleep(50);
  }
}

const refTimers = (d: WorkerDiagnostics) => d.resources.Timeout ?? 0;
const leaked = (d: WorkerDiagnostics) => d.timers.filter((x) => x.origin === 'leakTimer');

t.test('diagnostics list every timer the plugin made, unref’d ones too, with the call that made it', async (t) => {
  const tracked = await misbehaves(t, { probe: { trackTimers: true } });
  const base = await tracked.diagnostics();
  t.equal(base.timersTracked, true);
  t.same(base.inFlight, []);
  t.ok(base.resourcesBeforeImport.MessagePort! >= 1, 'the baseline before the import holds the worker’s own ports');
  await tracked.call('leakTimer', [false]);
  await tracked.call('leakTimer', [true]);
  const both = await tracked.diagnostics();
  t.match(leaked(both), [
    { origin: 'leakTimer', repeats: true, delayMs: 60_000, ref: true, ageMs: Number },
    { origin: 'leakTimer', repeats: true, delayMs: 60_000, ref: false },
  ]);
  t.equal(refTimers(both), refTimers(base) + 1, 'the thread’s own count sees the referenced one only');
  await tracked.call('clearTimers');
  t.same(leaked(await until(tracked, (d) => leaked(d).length === 0)), [], 'cleared timers are gone');

  const plain = await misbehaves(t);
  const before = await plain.diagnostics();
  t.equal(before.timersTracked, false);
  await plain.call('leakTimer', [true]);
  await plain.call('leakTimer', [false]);
  const after = await plain.diagnostics();
  t.same(after.timers, [], 'not followed without the probe');
  t.equal(refTimers(after), refTimers(before) + 1, 'a referenced timer is counted either way');
});

t.test('a cancelled call or stream the plugin never settles is listed, and reported once per method', async (t) => {
  const instance = await misbehaves(t, { unsettledAfterMs: 300 });
  const reports: unknown[][] = [];
  instance.on('unsettled', (...args) => reports.push(args));
  const first = next<[string, string, number]>(instance, 'unsettled');
  const stop = new AbortController();
  const call = instance.call('ignoresAbort', [], { signal: stop.signal });
  const stream = instance.stream('ignoresAbortStream', [], { signal: stop.signal })[Symbol.asyncIterator]();
  t.same(await stream.next(), { done: false, value: 1 });
  await until(instance, (d) => d.inFlight.length === 2);
  stop.abort();
  await t.rejects(call, { code: 'CANCELLED' }, 'the host stops waiting at once');
  const [method, kind, ms] = await first;
  t.ok(['ignoresAbort', 'ignoresAbortStream'].includes(method));
  t.ok(['call', 'stream'].includes(kind));
  t.ok(ms >= 300);
  const report = await until(instance, () => reports.length === 2);
  t.match(report.inFlight, [
    { kind: 'call', method: 'ignoresAbort', cancelledMs: Number },
    { kind: 'stream', method: 'ignoresAbortStream', cancelledMs: Number },
  ]);
  t.same(reports.map((r) => r[0]).sort(), ['ignoresAbort', 'ignoresAbortStream']);
  // The same mistake again is not reported again.
  const again = new AbortController();
  const second = instance.call('ignoresAbort', [], { signal: again.signal });
  again.abort();
  await t.rejects(second, { code: 'CANCELLED' });
  await sleep(1_000);
  t.equal(reports.length, 2);
  // One that honours its signal is never listed.
  const honest = new AbortController();
  const settles = instance.call('honoursAbort', [], { signal: honest.signal });
  honest.abort();
  await t.rejects(settles, { code: 'CANCELLED' });
  const after = await until(instance, (d) => !d.inFlight.some((c) => c.method === 'honoursAbort'));
  t.notOk(after.inFlight.some((c) => c.method === 'honoursAbort'));
});

t.test('diagnostics of a plugin that is not running are refused', async (t) => {
  const instance = await misbehaves(t);
  await instance.close();
  await t.rejects(instance.diagnostics(), { code: 'PLUGIN_SHUTDOWN', message: /is stopped, not running/ });
});
