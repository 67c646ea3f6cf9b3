// The example-file device plugin in-process: real files, real (short) time.
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import createExampleFile from '../../../devices/example-file/index.js';
import { validateFingerprint, validateReservation, validateStats } from '../../../devices/validate-device-messages.js';
import type { DeviceFingerprint } from '../../../shared/device.js';
import { DeviceUnhealthyError, InvalidConfigError, UnknownDeviceError } from '../../../shared/errors.js';
import { compileSchema } from '../../../shared/schema.js';

function plugin(dir: string, listPeriod = '20ms') {
  const p = createExampleFile();
  p.setConfig({ apiVersion: '1.0', config: { dir, listPeriod }, agent: { dataDir: dir, pluginDataDir: dir } });
  return p;
}

/** a (healthy), b (world-writable), a link to a, a dangling link and a sub-directory (neither a device). */
function devices(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-example-file-'));
  writeFileSync(path.join(dir, 'a'), 'aaaa');
  writeFileSync(path.join(dir, 'b'), 'bb');
  chmodSync(path.join(dir, 'a'), 0o644);
  chmodSync(path.join(dir, 'b'), 0o646);
  symlinkSync(path.join(dir, 'a'), path.join(dir, 'link'));
  symlinkSync(path.join(dir, 'gone'), path.join(dir, 'dangling'));
  mkdirSync(path.join(dir, 'sub'));
  return dir;
}

t.test('info and config: `dir` is required, `listPeriod` defaults to 5s', async (t) => {
  const p = createExampleFile();
  t.same(p.info(), { type: 'device', name: 'example-file', pluginVersion: '0.1.0', apiVersions: ['1.0'] });
  const validate = compileSchema(p.configSchema());
  t.match(validate({}), { ok: false, issues: [{ path: '/dir', message: 'is required' }] });
  t.match(validate({ dir: '/srv/devices' }), { ok: true, value: { dir: '/srv/devices', listPeriod: '5s' } });
});

t.test('fingerprint: the group at once, then only when something changed', async (t) => {
  const dir = devices();
  const stop = new AbortController();
  const stream = plugin(dir).fingerprint(stop.signal);
  const first = (await stream.next()).value as DeviceFingerprint;
  t.ok(validateFingerprint(first, 'example-file', () => undefined).ok, 'a valid fingerprint');
  t.same(first, {
    groups: [
      {
        vendor: 'example',
        type: 'file',
        name: 'mock',
        devices: [
          { id: 'a', healthy: true },
          { id: 'b', healthy: false, healthDescription: `world-writable: chmod o-w ${path.join(dir, 'b')}` },
          { id: 'link', healthy: true },
        ],
        attributes: { dir: { value: dir }, count: { value: 3 } },
      },
    ],
  });
  const next = stream.next();
  const nothingYet = await Promise.race([next.then(() => 'sent'), new Promise((r) => setTimeout(() => r('quiet'), 150))]);
  t.equal(nothingYet, 'quiet', 'rescans that find nothing new send nothing');
  chmodSync(path.join(dir, 'b'), 0o644);
  const second = (await next).value as DeviceFingerprint;
  t.same(
    second.groups[0]!.devices.map((d) => d.healthy),
    [true, true, true],
  );
  appendFileSync(path.join(dir, 'a'), 'more'); // a size is not a fingerprint change
  writeFileSync(path.join(dir, 'c'), '');
  const third = (await stream.next()).value as DeviceFingerprint;
  t.same(
    third.groups[0]!.devices.map((d) => d.id),
    ['a', 'b', 'c', 'link'],
  );
  stop.abort();
  t.same(await stream.next(), { done: true, value: undefined }, 'the stream ends when the host cancels it');
});

t.test('an empty directory is a group with no devices; a missing one fails the stream, saying why', async (t) => {
  const empty = mkdtempSync(path.join(tmpdir(), 'taskhost-example-file-'));
  const stop = new AbortController();
  t.teardown(() => stop.abort());
  t.match((await plugin(empty).fingerprint(stop.signal).next()).value, { groups: [{ devices: [], attributes: { count: { value: 0 } } }] });
  const missing = path.join(empty, 'nope');
  await t.rejects(plugin(missing).fingerprint(stop.signal).next(), {
    message: new RegExp(`^cannot read the device directory ${missing}: ENOENT`),
  });
});

t.test('reserve: each file mounted read-only at /devices/<id>, the ids in EXAMPLE_FILE_DEVICES', async (t) => {
  const dir = devices();
  const p = plugin(dir);
  const reservation = await p.reserve(['a', 'link']);
  t.same(reservation, {
    envs: { EXAMPLE_FILE_DEVICES: 'a,link' },
    mounts: [
      { taskPath: '/devices/a', hostPath: path.join(dir, 'a'), readOnly: true },
      { taskPath: '/devices/link', hostPath: path.join(dir, 'link'), readOnly: true },
    ],
    devices: [],
  });
  t.ok(validateReservation(reservation).ok, 'a valid reservation');
  await t.rejects(p.reserve(['a', 'zz', 'sub']), UnknownDeviceError);
  await t.rejects(p.reserve(['zz']), { message: `example-file has no device "zz" in ${dir} (devices: a, b, link)` });
  await t.rejects(p.reserve(['b']), DeviceUnhealthyError);
  await t.rejects(p.reserve(['b']), { message: `device "b" is world-writable: chmod o-w ${path.join(dir, 'b')}` });
  await t.rejects(p.reserve([]), InvalidConfigError);
  const empty = mkdtempSync(path.join(tmpdir(), 'taskhost-example-file-'));
  await t.rejects(plugin(empty).reserve(['a']), { message: /\(devices: none\)$/ });
});

t.test('stats: each file’s size as the summary, at once and then every interval', async (t) => {
  const dir = devices();
  const stop = new AbortController();
  const p = plugin(dir);
  const stream = p.stats(30, stop.signal);
  const first = (await stream.next()).value!;
  t.ok(validateStats(first).ok, 'valid stats');
  t.match(first.groups, [{ vendor: 'example', type: 'file', name: 'mock' }]);
  t.same(first.groups[0]!.instances.a!.summary, { value: 4, unit: 'B', description: 'file size' });
  t.match(first.groups[0]!.instances.b!.stats, { size: { value: 2, unit: 'B' }, mode: { value: '0646' }, modified: { value: /^\d{4}-/ } });
  appendFileSync(path.join(dir, 'a'), 'more');
  const second = (await stream.next()).value!;
  t.ok(second.timestamp >= first.timestamp);
  t.equal(second.groups[0]!.instances.a!.summary.value, 8);
  stop.abort();
  t.same(await stream.next(), { done: true, value: undefined });
  await t.rejects(p.stats(0, stop.signal).next(), InvalidConfigError);
});
