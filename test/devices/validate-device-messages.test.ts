// What a device plugin sends, checked with messages a plugin author can act on.
import t from 'tap';
import { validateFingerprint, validateReservation, validateStats } from '../../devices/validate-device-messages.js';
import type { ContainerReservation, DeviceFingerprint, DeviceStats } from '../../shared/device.js';

const group = (attributes: Record<string, unknown>) => ({ vendor: 'v', type: 't', name: 'n', devices: [], attributes });
const attributeIssue = (attribute: unknown) => {
  const checked = validateFingerprint({ groups: [group({ a: attribute })] }, 'p', () => undefined);
  return checked.ok ? undefined : checked.issues;
};

t.test('a fingerprint: the schema, then duplicates and ownership', async (t) => {
  const ok = validateFingerprint({ groups: [{ ...group({}), devices: [{ id: 'd', healthy: true }] }] }, 'p', () => 'p');
  t.ok(ok.ok, 'a plugin may report the groups it owns');
  t.match(
    validateFingerprint({ groups: [group({})] }, 'p', () => 'q'),
    {
      ok: false,
      issues: [{ path: '/groups/0', message: 'group v/t/n belongs to device plugin "q", which reported it first' }],
    },
  );
  t.match(
    validateFingerprint({ groups: 'none' }, 'p', () => undefined),
    { ok: false, issues: [{ path: '/groups', message: 'must be array' }] },
  );
});

t.test('an attribute: one sentence saying what is wrong with it', async (t) => {
  t.same(attributeIssue(80), [
    {
      path: '/groups/0/attributes/a',
      message: 'must be an object such as {"value": "text"}, {"value": true} or {"value": 80, "unit": "GiB"}',
    },
  ]);
  t.same(attributeIssue({ value: 1, units: 'B' }), [
    { path: '/groups/0/attributes/a', message: 'unknown key "units": an attribute has "value" and, for a number, "unit"' },
  ]);
  t.same(attributeIssue({ value: null }), [{ path: '/groups/0/attributes/a', message: '"value" must be a string, a boolean or a number' }]);
  t.same(attributeIssue({ value: true, unit: 'W' }), [
    { path: '/groups/0/attributes/a', message: 'a unit needs a number value, got true' },
  ]);
  t.match(attributeIssue({ value: 3, unit: 'parsecs' }), [{ message: /^unknown unit "parsecs"; units: B, KB, / }]);
  t.match(attributeIssue({ value: 3, unit: 7 }), [{ message: /^unknown unit 7; units: / }]);
  t.equal(attributeIssue({ value: 3, unit: 'MHz' }), undefined);
});

t.test('a reservation: absolute paths, permissions from "rwm", defaults filled in', async (t) => {
  t.same(validateReservation({ devices: [{ taskPath: '/dev/x', hostPath: '/dev/x' }] }), {
    ok: true,
    value: { envs: {}, mounts: [], devices: [{ taskPath: '/dev/x', hostPath: '/dev/x', permissions: 'rw' }] },
  });
  t.match(
    validateReservation({
      mounts: [{ taskPath: '/x', hostPath: 'relative/x' }],
      devices: [{ taskPath: '/d', hostPath: '/d', permissions: 'rr' }],
    }),
    {
      ok: false,
      issues: [
        { path: '/mounts/0/hostPath', message: 'must be an absolute path (got "relative/x")' },
        { path: '/devices/0/permissions', message: 'must be one or more of "r", "w" and "m", each at most once (got "rr")' },
      ],
    },
  );
  t.match(validateReservation({ mounts: [{ taskPath: 5, hostPath: '/x' }] }), {
    ok: false,
    issues: [{ path: '/mounts/0/taskPath', message: 'must be string' }],
  });
  t.match(validateReservation(null), { ok: false, issues: [{ path: '', message: 'must be object' }] });
});

t.test('stats: the schema, names explained', async (t) => {
  t.ok(validateStats({ timestamp: 1, groups: [] }).ok);
  t.match(validateStats({ timestamp: 1, groups: [{ vendor: 'v', type: '', name: 'n', instances: {} }] }), {
    ok: false,
    issues: [{ path: '/groups/0/type', message: 'must not be empty' }],
  });
});

t.test('what the SDK types let a plugin leave out, the host fills with its default', async (t) => {
  const fingerprint: DeviceFingerprint = { groups: [{ vendor: 'v', type: 't', name: 'n', devices: [{ id: 'd', healthy: true }] }] };
  t.match(
    validateFingerprint(fingerprint, 'p', () => undefined),
    { ok: true, value: { groups: [{ attributes: {} }] } },
  );
  const reservation: ContainerReservation = { mounts: [{ taskPath: '/a', hostPath: '/b' }], devices: [{ taskPath: '/c', hostPath: '/c' }] };
  t.same(validateReservation(reservation), {
    ok: true,
    value: {
      envs: {},
      mounts: [{ taskPath: '/a', hostPath: '/b', readOnly: true }],
      devices: [{ taskPath: '/c', hostPath: '/c', permissions: 'rw' }],
    },
  });
  t.same(validateReservation({} satisfies ContainerReservation), { ok: true, value: { envs: {}, mounts: [], devices: [] } });
  const stats: DeviceStats = { timestamp: 1, groups: [{ vendor: 'v', type: 't', name: 'n', instances: { d: { summary: { value: 1 } } } }] };
  t.match(validateStats(stats), { ok: true, value: { groups: [{ instances: { d: { stats: {} } } }] } });
});
