// Durations longer than a Node timer holds (2^31-1 ms) are refused with the limit wherever a
// schema has one, and parseDuration refuses them too; pause() waits correctly past it anyway.
import { mock } from 'node:test';
import { Type } from '@sinclair/typebox';
import t from 'tap';
import { parseTaskSpec } from '../../drivers/prepare-task.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { Duration, maxDurationMs, parseDuration } from '../../shared/duration.js';
import { pause } from '../../shared/pause.js';
import { compileSchema } from '../../shared/schema.js';
import { DockerConfig } from '../../drivers/docker/docker-config.js';

const tooLong = 'must be at most 596h31m23.647s (about 24.8 days): a longer wait does not fit in a timer';

t.test('a duration over the limit is refused with the limit, in the task spec and the agent config', async (t) => {
  t.throws(() => parseTaskSpec({ name: 'x', driver: 'mock', killTimeout: '600h' }), {
    errors: [{ path: '/killTimeout', message: tooLong }],
  });
  t.throws(() => parseAgentConfig({ supervision: { livenessTimeout: '9999h' } }), {
    errors: [{ path: '/supervision/livenessTimeout', message: tooLong }],
  });
  t.throws(() => parseAgentConfig({ plugins: { x: { supervision: { breakerCooldown: '36000m' } } } }), {
    errors: [{ path: '/plugins/x/supervision/breakerCooldown', message: tooLong }],
  });
  const docker = compileSchema(DockerConfig)({ pullTimeout: '1000h', gc: { imageDelay: '2147483648ms' } });
  t.same(!docker.ok && docker.issues, [
    { path: '/gc/imageDelay', message: tooLong },
    { path: '/pullTimeout', message: tooLong },
  ]);
  t.ok(compileSchema(Type.Object({ d: Duration() }))({ d: '596h31m23.647s' }).ok, 'the limit itself is fine');
});

t.test('a malformed duration says how to write one, once', async (t) => {
  const result = compileSchema(Type.Object({ d: Duration() }))({ d: '5 minutes' });
  t.same(!result.ok && result.issues, [
    { path: '/d', message: 'must be a duration: a number and a unit (ms, s, m, h), e.g. "5s" or "1m30s"' },
  ]);
});

t.test('parseDuration refuses what a timer cannot hold with a RangeError', async (t) => {
  t.equal(parseDuration('596h31m23.647s'), maxDurationMs);
  t.throws(() => parseDuration('600h'), new RangeError('"600h" is too long: a duration ' + tooLong));
  t.throws(() => parseDuration(`${'9'.repeat(400)}h`), RangeError, 'a number too large to be finite');
});

t.test('pause() past 2^31-1 ms is not cut short (a bare timer would fire after 1 ms)', async (t) => {
  const stop = new AbortController();
  let done = false;
  const waiting = pause(maxDurationMs + 1000, stop.signal).then(() => (done = true));
  await new Promise((r) => setTimeout(r, 100));
  t.equal(done, false, 'still waiting after 100ms');
  stop.abort();
  await waiting;
  t.equal(done, true, 'an abort ends it');
});

t.test('pause() re-arms its timer and resolves when the whole wait has passed', async (t) => {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.teardown(() => mock.timers.reset());
  let done = false;
  const waiting = pause(2 * maxDurationMs + 5, new AbortController().signal).then(() => (done = true));
  mock.timers.tick(maxDurationMs);
  mock.timers.tick(maxDurationMs);
  await Promise.resolve();
  t.equal(done, false, '5 ms short');
  mock.timers.tick(5);
  await waiting;
  t.equal(done, true);
});
