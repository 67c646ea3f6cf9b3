// Every error code has one HTTP status; bad input is never a 5xx; the body has one shape.
import t from 'tap';
import { httpStatusByCode, httpStatusFor, toHttpError, unmappedErrorCodes } from '../../agent/http-errors.js';
import {
  errorCodes,
  InvalidConfigError,
  PluginCrashedError,
  TaskExistsError,
  TaskLockedError,
  TaskNotFoundError,
  TaskRunningError,
} from '../../shared/errors.js';

t.test('every error code has a status, and the table names no code that does not exist', async (t) => {
  t.same(unmappedErrorCodes(), []);
  t.same(
    Object.keys(httpStatusByCode).filter((code) => code !== 'TASKHOST_ERROR' && !errorCodes.has(code)),
    [],
  );
});

t.test('the statuses of the contract', async (t) => {
  t.equal(httpStatusFor('INVALID_CONFIG'), 400);
  t.equal(httpStatusFor('TASK_NOT_FOUND'), 404);
  t.equal(httpStatusFor('TASK_EXISTS'), 409);
  t.equal(httpStatusFor('TASK_RUNNING'), 409);
  t.equal(httpStatusFor('TASK_LOCKED'), 423);
  t.equal(httpStatusFor('UNAUTHORIZED'), 401);
  t.equal(httpStatusFor('ROUTE_NOT_FOUND'), 404);
  t.equal(httpStatusFor('SOMETHING_NEW'), 500);
  for (const code of ['INVALID_CONFIG', 'UNAUTHORIZED', 'ROUTE_NOT_FOUND', 'TASK_NOT_FOUND', 'TASK_LOCKED'])
    t.ok(httpStatusFor(code) < 500, code);
  for (const [code, status] of Object.entries(httpStatusByCode)) t.ok(status >= 400 && status < 600, code);
});

t.test('the body keeps code, message and details', async (t) => {
  const invalid = new InvalidConfigError('the task spec is invalid: /driver: is required', {
    details: { errors: [{ path: '/driver', message: 'is required' }] },
  });
  t.same(toHttpError(invalid), {
    status: 400,
    body: {
      error: {
        code: 'INVALID_CONFIG',
        message: 'the task spec is invalid: /driver: is required',
        details: { errors: [{ path: '/driver', message: 'is required' }] },
      },
    },
    headers: {},
  });
  t.same(toHttpError(new TaskNotFoundError('no task x')).body, { error: { code: 'TASK_NOT_FOUND', message: 'no task x' } });
  t.equal(toHttpError(new TaskExistsError('x')).status, 409);
  t.equal(toHttpError(new TaskRunningError('x')).status, 409);
  t.equal(toHttpError(new TaskLockedError('x')).status, 423);
  t.equal(toHttpError(new InvalidConfigError('too big'), 413).status, 413, 'a status may be given');
});

t.test('retryAfterMs becomes Retry-After in whole seconds', async (t) => {
  const err = new PluginCrashedError('crashed', { retryAfterMs: 1500 });
  t.same(toHttpError(err), {
    status: 503,
    body: { error: { code: 'PLUGIN_CRASHED', message: 'crashed' } },
    headers: { 'retry-after': '2' },
  });
  t.equal(toHttpError(new PluginCrashedError('x', { retryAfterMs: 10 })).headers['retry-after'], '1');
});

t.test('anything else is a 500 with the root code', async (t) => {
  t.same(toHttpError(new TypeError('x is undefined')), {
    status: 500,
    body: { error: { code: 'TASKHOST_ERROR', message: 'the agent failed: x is undefined' } },
    headers: {},
  });
  t.same(toHttpError('boom').body, { error: { code: 'TASKHOST_ERROR', message: 'the agent failed: boom' } });
});
