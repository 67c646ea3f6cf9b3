// Documents too deep, too big or not JSON at all are refused with the path at fault, by the
// parsers of the library and the file readers of the CLI, before any recursive code sees them.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parseTaskSpec, loadTaskSpec } from '../../drivers/prepare-task.js';
import { loadAgentConfig, parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { InvalidConfigError } from '../../shared/errors.js';
import { guardInput, inputLimits, readJsonFile } from '../../shared/input-guard.js';

const work = mkdtempSync(path.join(tmpdir(), 'taskhost-guard-'));
const file = (name: string, text: string) => {
  const f = path.join(work, name);
  writeFileSync(f, text);
  return f;
};
/** `{ a: { a: ... } }`, `levels` objects deep. */
const nested = (levels: number): Record<string, unknown> => {
  const root: Record<string, unknown> = {};
  let cur = root;
  for (let i = 1; i < levels; i++) cur = cur.a = {};
  return root;
};
const errorsOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidConfigError) return err.errors;
    throw err;
  }
  return [];
};

t.test('a task spec 3,000 levels deep is an error naming where the nesting starts, not a stack overflow', async (t) => {
  const spec = { name: 'deep', driver: 'raw_exec', config: { command: '/bin/true', nest: nested(3000) } };
  const [issue, ...rest] = errorsOf(() => parseTaskSpec(spec));
  t.same(rest, []);
  t.equal(issue?.path, '/config/nest/a/a/a/a/…/a/a', 'a shortened path: the start and the end');
  t.equal(issue?.message, 'is nested 65 levels deep; at most 64 levels of objects and arrays are allowed');
  t.same(errorsOf(() => parseTaskSpec({ ...spec, config: { nest: nested(62) } })).length, 0, '64 levels in all are fine');
  const deepArray = JSON.parse('['.repeat(3000) + ']'.repeat(3000)) as unknown;
  t.match(
    errorsOf(() => parseAgentConfig({ plugins: { mock: { config: { list: deepArray } } } })),
    [{ path: '/plugins/mock/config/list/0/0/…/0/0', message: /at most 64 levels/ }],
  );
});

t.test('files: deep, too large, not JSON, unreadable; each an error with the file named', async (t) => {
  const deep = file('deep.json', JSON.stringify({ supervision: nested(3000) }));
  await t.rejects(loadAgentConfig(deep), { code: 'INVALID_CONFIG', errors: [{ path: '/supervision/a/a/a/a/a/…/a/a' }] });
  const big = file('big.json', JSON.stringify({ name: 'big', driver: 'mock', env: { X: 'x'.repeat(inputLimits.maxFileBytes) } }));
  await t.rejects(loadTaskSpec(big), {
    message: `${big} is invalid: (root): is larger than 1 MiB, the most taskhost reads of a file like this one`,
    errors: [{ path: '' }],
  });
  await t.rejects(loadTaskSpec(file('broken.json', '{ "name": ')), { errors: [{ path: '', message: /^not valid JSON: / }] });
  await t.rejects(loadTaskSpec(path.join(work, 'missing.json')), {
    errors: [{ path: '', message: /^cannot read .*missing\.json: ENOENT/ }],
  });
  await t.rejects(loadTaskSpec(work), { errors: [{ path: '', message: /^cannot read .*: EISDIR/ }] }, 'a directory');
  t.same(await readJsonFile(file('ok.json', '{"a":[1,2]}')), { a: [1, 2] });
});

t.test('a pipe or device is read in bounded chunks, never trusted for its size', async (t) => {
  await t.rejects(readJsonFile('/dev/zero', 'zeros', 4096), { errors: [{ path: '', message: /is larger than 4 KiB/ }] });
});

t.test('NUL characters, in values and in keys, are refused at their path', async (t) => {
  t.same(
    errorsOf(() => parseTaskSpec({ name: 'nul', driver: 'raw_exec', config: { args: ['ok', 'a\0b'] }, env: { 'K\0': 'v', V: 'x\0' } })),
    [
      {
        path: '/config/args/1',
        message: 'the value contains a NUL character (\\u0000), which no file name, argument or environment variable can hold',
      },
      {
        path: '/env/K\0',
        message: 'the key contains a NUL character (\\u0000), which no file name, argument or environment variable can hold',
      },
      {
        path: '/env/V',
        message: 'the value contains a NUL character (\\u0000), which no file name, argument or environment variable can hold',
      },
    ],
  );
});

t.test('what is not JSON (functions, symbols, NaN, class instances) is refused; undefined values are left out', async (t) => {
  const issues = errorsOf(() =>
    guardInput(
      {
        f: () => 1,
        s: Symbol('x'),
        n: Number.NaN,
        i: -Infinity,
        d: new Date(0),
        m: new Map(),
        b: 1n,
        u: undefined,
        ok: [null, true, 1.5, Object.create(null)],
      },
      'doc',
    ),
  );
  t.same(
    issues.map((i) => `${i.path}: ${i.message}`),
    [
      '/f: must be JSON data (an object, array, string, number, boolean or null), not a function',
      '/s: must be JSON data (an object, array, string, number, boolean or null), not a symbol',
      '/n: must be a finite number, not NaN',
      '/i: must be a finite number, not -Infinity',
      '/d: must be a plain JSON object, not a Date',
      '/m: must be a plain JSON object, not a Map',
      '/b: must be JSON data (an object, array, string, number, boolean or null), not a bigint',
    ],
  );
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  t.match(
    errorsOf(() => parseAgentConfig(cycle)),
    [{ path: '/self/self/self/self/self/self/…/self/self', message: /at most 64 levels/ }],
    'a cycle is too deep',
  );
  const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 'x\0']));
  t.equal(errorsOf(() => guardInput(many, 'doc')).length, 20, 'a hostile document gets a bounded list of issues');
});
