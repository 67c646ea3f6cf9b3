import t from 'tap';
import {
  CancelledError,
  errorCodes,
  fromErrorData,
  InvalidConfigError,
  PluginCrashedError,
  PluginError,
  TaskhostError,
  TaskNotFoundError,
  toErrorData,
} from '../../shared/errors.js';

t.test('a taskhost error survives the trip through structured clone with its class and code', async (t) => {
  const original = new TaskNotFoundError('no task abc', { details: { taskId: 'abc' }, retryAfterMs: 5 });
  const back = fromErrorData(structuredClone(toErrorData(original)));
  t.ok(back instanceof TaskNotFoundError);
  t.ok(back instanceof TaskhostError);
  t.notOk(back instanceof PluginCrashedError);
  t.equal(back.code, 'TASK_NOT_FOUND');
  t.equal(back.message, 'no task abc');
  t.same(back.details, { taskId: 'abc' });
  t.equal(back.retryAfterMs, 5);
  t.equal(back.recoverable, false);
  t.equal(back.stack, original.stack);
});

t.test('recoverable comes from the class unless the thrower says otherwise', async (t) => {
  t.equal(new PluginCrashedError('x').recoverable, true);
  t.equal(new CancelledError('x').recoverable, false);
  t.equal(new CancelledError('x', { recoverable: true }).recoverable, true);
});

t.test('plain errors become PLUGIN_ERROR and keep their own code as the cause', async (t) => {
  const err = Object.assign(new Error('disk full'), { code: 'ENOSPC' });
  const data = toErrorData(err);
  t.equal(data.code, 'PLUGIN_ERROR');
  t.equal(data.message, 'disk full');
  t.same(data.details, { cause: 'ENOSPC' });
  t.ok(fromErrorData(data) instanceof PluginError);
  t.match(toErrorData('a string').message, /non-error thrown: a string/);
});

t.test('an unknown code stays visible instead of becoming a generic error', async (t) => {
  const back = fromErrorData({ code: 'FROM_THE_FUTURE', message: 'm', recoverable: true });
  t.ok(back instanceof TaskhostError);
  t.equal(back.code, 'FROM_THE_FUTURE');
  t.equal(back.recoverable, true);
});

t.test('instanceof works by brand, not by realm', async (t) => {
  const foreign = Object.create(null) as object;
  t.notOk(foreign instanceof TaskhostError);
  t.notOk((null as unknown) instanceof TaskhostError);
  t.notOk(new Error('x') instanceof TaskhostError);
  t.equal(JSON.parse(JSON.stringify(new InvalidConfigError('bad'))).code, 'INVALID_CONFIG');
});

t.test('every code in the table is unique and maps back to its class', async (t) => {
  for (const [code, Ctor] of errorCodes) t.equal(Ctor.code, code);
  t.ok(errorCodes.size >= 15);
});

t.test('InvalidConfigError exposes its issues', async (t) => {
  const err = new InvalidConfigError('bad', { details: { errors: [{ path: '/a', message: 'is required' }] } });
  t.same(err.errors, [{ path: '/a', message: 'is required' }]);
  t.same(new InvalidConfigError('bad').errors, []);
});

t.test('a plain Error carrying a known code keeps it; other codes stay a cause', async (t) => {
  const back = fromErrorData(toErrorData(Object.assign(new Error('no task x'), { code: 'TASK_NOT_FOUND' })));
  t.ok(back instanceof TaskNotFoundError);
  t.equal(back.message, 'no task x');
  t.equal(toErrorData(Object.assign(new Error('x'), { code: 'ENOENT' })).code, 'PLUGIN_ERROR');
});
