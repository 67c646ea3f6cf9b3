// containerd's filter syntax over task records: selectors, quoting, AND/OR, and the typed error
// (filter index, character offset, did-you-mean) for every malformed filter, fuzzed.
import t from 'tap';
import { filterLimits, parseFilters, type FilterRecord } from '../../agent/filter.js';
import { InvalidConfigError } from '../../shared/errors.js';

const web: FilterRecord = {
  id: 'a1/web/0123abcd',
  name: 'web',
  driver: 'docker',
  state: 'running',
  labels: { team: 'a', 'app.kubernetes.io/name': 'web', 'a b': 'x, y', empty: '' },
};
const db: FilterRecord = { id: 'a1/db/89abcdef', name: 'db', driver: 'raw_exec', state: 'exited', labels: { team: 'b' } };
const bare: FilterRecord = { id: 'a2/job/00000000', name: 'job', driver: 'mock', state: 'pending' };
const all = [web, db, bare];
const names = (filters: string[]) => all.filter(parseFilters(filters)).map((r) => r.name);

const problem = (filters: string[]) => {
  try {
    parseFilters(filters);
  } catch (err) {
    if (err instanceof InvalidConfigError) return { message: err.message, errors: err.errors };
    throw err;
  }
  throw new Error(`${JSON.stringify(filters)} parsed`);
};

t.test('no filters, or an empty one, match every record', async (t) => {
  t.same(names([]), ['web', 'db', 'job']);
  t.same(names(['']), ['web', 'db', 'job']);
  t.same(names(['   ']), ['web', 'db', 'job']);
});

t.test('==, != and ~= compare a field', async (t) => {
  t.same(names(['name==web']), ['web']);
  t.same(names(['state!=exited']), ['web', 'job']);
  t.same(names(['name~=^(web|db)$']), ['web', 'db']);
  t.same(names(['driver~=_']), ['db']);
  t.same(names(['id==a1/db/89abcdef']), ['db']);
  t.same(names(['labels.team==a']), ['web']);
  t.same(names(['labels.team!=a']), ['db', 'job'], '!= matches a record without the label');
  t.same(names(['labels.team~=.']), ['web', 'db'], '~= needs the label');
});

t.test('a bare field path tests presence', async (t) => {
  t.same(names(['labels.team']), ['web', 'db']);
  t.same(names(['labels.empty']), ['web'], 'a label with an empty value is present');
  t.same(names(['name']), ['web', 'db', 'job']);
  t.same(names(['labels.nothing']), []);
});

t.test('a comma is AND, several filters are OR', async (t) => {
  t.same(names(['labels.team,state==running']), ['web']);
  t.same(names(['name==web', 'name==db']), ['web', 'db']);
  t.same(names(['name==web,state==exited', 'driver==mock']), ['job']);
  t.same(names([' name == web , labels.team == a ']), ['web'], 'spaces between tokens are ignored');
});

t.test('label keys with dots and slashes, and quoted keys and values', async (t) => {
  t.same(names(['labels.app.kubernetes.io/name==web']), ['web'], 'the rest of the path is the key');
  t.same(names(['labels."app.kubernetes.io/name"==web']), ['web']);
  t.same(names(['labels."a b"=="x, y"']), ['web']);
  t.same(names(['labels.empty==""']), ['web'], 'an empty value is written ""');
  t.same(names(['"name"==web']), ['web'], 'a field may be quoted');
  t.same(names(['name=="w\\"eb"']), [], 'escaped quotes');
  t.same(all.filter(parseFilters(['labels."q\\"k"=="a\\\\b\\n"'])).length, 0);
  const odd = { ...bare, labels: { 'q"k': 'a\\b\n\t\r' } };
  t.ok(parseFilters(['labels."q\\"k"=="a\\\\b\\n\\t\\r"'])(odd));
});

t.test('malformed filters name the filter index and the character offset', async (t) => {
  t.same(problem(['name==web', 'labels.team=a']), {
    message: 'filter[1] at 11: expected an operator (==, !=, ~=) after "labels.team", found "="',
    errors: [{ path: '/query/filter/1', message: 'at 11: expected an operator (==, !=, ~=) after "labels.team", found "="' }],
  });
  const cases: [string, string][] = [
    ['nme==web', 'at 0: unknown field "nme" (did you mean "name"?); the fields are id, name, driver, state, labels.<key>'],
    ['label.team==a', 'at 0: unknown field "label" (did you mean "labels.team"?); the fields are id, name, driver, state, labels.<key>'],
    ['zzzzzz==a', 'at 0: unknown field "zzzzzz"; the fields are id, name, driver, state, labels.<key>'],
    ['name~=[', 'at 6: invalid regular expression "[": Unterminated character class'],
    ['labels."a b==x', 'at 7: unterminated quoted string: close it with "'],
    ['name=="abc\\', 'at 6: unterminated quoted string: close it with "'],
    ['name=="a\\q"', 'at 8: unknown escape "\\q" in a quoted string: write \\\\ for a backslash, \\" for a quote'],
    ['state==', 'at 7: expected a value after "==" (write "" for an empty one)'],
    ['state==,name', 'at 7: expected a value after "==" (write "" for an empty one)'],
    ['name==a b', 'at 8: expected "," or the end of the filter, found "b"; quote a value that holds spaces or commas'],
    ['name==a,', 'at 8: expected a field after ","'],
    [',name', 'at 0: expected a field name (id, name, driver, state, labels.<key>), found ","'],
    ['labels.', 'at 7: expected a field name after "." (id, name, driver, state, labels.<key>), found the end'],
    ['labels', 'at 6: expected a label key after "labels" (such as labels.team==a)'],
    ['labels==a', 'at 6: expected a label key after "labels" (such as labels.team==a)'],
    ['name.first==a', 'at 4: field "name" has no sub-fields; only labels.<key> has'],
    [
      'labels.a@b==c',
      'at 8: expected an operator (==, !=, ~=) after "labels.a", found "@"; quote a label key that holds other characters: labels."a@b"',
    ],
    ['name=', 'at 4: expected an operator (==, !=, ~=) after "name", found "="'],
    ['name"x"', 'at 4: expected an operator (==, !=, ~=) after "name", found "\\""'],
  ];
  for (const [filter, message] of cases) t.same(problem([filter]).errors, [{ path: '/query/filter/0', message }], filter);
});

t.test('every malformed filter is reported, at the path the caller chose', async (t) => {
  const { message, errors } = (() => {
    try {
      parseFilters(['nme==a', 'name==a', 'state=='], { path: '/filters' });
    } catch (err) {
      return { message: (err as Error).message, errors: (err as InvalidConfigError).errors };
    }
    throw new Error('parsed');
  })();
  t.match(message, /^filter\[0\] at 0: unknown field "nme".*; filter\[2\] at 7: expected a value/);
  t.same(
    errors.map((e) => e.path),
    ['/filters/0', '/filters/2'],
  );
});

t.test('limits on the number and length of filters', async (t) => {
  t.match(problem(Array.from({ length: filterLimits.maxFilters + 1 }, () => 'name')).message, /65 filters given; at most 64/);
  t.match(
    problem([`name==${'x'.repeat(filterLimits.maxFilterLength)}`]).errors[0]!.message,
    /at 4096: is 4102 characters long; at most 4096/,
  );
  t.ok(parseFilters(Array.from({ length: filterLimits.maxFilters }, () => 'name')));
});

t.test('a value that is not a string is a typed error too', async (t) => {
  t.match(problem([42 as unknown as string]).errors, [{ path: '/query/filter/0', message: 'at 0: must be a string' }]);
});

t.test('fuzz: random filters parse or fail with the typed error, never anything else', async (t) => {
  const alphabet = [
    'a',
    'b',
    'n',
    'name',
    'labels',
    'state',
    'id',
    '.',
    ',',
    '=',
    '==',
    '!=',
    '~=',
    '!',
    '~',
    '"',
    '\\',
    ' ',
    '[',
    '(',
    '*',
    '/',
    '@',
    'é',
    '\u0000',
    '\n',
  ];
  let seed = 42;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  let parsed = 0;
  const failures: string[] = [];
  for (let i = 0; i < 5000; i++) {
    const text = Array.from({ length: 1 + random(12) }, () => alphabet[random(alphabet.length)]).join('');
    try {
      const predicate = parseFilters([text]);
      for (const record of all) if (typeof predicate(record) !== 'boolean') failures.push(`${JSON.stringify(text)}: not a boolean`);
      parsed++;
    } catch (err) {
      if (!(err instanceof InvalidConfigError) || !/^filter\[0\] at \d+: /.test(err.message) || err.errors.length !== 1) {
        failures.push(`${JSON.stringify(text)} threw ${String(err)}`);
      } else if (Number(/at (\d+)/.exec(err.message)![1]) > text.length) failures.push(`${JSON.stringify(text)}: offset past the end`);
    }
  }
  t.same(failures, []);
  t.ok(parsed > 50, `some random filters parse (${parsed})`);
});

t.test('fuzz: any label key and value, quoted, round-trips', async (t) => {
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const chars = 'ab.,/"\\ =!~\n\tz-_é';
  const failures: string[] = [];
  const quote = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
  for (let i = 0; i < 500; i++) {
    const word = () => Array.from({ length: 1 + random(8) }, () => chars[random(chars.length)]).join('');
    const key = word();
    const value = word();
    const record = { ...bare, labels: { [key]: value } };
    if (!parseFilters([`labels.${quote(key)}==${quote(value)}`])(record)) failures.push(`${key}==${value}`);
    if (parseFilters([`labels.${quote(key)}!=${quote(value)}`])(record)) failures.push(`${key}!=${value}`);
  }
  t.same(failures, []);
});
