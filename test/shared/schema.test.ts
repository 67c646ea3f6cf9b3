import { Type } from '@sinclair/typebox';
import t from 'tap';
import { formatDuration, parseDuration } from '../../shared/duration.js';
import { InvalidConfigError, InvalidSchemaError } from '../../shared/errors.js';
import { closest, compileSchema, formatIssues, parseWith, StringEnum } from '../../shared/schema.js';

const Server = Type.Object({
  host: Type.String({ default: 'localhost' }),
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  tls: Type.Optional(Type.Object({ cert: Type.String(), verify: Type.Boolean({ default: true }) })),
  mode: Type.Optional(StringEnum(['fast', 'safe'])),
});

t.test('defaults are applied to a copy, never to the caller’s object', async (t) => {
  const input = { port: 80, tls: { cert: '/c.pem' } };
  const result = compileSchema(Server)(input);
  t.ok(result.ok);
  if (result.ok) t.same(result.value, { host: 'localhost', port: 80, tls: { cert: '/c.pem', verify: true } });
  t.same(input, { port: 80, tls: { cert: '/c.pem' } });
});

t.test('inPlace checks the same way without a copy: the defaults land in the object given', async (t) => {
  const validate = compileSchema(Server);
  const input = { port: 80, tls: { cert: '/c.pem' } };
  const result = validate.inPlace(input);
  t.ok(result.ok);
  if (result.ok) t.equal(result.value, input, 'the very object, not a copy');
  t.same(input, { host: 'localhost', port: 80, tls: { cert: '/c.pem', verify: true } });
  const bad = validate.inPlace({ port: 0, tl: {} });
  const copied = validate({ port: 0, tl: {} });
  t.same(!bad.ok && bad.issues, !copied.ok && copied.issues, 'the same issues as the copying check');
  t.match(!bad.ok && formatIssues(bad.issues), [/tl: unknown key \(did you mean "tls"\?\)/, /port: must be >= 1/]);
});

t.test('unknown keys are errors at every depth, with their path and a suggestion', async (t) => {
  const result = compileSchema(Server)({ port: 80, hots: 'x', tls: { cert: 'c', verfy: false } });
  t.notOk(result.ok);
  if (result.ok) return;
  t.same(result.issues, [
    { path: '/hots', message: 'unknown key (did you mean "host"?)' },
    { path: '/tls/verfy', message: 'unknown key (did you mean "verify"?)' },
  ]);
});

t.test('an unknown key with no close match lists what is allowed', async (t) => {
  const result = compileSchema(Type.Object({ alpha: Type.String() }))({ alpha: 'a', zzzzzzzz: 1 });
  t.notOk(result.ok);
  if (!result.ok) t.same(result.issues, [{ path: '/zzzzzzzz', message: 'unknown key (allowed: alpha)' }]);
});

t.test('missing, mistyped and out-of-range values each name their path', async (t) => {
  const result = compileSchema(Server)({ tls: { verify: 'yes' }, mode: 'slow', port: 0 });
  t.notOk(result.ok);
  if (result.ok) return;
  t.same(formatIssues(result.issues).sort(), [
    '/mode: must be one of "fast", "safe"',
    '/port: must be >= 1',
    '/tls/cert: is required',
    '/tls/verify: must be boolean',
  ]);
  t.same(formatIssues([{ path: '', message: 'must be object' }]), ['(root): must be object']);
});

t.test('a schema that states additionalProperties keeps its own rule; allOf branches stay open', async (t) => {
  const open = compileSchema({ type: 'object', properties: { a: { type: 'string' } }, additionalProperties: true });
  t.ok(open({ a: 'x', b: 1 }).ok);
  const merged = compileSchema({
    allOf: [
      { type: 'object', properties: { a: { type: 'string' } } },
      { type: 'object', properties: { b: { type: 'number' } } },
    ],
  });
  t.ok(merged({ a: 'x', b: 1 }).ok);
});

t.test('keys with / and ~ are escaped as JSON Pointer', async (t) => {
  const result = compileSchema(Type.Object({}))({ 'a/b~c': 1 });
  t.notOk(result.ok);
  if (!result.ok) t.equal(result.issues[0]!.path, '/a~1b~0c');
});

t.test('the same schema content compiles once, even as a new object or with an $id', async (t) => {
  const a = compileSchema({ $id: 'X', type: 'object', properties: { n: { type: 'number' } } });
  const b = compileSchema({ $id: 'X', type: 'object', properties: { n: { type: 'number' } } });
  t.equal(a, b);
  const c = compileSchema({ $id: 'X', type: 'object', properties: { m: { type: 'number' } } });
  t.ok(c({ m: 1 }).ok);
  t.notOk(c({ n: 1 }).ok);
});

t.test('parseWith throws InvalidConfigError carrying every issue, under a base path', async (t) => {
  const v = compileSchema(Server);
  t.same(parseWith(v, { port: 1 }, 'server'), { host: 'localhost', port: 1 });
  try {
    parseWith(v, { port: 'x', extra: 1 }, 'server config', '/servers/0');
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof InvalidConfigError);
    const e = err as InvalidConfigError;
    t.same(e.errors.map((i) => i.path).sort(), ['/servers/0/extra', '/servers/0/port']);
    t.match(e.message, /^server config is invalid: /);
  }
});

t.test('closest only suggests near misses', async (t) => {
  t.equal(closest('endpint', ['endpoint', 'auth']), 'endpoint');
  t.equal(closest('ENDPOINT', ['endpoint']), 'endpoint');
  t.equal(closest('volume', ['auth', 'gc']), undefined);
  t.equal(closest('x', []), undefined);
});

t.test('durations: parse what people write, refuse the rest with a hint', async (t) => {
  const table: [string, number][] = [
    ['250ms', 250],
    ['5s', 5000],
    ['1.5s', 1500],
    ['1m30s', 90_000],
    ['2h', 7_200_000],
    ['0s', 0],
  ];
  for (const [text, ms] of table) t.equal(parseDuration(text), ms, text);
  for (const bad of ['5', '5 s', 's', '-1s', '1d', '']) t.throws(() => parseDuration(bad), RangeError, bad);
  t.throws(() => parseDuration('5'), /e\.g\. "5s"/);
  t.equal(formatDuration(250), '250ms');
  t.equal(formatDuration(5000), '5s');
  t.equal(formatDuration(1500), '1.5s');
  t.equal(formatDuration(90_000), '1m30s');
  t.equal(formatDuration(120_000), '2m');
  t.equal(formatDuration(599_500), '10m');
  t.equal(formatDuration(59_960), '1m');
});

t.test('a schema that does not compile names each problem’s path inside it, once, with a did-you-mean', async (t) => {
  const typo = { type: 'object', properties: { seconds: { type: 'number', minimun: 0 } }, requird: ['seconds'] };
  const err = t.throws(() => compileSchema(typo, 'taskConfigSchema()')) as InvalidSchemaError;
  t.ok(err instanceof InvalidSchemaError);
  t.equal(err.code, 'INVALID_SCHEMA');
  t.equal(
    err.message,
    'taskConfigSchema() /properties/seconds/minimun: unknown keyword (did you mean "minimum"?); taskConfigSchema() /requird: unknown keyword (did you mean "required"?)',
  );
  t.same(err.errors, [
    { path: '/properties/seconds/minimun', message: 'unknown keyword (did you mean "minimum"?)' },
    { path: '/requird', message: 'unknown keyword (did you mean "required"?)' },
  ]);
  // Subschemas in lists and maps, escaped keys, and a word too far from any keyword.
  const nested = {
    anyOf: [{ type: 'object', properties: { 'a/b': { type: 'string', maxLenght: 3 } } }],
    definitions: { d: { zzzzqq: 1 } },
  };
  t.match(
    t.throws(() => compileSchema(nested)),
    {
      message:
        'JSON Schema /anyOf/0/properties/a~1b/maxLenght: unknown keyword (did you mean "maxLength"?); JSON Schema /definitions/d/zzzzqq: unknown keyword',
    },
  );
  // A known keyword with a wrong value, and ajv's own complaints, keep their place too.
  t.match(
    t.throws(() => compileSchema({ type: 'object', properties: { a: { type: 'strin' } } })),
    {
      code: 'INVALID_SCHEMA',
      message: /^JSON Schema \/properties\/a\/type: must be one of "array", "boolean"/,
    },
  );
  t.match(
    t.throws(() => compileSchema({ type: 'object', properties: { a: { minimum: 1 } } })),
    {
      errors: [{ path: '/properties/a', message: /missing type "number" for keyword "minimum"/ }],
    },
  );
  t.match(
    t.throws(() => compileSchema({ $ref: '#/definitions/x' })),
    { errors: [{ path: '', message: /can't resolve reference/ }] },
  );
});
