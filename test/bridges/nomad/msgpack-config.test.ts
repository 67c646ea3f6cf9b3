// A config as Nomad sends it (msgpack of a cty value) decoded into the plugin's config.
import { Type } from '@sinclair/typebox';
import { encode } from '@msgpack/msgpack';
import t from 'tap';
import { configFromMsgpack, hclPath } from '../../../bridges/nomad/msgpack-config.js';
import { InvalidConfigError } from '../../../shared/errors.js';

const Schema = Type.Object({
  fingerprintInterval: Type.String({ default: '30s' }),
  cwd: Type.Optional(Type.String({ minLength: 1 })),
  maxBytes: Type.Optional(Type.Integer()),
  ratio: Type.Optional(Type.Number()),
  labels: Type.Optional(Type.Record(Type.String(), Type.String())),
  mounts: Type.Optional(Type.Array(Type.Object({ hostPath: Type.String(), readOnly: Type.Boolean({ default: false }) }))),
});
const decode = (value: unknown, schema: object | null = Schema) =>
  configFromMsgpack(encode(value, { useBigInt64: true }), schema as never, 'config of plugin "p"');
const issues = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidConfigError) return err.errors;
    throw err;
  }
  throw new Error('no error');
};

t.test('nil is absent: defaults apply and optional keys are left out', async (t) => {
  t.same(decode({ fingerprint_interval: null, cwd: null, max_bytes: null, labels: null, mounts: null, ratio: null }), {
    fingerprintInterval: '30s',
  });
  t.same(configFromMsgpack(new Uint8Array(), Schema, 'x'), { fingerprintInterval: '30s' }, 'no bytes: an empty config');
});

t.test('snake_case names become the schema names; map keys stay as written', async (t) => {
  t.same(decode({ fingerprint_interval: '5s', labels: { team_name: 'a' }, mounts: [{ host_path: '/x', read_only: true }] }), {
    fingerprintInterval: '5s',
    labels: { team_name: 'a' },
    mounts: [{ hostPath: '/x', readOnly: true }],
  });
});

t.test('numbers as cty writes them: ints, float64, big ints, decimal strings', async (t) => {
  t.same(decode({ max_bytes: 2n ** 40n, ratio: 0.5 }), { fingerprintInterval: '30s', maxBytes: 2 ** 40, ratio: 0.5 });
  t.same(decode({ ratio: '0.1', max_bytes: '12' }), { fingerprintInterval: '30s', ratio: 0.1, maxBytes: 12 }, 'decimal strings');
  t.same(
    (decode({ ratio: 2n ** 64n - 1n }) as { ratio: number }).ratio,
    2 ** 64,
    'a uint64 beyond 2^53 is a number where a number is wanted',
  );
  t.same(
    issues(() => decode({ max_bytes: 2n ** 60n })),
    [{ path: '/max_bytes', message: `${2n ** 60n} is too large: an integer here must be within ±${Number.MAX_SAFE_INTEGER}` }],
    'an integer that a JS number cannot hold exactly is refused, not rounded',
  );
  t.same(
    issues(() => decode({ ratio: '1e400' })),
    [{ path: '/ratio', message: '1e400 is out of range for a number' }],
  );
});

t.test('errors name HCL paths', async (t) => {
  t.same(
    issues(() => decode({ cwd: '', mounts: [{ host_path: 3 }] })),
    [
      { path: '/cwd', message: 'must NOT have fewer than 1 characters' },
      { path: '/mounts/0/host_path', message: 'must be string' },
    ],
  );
  t.equal(hclPath(Schema, '/mounts/2/readOnly'), '/mounts/2/read_only');
  t.equal(hclPath(Schema, '/labels/someKey'), '/labels/someKey', "a map key is the user's own");
  t.match(
    issues(() => decode({ nope: 1 })),
    [{ path: '/nope', message: /unknown key/ }],
  );
});

t.test('a plugin without config, and bytes that are not msgpack', async (t) => {
  t.equal(decode({}, null), undefined);
  t.match(
    issues(() => decode({ a: 1 }, null)),
    [{ path: '', message: /takes no config/ }],
  );
  t.match(
    issues(() => configFromMsgpack(new Uint8Array([0xc1]), Schema, 'x')),
    [{ path: '', message: /is not valid msgpack/ }],
  );
});
