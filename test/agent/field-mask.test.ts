// PATCH of a task's labels with containerd's field-mask semantics: replace all, set or delete one
// key, an empty value deletes, and every other path is refused by name.
import t from 'tap';
import { applyLabelsUpdate } from '../../agent/field-mask.js';
import { InvalidConfigError } from '../../shared/errors.js';

const current = Object.freeze({ team: 'a', tier: 'web', 'app.kubernetes.io/name': 'shop' });
const problem = (update: Parameters<typeof applyLabelsUpdate>[1]) => {
  try {
    applyLabelsUpdate(current, update);
  } catch (err) {
    if (err instanceof InvalidConfigError) return { message: err.message, errors: err.errors };
    throw err;
  }
  throw new Error('applied');
};

t.test('no mask, an empty one, or "labels" replaces every label', async (t) => {
  t.same(applyLabelsUpdate(current, { labels: { owner: 'me' } }), { owner: 'me' });
  t.same(applyLabelsUpdate(current, { labels: { owner: 'me' }, updateMask: [] }), { owner: 'me' });
  t.same(
    applyLabelsUpdate(current, { labels: { owner: 'me', team: '' }, updateMask: ['labels'] }),
    { owner: 'me' },
    'empty values are dropped',
  );
  t.same(applyLabelsUpdate(current, { labels: {} }), {});
});

t.test('labels.<key> sets or deletes one label and keeps the rest', async (t) => {
  t.same(
    applyLabelsUpdate(current, { labels: { team: 'b', owner: 'me' }, updateMask: ['labels.team'] }),
    {
      team: 'b',
      tier: 'web',
      'app.kubernetes.io/name': 'shop',
    },
    'labels outside the mask are ignored',
  );
  t.same(applyLabelsUpdate(current, { labels: { tier: '' }, updateMask: ['labels.tier'] }), {
    team: 'a',
    'app.kubernetes.io/name': 'shop',
  });
  t.same(
    applyLabelsUpdate(current, { labels: {}, updateMask: ['labels.tier'] }),
    { team: 'a', 'app.kubernetes.io/name': 'shop' },
    'a masked key absent from the body is deleted',
  );
  t.same(
    applyLabelsUpdate(current, { labels: { 'app.kubernetes.io/name': 'cart' }, updateMask: ['labels.app.kubernetes.io/name'] }),
    {
      team: 'a',
      tier: 'web',
      'app.kubernetes.io/name': 'cart',
    },
    'the key is the rest of the path, dots and slashes included',
  );
  t.same(applyLabelsUpdate(current, { labels: { new: 'x' }, updateMask: ['labels.new', 'labels.team'] }), {
    tier: 'web',
    'app.kubernetes.io/name': 'shop',
    new: 'x',
  });
});

t.test('the current labels are never changed', async (t) => {
  const mine = { a: '1' };
  applyLabelsUpdate(mine, { labels: { a: '' }, updateMask: ['labels.a'] });
  t.same(mine, { a: '1' });
});

t.test('any path but labels and labels.<key> is refused by name', async (t) => {
  const { message, errors } = problem({ labels: {}, updateMask: ['labels.team', 'spec', 'lables.x', 'labels.', 'image', 'state.code'] });
  const allowed = 'only labels are mutable: use "labels" or "labels.<key>"';
  t.same(errors, [
    { path: '/updateMask/1', message: `"spec" cannot be updated: ${allowed}` },
    { path: '/updateMask/2', message: `unknown field path "lables.x" (did you mean "labels.x"?); ${allowed}` },
    { path: '/updateMask/3', message: `"labels." names no label key; ${allowed}` },
    { path: '/updateMask/4', message: `unknown field path "image"; ${allowed}` },
    { path: '/updateMask/5', message: `"state.code" cannot be updated: ${allowed}` },
  ]);
  t.match(message, /^the update is invalid: \/updateMask\/1: "spec" cannot be updated/);
});

t.test('a label whose key and value hold more than 4096 bytes is refused', async (t) => {
  t.ok(applyLabelsUpdate({}, { labels: { k: 'v'.repeat(4095) } }));
  t.same(problem({ labels: { k: 'v'.repeat(4096) } }).errors, [
    { path: '/labels/k', message: 'label key and value hold 4097 bytes; at most 4096 (UTF-8) are allowed together' },
  ]);
  t.same(
    problem({ labels: { 'a/b': 'é'.repeat(2048) }, updateMask: ['labels.a/b'] }).errors,
    [{ path: '/labels/a~1b', message: 'label key and value hold 4099 bytes; at most 4096 (UTF-8) are allowed together' }],
    'bytes, not characters; the key is one JSON Pointer segment',
  );
  t.same(problem({ labels: { '': 'x' } }).errors, [{ path: '/labels/', message: 'a label key must not be empty' }]);
});
