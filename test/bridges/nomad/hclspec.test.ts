// The hclspec Nomad gets for a plugin's JSON Schema: what a Nomad user may write in HCL.
import { Type } from '@sinclair/typebox';
import t from 'tap';
import { hclLiteral, hclSpec, hclType, snakeCase } from '../../../bridges/nomad/hclspec.js';
import { Duration } from '../../../shared/duration.js';
import { StringEnum } from '../../../shared/schema.js';

t.test('names: camelCase becomes snake_case', async (t) => {
  const cases = {
    fingerprintInterval: 'fingerprint_interval',
    memoryMB: 'memory_mb',
    HTTPPort: 'http_port',
    cpu: 'cpu',
    tick2Ms: 'tick2_ms',
  };
  for (const [name, hcl] of Object.entries(cases)) t.equal(snakeCase(name), hcl, name);
});

t.test('primitives, lists, maps, required and defaults', async (t) => {
  const spec = hclSpec(
    Type.Object({
      image: Type.String(),
      count: Type.Integer({ default: 1 }),
      ratio: Type.Optional(Type.Number()),
      privileged: Type.Boolean({ default: false }),
      args: Type.Optional(Type.Array(Type.String(), { default: [] })),
      labels: Type.Optional(Type.Record(Type.String(), Type.String())),
      killTimeout: Duration({ default: '5s' }),
      mode: Type.Optional(StringEnum(['a', 'b'])),
    }),
  );
  const a = spec.object!.attributes;
  t.same(a.image, { Attr: { name: 'image', type: 'string', required: true } }, 'a required string');
  t.same(a.ratio, { Attr: { name: 'ratio', type: 'number', required: false } }, 'an optional number');
  t.same(a.mode, { Attr: { name: 'mode', type: 'string', required: false } }, 'an enum is a string');
  t.same(a.labels, { Attr: { name: 'labels', type: 'map(string)', required: false } }, 'a record is a map');
  t.same(
    a.count,
    { default: { primary: { Attr: { name: 'count', type: 'number', required: false } }, default: { literal: { value: '1' } } } },
    'a key with a default is not required in HCL: the default fills it',
  );
  t.equal(a.privileged!.default!.default.literal!.value, 'false');
  t.same(a.args!.default!.primary.Attr, { name: 'args', type: 'list(string)', required: false });
  t.equal(a.args!.default!.default.literal!.value, '[]');
  t.equal(a.kill_timeout!.default!.default.literal!.value, '"5s"', 'a string default is quoted');
});

t.test('nested objects are blocks; lists of objects are block lists', async (t) => {
  const spec = hclSpec(
    Type.Object({
      auth: Type.Optional(Type.Object({ userName: Type.String(), password: Type.Optional(Type.String()) })),
      mounts: Type.Array(Type.Object({ source: Type.String(), readOnly: Type.Boolean({ default: false }) })),
    }),
  );
  const a = spec.object!.attributes;
  t.same(a.auth, {
    block_value: {
      name: 'auth',
      required: false,
      nested: {
        object: {
          attributes: {
            user_name: { Attr: { name: 'user_name', type: 'string', required: true } },
            password: { Attr: { name: 'password', type: 'string', required: false } },
          },
        },
      },
    },
  });
  t.equal(a.mounts!.block_list!.min_items, 1, 'a required list of blocks needs one');
  t.same(Object.keys(a.mounts!.block_list!.nested.object!.attributes), ['source', 'read_only']);
});

t.test('no schema: an empty object; types and literals', async (t) => {
  t.same(hclSpec(null), { object: { attributes: {} } });
  t.equal(hclType(Type.Array(Type.Array(Type.Integer()))), 'list(list(number))');
  t.equal(hclType(Type.Object({ a: Type.String(), bC: Type.Boolean() })), 'object({a=string, b_c=bool})');
  t.equal(hclType(Type.Unknown()), 'any');
  t.equal(hclType(Type.Union([Type.String(), Type.Null()])), 'string');
  t.equal(hclLiteral('say "hi"\n'), '"say \\"hi\\"\\n"');
  t.equal(hclLiteral('${HOME}/%{x}'), '"$${HOME}/%%{x}"', "HCL's template openers are escaped, so the default stays text");
  t.equal(hclLiteral({ a: [1, true, null] }), '{"a" = [1, true, null]}');
});
