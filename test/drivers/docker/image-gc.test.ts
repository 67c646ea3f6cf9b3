// The Docker image service's garbage collection against a fake engine: removal after the delay,
// reacquiring in time, expected refusals, cancellation and close().
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import { DockerImageService } from '../../../drivers/docker/docker-image-service.js';
import { engineError, fakeEngine, service, until } from '../../helpers/image-service-fakes.js';

// GC timers are unref'd (a plugin must not be kept alive by them); this keeps the test process
// alive while a test waits on nothing else.
const keepAlive = setInterval(() => undefined, 1000);
t.teardown(() => clearInterval(keepAlive));

// Garbage collection (fake engine)

t.test('GC: an image is removed a delay after its last user let go', async (t) => {
  const engine = fakeEngine();
  const logs: string[] = [];
  const s = service(t, engine.docker, { gc: { delayMs: 50 }, onLog: (level, m) => logs.push(`${level} ${m}`) });
  s.acquire('sha256:a');
  s.acquire('sha256:a');
  t.equal(s.imageUsers('sha256:a'), 2);
  s.release('sha256:a');
  await delay(80);
  t.same(engine.removed, [], 'still one user');
  s.release('sha256:a');
  t.equal(s.imageUsers('sha256:a'), 0);
  await delay(30);
  t.same(engine.removed, [], 'not before the delay');
  await delay(50);
  t.same(engine.removed, ['sha256:a']);
  t.ok(logs.includes('info removed image sha256:a: unused for 50 ms'));
});

t.test('GC: acquiring again within the delay keeps the image', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker, { gc: { delayMs: 200 } });
  s.acquire('sha256:a');
  s.release('sha256:a');
  await delay(20);
  s.acquire('sha256:a');
  await delay(250);
  t.same(engine.removed, []);
  t.equal(s.imageUsers('sha256:a'), 1);
});

t.test('GC: 404 and 409 are expected answers, other failures are logged', async (t) => {
  const engine = fakeEngine();
  const logs: string[] = [];
  const s = service(t, engine.docker, { gc: { delayMs: 1 }, onLog: (level, m) => logs.push(`${level} ${m}`) });
  const answers: Record<string, Error> = {
    'sha256:gone': engineError(404, 'No such image: sha256:gone'),
    'sha256:used': engineError(409, 'conflict: unable to delete 1234 (must be forced) - image is referenced in multiple repositories'),
    'sha256:odd': engineError(500, 'driver failed'),
  };
  engine.onRemove(async (id) => {
    throw answers[id];
  });
  for (const id of Object.keys(answers)) {
    s.acquire(id);
    s.release(id);
  }
  await until(() => logs.length === 3);
  t.ok(logs.includes('debug image sha256:gone was already gone'));
  t.ok(
    logs.includes(
      'info kept image sha256:used: conflict: unable to delete 1234 (must be forced) - image is referenced in multiple repositories',
    ),
  );
  t.ok(logs.includes('warn could not remove image sha256:odd: driver failed'));
});

t.test('GC: disabled, unknown releases, and close() cancelling what is pending', async (t) => {
  const engine = fakeEngine();
  const off = service(t, engine.docker, { gc: { enabled: false, delayMs: 1 } });
  off.acquire('sha256:a');
  off.release('sha256:a');
  off.release('sha256:never-acquired');
  await delay(30);
  t.same(engine.removed, []);

  const logs: string[] = [];
  const on = new DockerImageService(engine.docker, { gc: { delayMs: 30 }, onLog: (level, m) => logs.push(`${level} ${m}`) });
  on.release('sha256:never-acquired');
  t.ok(logs.includes('debug image sha256:never-acquired was released but not acquired: ignored'));
  on.acquire('sha256:b');
  on.release('sha256:b');
  on.close();
  on.acquire('sha256:c');
  on.release('sha256:c'); // after close nothing is scheduled
  await delay(60);
  t.same(engine.removed, []);
});

t.test('GC: a removal in flight is called off when the image is acquired again, or on close()', async (t) => {
  const engine = fakeEngine();
  const logs: string[] = [];
  const s = new DockerImageService(engine.docker, { gc: { delayMs: 1 }, onLog: (level, m) => logs.push(`${level} ${m}`) });
  const signals: AbortSignal[] = [];
  Object.assign(engine.docker, {
    getImage: () => ({
      remove: (options: { abortSignal: AbortSignal }) =>
        new Promise((_resolve, reject) => {
          signals.push(options.abortSignal);
          options.abortSignal.addEventListener('abort', () => reject(new Error('The operation was aborted')));
        }),
    }),
  });
  const calledOff = () => logs.filter((l) => l.includes('called off while in flight')).length;
  s.acquire('sha256:a');
  s.release('sha256:a');
  await until(() => signals.length === 1);
  s.acquire('sha256:a');
  t.equal(signals[0]!.aborted, true, 'acquiring again aborts the remove request');
  await until(() => calledOff() === 1);
  s.acquire('sha256:b');
  s.release('sha256:b');
  await until(() => signals.length === 2);
  s.close();
  t.equal(signals[1]!.aborted, true, 'close() aborts it too');
  await until(() => calledOff() === 2);
});

t.test('GC: a remove request that hangs is given up after the request timeout', async (t) => {
  const engine = fakeEngine();
  const logs: string[] = [];
  const s = service(t, engine.docker, { gc: { delayMs: 1 }, requestTimeoutMs: 30, onLog: (level, m) => logs.push(`${level} ${m}`) });
  Object.assign(engine.docker, {
    getImage: () => ({
      remove: (options: { abortSignal: AbortSignal }) =>
        new Promise((_resolve, reject) =>
          options.abortSignal.addEventListener('abort', () => reject(new Error('The operation was aborted'))),
        ),
    }),
  });
  s.acquire('sha256:a');
  s.release('sha256:a');
  await until(() => logs.includes('warn could not remove image sha256:a: The operation was aborted'));
  t.pass('given up, and said so');
});
