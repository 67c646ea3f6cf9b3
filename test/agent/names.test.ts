// Namespace names (containerd's rule), task ids (the drivers' rule) and labels, as the API checks them.
import t from 'tap';
import { checkLabels, checkNamespace, checkTaskId, defaultNamespace, Namespace, namespaceFromHeader, TaskId } from '../../agent/names.js';
import { InvalidConfigError } from '../../shared/errors.js';
import { compileSchema } from '../../shared/schema.js';

t.test('namespaces: letters and digits with single separators, at most 76 characters', async (t) => {
  for (const ok of ['default', 'a', 'team-a.prod', 'A_1', 'x'.repeat(76)]) t.same(checkNamespace(ok), [], ok);
  for (const bad of ['', '-a', 'a-', 'a..b', 'a b', 'a/b', 'é', 'x'.repeat(77)])
    t.equal(checkNamespace(bad, '/ns').length, 1, JSON.stringify(bad));
  t.same(checkNamespace('a..b', '/ns'), [
    {
      path: '/ns',
      message: '"a..b" must be letters and digits, with single ".", "_" or "-" between them (such as "default" or "team-a.prod")',
    },
  ]);
  t.same(checkNamespace('x'.repeat(77)), [{ path: '', message: 'must be at most 76 characters, not 77' }]);
  t.same(checkNamespace(3), [{ path: '', message: 'must be a string' }]);
  t.same(checkNamespace(''), [{ path: '', message: 'must not be empty (the default is "default")' }]);
});

t.test('the schema agrees with the check', async (t) => {
  const validate = compileSchema<string>(Namespace());
  for (const value of ['default', 'a..b', 'x'.repeat(77), '-a']) t.equal(validate(value).ok, checkNamespace(value).length === 0, value);
  t.match(validate('a..b'), { ok: false, issues: [{ path: '', message: /must be letters and digits/ }] });
  const id = compileSchema<string>(TaskId());
  t.ok(id('alloc/web/0123abcd').ok);
  t.match(id('alloc/web'), { ok: false, issues: [{ message: 'must be a task id: <allocId>/<name>/<8 hex digits>' }] });
});

t.test("task ids are the drivers' <allocId>/<name>/<8 hex>", async (t) => {
  t.same(checkTaskId('3f2a/web/0123abcd'), []);
  t.same(checkTaskId('web', '/params/id'), [{ path: '/params/id', message: '"web" is not a task id: <allocId>/<name>/<8 hex digits>' }]);
  t.equal(checkTaskId('../x/0123abcd').length, 1);
  t.same(checkTaskId(`${'a'.repeat(200)}/${'b'.repeat(200)}/0123abcd`), [{ path: '', message: 'must be at most 266 characters, not 410' }]);
  t.same(checkTaskId(null), [{ path: '', message: 'must be a string' }]);
});

t.test('labels: non-empty keys, no NUL, key + value at most 4096 bytes', async (t) => {
  t.same(checkLabels({ team: 'a', 'x/y': '' }), []);
  t.same(checkLabels({ 'a~b/c': 'v'.repeat(4092) }), [
    { path: '/labels/a~0b~1c', message: 'label key and value hold 4097 bytes; at most 4096 (UTF-8) are allowed together' },
  ]);
  t.same(checkLabels({ k: 'a\0' }, '/spec/labels'), [
    { path: '/spec/labels/k', message: 'a label must not contain a NUL character (\\u0000)' },
  ]);
});

t.test('the Taskhost-Namespace header', async (t) => {
  t.equal(namespaceFromHeader(undefined), defaultNamespace);
  t.equal(namespaceFromHeader('team-a'), 'team-a');
  t.throws(() => namespaceFromHeader('a b'), InvalidConfigError);
  try {
    namespaceFromHeader(['a', 'b']);
    t.fail('accepted two');
  } catch (err) {
    t.same((err as InvalidConfigError).errors, [{ path: '/headers/taskhost-namespace', message: 'must be given once' }]);
    t.equal((err as Error).message, 'the Taskhost-Namespace header is invalid: must be given once');
  }
});
