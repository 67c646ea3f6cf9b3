// What JSON changes in a value, named by path: what a task handle must not hold, since the host
// stores handles as JSON and gives them back to recoverTask() after a restart.
import t from 'tap';
import { jsonLoss } from '../../shared/json-loss.js';

t.test('plain data survives JSON: no loss', async (t) => {
  t.equal(jsonLoss({ a: [1, 'x', true, null, { b: -0 }], gone: undefined, bare: Object.create(null) as object }), undefined);
  t.equal(jsonLoss('x'), undefined);
  const shared = { n: 1 };
  t.equal(jsonLoss({ a: shared, b: shared }), undefined, 'a shared object is not a cycle');
});

t.test('each thing JSON changes is named at its path, with what it becomes', async (t) => {
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  class Point {
    x = 1;
  }
  const cases: [unknown, { path: string; what: string; becomes: string }][] = [
    [{ s: { ratio: NaN } }, { path: '/s/ratio', what: 'NaN', becomes: 'null' }],
    [{ n: [Infinity] }, { path: '/n/0', what: 'Infinity', becomes: 'null' }],
    [{ pids: [1, undefined] }, { path: '/pids/1', what: 'undefined', becomes: 'null' }],
    [{ big: 1n }, { path: '/big', what: 'a BigInt', becomes: 'an error (JSON.stringify throws)' }],
    [{ f: () => 1 }, { path: '/f', what: 'a function', becomes: 'nothing (the key is dropped)' }],
    [{ l: [Symbol('s')] }, { path: '/l/0', what: 'a symbol', becomes: 'null' }],
    [cycle, { path: '/self', what: 'a cycle', becomes: 'an error (JSON.stringify throws)' }],
    [{ m: new Map([[1, 2]]) }, { path: '/m', what: 'a Map', becomes: '{}' }],
    [{ d: new Date(0) }, { path: '/d', what: 'a Date', becomes: 'a string' }],
    [{ e: new Error('x') }, { path: '/e', what: 'an Error', becomes: '{}' }],
    [{ p: new Point() }, { path: '/p', what: 'a Point', becomes: '{"x":1}' }],
    [{ 'a/b~c': new Set([1]) }, { path: '/a~1b~0c', what: 'a Set', becomes: '{}' }],
    [{ long: new Uint8Array(40) }, { path: '/long', what: 'a Uint8Array', becomes: '{"0":0,"1":0,"2":0,"3":0,"4":0,"5":0,...' }],
  ];
  for (const [value, loss] of cases) t.same(jsonLoss(value), loss, loss.what);
  const anonymous = new (class {})();
  Object.defineProperty(anonymous.constructor, 'name', { value: '' });
  t.match(jsonLoss({ a: anonymous }), { what: 'an object of an unnamed class' });
  const throws = new (class Odd {
    toJSON() {
      throw new Error('no');
    }
  })();
  t.match(jsonLoss({ o: throws }), { path: '/o', becomes: 'an error (JSON.stringify throws)' });
});
