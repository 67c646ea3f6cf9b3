// The Docker image service's pull side against a fake engine (a real dockerode client whose
// pull/getImage are replaced; its real modem.followProgress reads the fake streams): progress,
// policies, single flight, cancellation, timeouts, errors, credentials sent, shutdown.
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import { daemonMessage } from '../../../drivers/docker/daemon-message.js';
import { DockerImageService } from '../../../drivers/docker/docker-image-service.js';
import type { PullProgress } from '../../../drivers/docker/image-manager.js';
import { PullFlight } from '../../../drivers/docker/pull-flight.js';
import { PullProgressTracker } from '../../../drivers/docker/pull-progress-tracker.js';
import { CancelledError, InvalidConfigError, PluginError, PluginShutdownError, TimeoutError } from '../../../shared/errors.js';
import { parseImageRef } from '../../../shared/image-ref.js';
import { AUTH_REGISTRY, PRIVATE_IMAGE, REGISTRY_PASSWORD, REGISTRY_USER } from '../../helpers/docker.js';
import { REF, engineError, fakeEngine, service, until } from '../../helpers/image-service-fakes.js';

// GC timers are unref'd (a plugin must not be kept alive by them); this keeps the test process
// alive while a test waits on nothing else.
const keepAlive = setInterval(() => undefined, 1000);
t.teardown(() => clearInterval(keepAlive));

// Progress

t.test('progress: layers and bytes from the engine events, a readable message', async (t) => {
  const tracker = new PullProgressTracker('127.0.0.1:5000/team/busybox:1.35', '127.0.0.1:5000/team/busybox:1.35');
  t.match(tracker.snapshot(), { layersTotal: 0, message: 'Pulling 127.0.0.1:5000/team/busybox:1.35: resolving' });
  tracker.update({ status: 'Pulling from team/busybox', id: '1.35' });
  tracker.update({ status: 'Already exists', id: 'a' });
  tracker.update({ status: 'Pulling fs layer', id: 'b' });
  tracker.update({ status: 'Pulling fs layer', id: 'c' });
  tracker.update({ status: 'Waiting', id: 'c' });
  tracker.update({ status: 'Downloading', id: 'b', progressDetail: { current: 1024 * 1024, total: 4 * 1024 * 1024 } });
  tracker.update({ status: 'Downloading', id: 'c', progressDetail: { current: 0, total: 2 * 1024 * 1024 } });
  t.same(tracker.snapshot(), {
    image: '127.0.0.1:5000/team/busybox:1.35',
    message: 'Pulling 127.0.0.1:5000/team/busybox:1.35: 1 of 3 layers, 1.0 of 6.0 MiB',
    currentBytes: 1024 * 1024,
    totalBytes: 6 * 1024 * 1024,
    layersDone: 1,
    layersTotal: 3,
  });
  tracker.update({ status: 'Verifying Checksum', id: 'b' });
  tracker.update({ status: 'Extracting', id: 'b', progressDetail: { current: 10, total: 4 * 1024 * 1024 } });
  tracker.update({ status: 'Pull complete', id: 'b' });
  t.match(tracker.snapshot(), { layersDone: 2, currentBytes: 4 * 1024 * 1024 });
  tracker.update({ status: 'Digest: sha256:' + 'e'.repeat(64) });
  tracker.update({ status: 'Status: Downloaded newer image for 127.0.0.1:5000/team/busybox:1.35' });
  t.equal(tracker.reportedDigest, 'sha256:' + 'e'.repeat(64));
  t.same(tracker.snapshot(true), {
    image: '127.0.0.1:5000/team/busybox:1.35',
    message: 'Pulled 127.0.0.1:5000/team/busybox:1.35: 3 of 3 layers, 6.0 of 6.0 MiB',
    currentBytes: 6 * 1024 * 1024,
    totalBytes: 6 * 1024 * 1024,
    layersDone: 3,
    layersTotal: 3,
  });
  const nothing = new PullProgressTracker('x', 'x');
  t.equal(nothing.snapshot(true).message, 'Pulled x: nothing to download');
});

// ------------------------------------------------------------------------------------------
// Policies

t.test('policy "missing": inspect first, pull only what is not there', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  engine.offer(REF, 'sha256:present', true);
  t.same(await s.ensure('busybox:1.35', { policy: 'missing' }), {
    reference: REF,
    id: 'sha256:present',
    env: ['PATH=/bin', `FROM=${REF}`],
    pulled: false,
  });
  t.equal(engine.pulls.length, 0);

  engine.offer('docker.io/library/busybox:1.36', 'sha256:new');
  const ensured = s.ensure('busybox:1.36', { policy: 'missing' });
  (await engine.nextPull()).complete();
  t.same(await ensured, {
    reference: 'docker.io/library/busybox:1.36',
    id: 'sha256:new',
    env: ['PATH=/bin', 'FROM=docker.io/library/busybox:1.36'],
    pulled: true,
  });
});

t.test('policy "never": use what is there, or fail naming the image', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  engine.offer(REF, 'sha256:present', true);
  t.match(await s.ensure('busybox:1.35', { policy: 'never' }), { id: 'sha256:present', pulled: false });
  const err = await s.ensure('busybox:1.36', { policy: 'never' }).catch((e: unknown) => e);
  t.ok(err instanceof PluginError);
  t.match(err, {
    message: /image busybox:1\.36 is not present and the pull policy is "never"/,
    recoverable: false,
    details: { reason: 'not-present' },
  });
  // "never" is never overridden, not even by ":latest".
  await t.rejects(s.ensure('busybox', { policy: 'never' }), /image busybox:latest is not present/);
  t.equal(engine.pulls.length, 0);
});

t.test('policy "always" pulls, and ":latest" (written or implied) turns "missing" into "always"', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  engine.offer(REF, 'sha256:present', true);
  engine.offer('docker.io/library/busybox:latest', 'sha256:latest', true);
  for (const [image, policy] of [
    ['busybox:1.35', 'always'],
    ['busybox', 'missing'],
    ['busybox:latest', 'missing'],
  ] as const) {
    const ensured = s.ensure(image, { policy });
    (await engine.nextPull()).complete();
    t.match(await ensured, { pulled: true }, `${image} ${policy}`);
  }
  t.same(
    engine.pulls.map((p) => p.ref),
    [REF, 'docker.io/library/busybox:latest', 'docker.io/library/busybox:latest'],
  );
  // A digest is immutable: present means done.
  const pinned = `docker.io/library/busybox@sha256:${'f'.repeat(64)}`;
  engine.offer(pinned, 'sha256:pinned', true);
  t.match(await s.ensure(`busybox:latest@sha256:${'f'.repeat(64)}`, { policy: 'missing' }), { reference: pinned, pulled: false });
});

t.test('bad input is refused before anything is asked of the engine', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  await t.rejects(s.ensure('Busybox', { policy: 'missing' }), InvalidConfigError);
  await t.rejects(
    s.ensure('busybox:1.35', { policy: 'sometimes' as 'always' }),
    /pull policy "sometimes" is not one of always, missing, never/,
  );
  const aborted = AbortSignal.abort();
  await t.rejects(s.ensure('busybox:1.35', { policy: 'missing', signal: aborted }), CancelledError);
  t.equal(engine.pulls.length, 0);
});

t.test('options are checked up front', async (t) => {
  const docker = fakeEngine().docker;
  t.throws(
    () => new DockerImageService(docker, { pullTimeoutMs: -1 }),
    /options\.pullTimeoutMs must be a non-negative integer \(milliseconds\), not -1/,
  );
  t.throws(() => new DockerImageService(docker, { pullActivityTimeoutMs: 1.5 }), /options\.pullActivityTimeoutMs/);
  t.throws(
    () => new DockerImageService(docker, { gc: { delayMs: '3m' as unknown as number } }),
    /options\.gc\.delayMs must be a non-negative integer \(milliseconds\), not "3m"/,
  );
  t.throws(
    () => new DockerImageService(docker, { gc: { enabled: 'yes' as unknown as boolean } }),
    /options\.gc\.enabled must be a boolean/,
  );
  t.throws(
    () => new DockerImageService(docker, { auth: { helper: '../evil' } }),
    /auth\.helper: "\.\.\/evil" is not a credential helper name/,
  );
  new DockerImageService(docker).close();
});

// ------------------------------------------------------------------------------------------
// Single flight

t.test('ten concurrent ensure() of one image share one pull, and each caller sees progress', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  engine.offer(REF, 'sha256:one');
  const seen = Array.from({ length: 10 }, () => [] as PullProgress[]);
  const ensured = seen.map((progress, i) =>
    s.ensure(i % 2 ? 'busybox:1.35' : 'docker.io/library/busybox:1.35', {
      policy: i % 3 ? 'missing' : 'always',
      onProgress: (p) => progress.push(p),
    }),
  );
  const pull = await engine.nextPull();
  await until(() => s.pullWaiters('busybox:1.35') === 10); // the "missing" callers inspect first
  pull.complete();
  const results = await Promise.all(ensured);
  t.equal(engine.pulls.length, 1, 'exactly one pull');
  t.ok(results.every((r) => r.id === 'sha256:one' && r.pulled));
  for (const progress of seen) {
    t.ok(progress.length >= 1);
    t.match(progress.at(-1), { image: REF, layersDone: 1, layersTotal: 1, message: 'Pulled busybox:1.35: 1 of 1 layers, 0.0 of 0.0 MiB' });
  }
  t.equal(s.pullWaiters('busybox:1.35'), 0, 'the flight is gone once settled');
  // Later callers check the engine again instead of reusing a finished flight.
  const again = s.ensure('busybox:1.35', { policy: 'always' });
  (await engine.nextPull()).complete();
  await again;
  t.equal(engine.pulls.length, 2);
});

t.test('a caller that gives up leaves; the pull goes on for the others', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  engine.offer(REF, 'sha256:one');
  const quitter = new AbortController();
  const first = s.ensure('busybox:1.35', { policy: 'always', signal: quitter.signal });
  const second = s.ensure('busybox:1.35', { policy: 'always' });
  const pull = await engine.nextPull();
  quitter.abort();
  const err = await first.catch((e: unknown) => e);
  t.ok(err instanceof CancelledError, 'the quitter gets CancelledError');
  t.match(err, { message: 'stopped waiting for image busybox:1.35' });
  t.equal(pull.signal.aborted, false, 'the pull is not aborted');
  t.equal(s.pullWaiters('busybox:1.35'), 1);
  pull.complete();
  t.match(await second, { id: 'sha256:one', pulled: true });
});

t.test('when every caller has gone the pull is aborted, and the next caller starts afresh', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  engine.offer(REF, 'sha256:one');
  const a = new AbortController();
  const b = new AbortController();
  const first = s.ensure('busybox:1.35', { policy: 'always', signal: a.signal });
  const second = s.ensure('busybox:1.35', { policy: 'always', signal: b.signal });
  const pull = await engine.nextPull();
  a.abort();
  await t.rejects(first, CancelledError);
  t.equal(pull.signal.aborted, false);
  b.abort();
  await t.rejects(second, CancelledError);
  t.equal(pull.signal.aborted, true, 'the last one out aborts the pull');
  t.ok(pull.signal.reason instanceof CancelledError);
  t.equal(s.pullWaiters('busybox:1.35'), 0);
  const third = s.ensure('busybox:1.35', { policy: 'always' });
  const next = await engine.nextPull();
  t.not(next, pull);
  next.complete();
  t.match(await third, { pulled: true });
});

t.test('a flight joined only by callers that have already given up aborts at once', async (t) => {
  let runSignal: AbortSignal | undefined;
  let settled = 0;
  const flight = new PullFlight({
    image: parseImageRef('busybox:1.35'),
    activityTimeoutMs: 0,
    totalTimeoutMs: 0,
    progressIntervalMs: 0,
    log: () => {},
    run: (signal) => {
      runSignal = signal;
      return new Promise(() => {});
    },
    onSettled: () => void (settled += 1),
  });
  await t.rejects(flight.join({ signal: AbortSignal.abort() }), CancelledError);
  t.equal(runSignal?.aborted, true);
  t.equal(settled, 1);
  flight.abort(new Error('again')); // a second end is a no-op
  t.equal(settled, 1);
});

t.test('progress is throttled per interval, and the final report always arrives', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker, { progressIntervalMs: 200 });
  engine.offer(REF, 'sha256:one');
  const seen: PullProgress[] = [];
  const ensured = s.ensure('busybox:1.35', { policy: 'always', onProgress: (p) => seen.push(p) });
  const pull = await engine.nextPull();
  for (let i = 1; i <= 50; i++) pull.send({ status: 'Downloading', id: 'l1', progressDetail: { current: i * 100, total: 5000 } });
  await until(() => seen.length >= 1);
  t.equal(seen.length, 1, 'one report for a burst of events');
  t.match(seen[0], { currentBytes: 100 });
  await until(() => seen.length >= 2);
  t.match(seen[1], { currentBytes: 5000, totalBytes: 5000, layersDone: 0 }, 'the trailing report carries the latest state');
  // A caller joining now hears the latest state at once.
  const late: PullProgress[] = [];
  const joined = s.ensure('busybox:1.35', { policy: 'always', onProgress: (p) => late.push(p) });
  t.equal(late.length, 1);
  pull.complete();
  await Promise.all([ensured, joined]);
  t.match(seen.at(-1), { message: /^Pulled busybox:1\.35/ });
  t.match(late.at(-1), { message: /^Pulled busybox:1\.35/ });
});

t.test('a progress handler that throws hurts nobody else', async (t) => {
  const engine = fakeEngine();
  const logs: string[] = [];
  const s = service(t, engine.docker, { onLog: (level, message) => logs.push(`${level} ${message}`) });
  engine.offer(REF, 'sha256:one');
  const seen: PullProgress[] = [];
  const bad = s.ensure('busybox:1.35', {
    policy: 'always',
    onProgress: () => {
      throw new Error('boom');
    },
  });
  const good = s.ensure('busybox:1.35', { policy: 'always', onProgress: (p) => seen.push(p) });
  (await engine.nextPull()).complete();
  t.match(await bad, { pulled: true });
  t.match(await good, { pulled: true });
  t.ok(seen.length >= 1);
  t.ok(logs.some((l) => l.startsWith('warn a pull progress handler for busybox:1.35 threw: boom')));
});

// ------------------------------------------------------------------------------------------
// Timeouts

t.test('activity timeout: a pull that stops making progress is aborted', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker, { pullActivityTimeoutMs: 400 });
  engine.offer(REF, 'sha256:one');
  const started = Date.now();
  const ensured = s.ensure('busybox:1.35', { policy: 'always' });
  const pull = await engine.nextPull();
  // Progress keeps it alive past the timeout...
  let lastEvent = 0;
  for (let i = 0; i < 6; i++) {
    await delay(100);
    pull.send({ status: 'Downloading', id: 'l1', progressDetail: { current: i, total: 10 } });
    lastEvent = Date.now();
  }
  // ...then the registry stalls.
  const err = await ensured.catch((e: unknown) => e);
  t.ok(err instanceof TimeoutError, 'TimeoutError');
  t.match(err, {
    recoverable: true,
    message: /pulling busybox:1\.35 made no progress for 400ms: aborted/,
    details: { reason: 'pull-inactive' },
  });
  t.ok(lastEvent - started >= 600, 'it lived past the timeout while events came');
  t.ok(Date.now() - lastEvent >= 400 - 20, 'and ended a timeout after the last event');
  t.equal(pull.signal.aborted, true, 'the pull request is aborted');
  t.equal(pull.stream.destroyed, true);
});

t.test('total timeout: a pull that keeps going too long is aborted', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker, { pullActivityTimeoutMs: 1000, pullTimeoutMs: 150 });
  engine.offer(REF, 'sha256:one');
  const ensured = s.ensure('busybox:1.35', { policy: 'always' });
  const pull = await engine.nextPull();
  const ticker = setInterval(() => pull.send({ status: 'Downloading', id: 'l1', progressDetail: { current: 1, total: 10 } }), 20);
  t.teardown(() => clearInterval(ticker));
  await t.rejects(ensured, {
    name: 'TimeoutError',
    message: /pulling busybox:1\.35 took longer than 150ms: aborted/,
    details: { reason: 'pull-timeout' },
  });
  t.equal(pull.signal.aborted, true);
});

t.test('the activity timer runs before the stream, too: an engine that never answers', async (t) => {
  const engine = fakeEngine();
  let signal: AbortSignal | undefined;
  Object.assign(engine.docker, {
    pull: (_ref: string, options: { abortSignal: AbortSignal }) => {
      signal = options.abortSignal;
      return new Promise((_resolve, reject) =>
        options.abortSignal.addEventListener('abort', () => reject(new Error('The operation was aborted'))),
      );
    },
  });
  const s = service(t, engine.docker, { pullActivityTimeoutMs: 50 });
  await t.rejects(s.ensure('busybox:1.35', { policy: 'always' }), TimeoutError);
  t.equal(signal?.aborted, true);
});

// ------------------------------------------------------------------------------------------
// Errors

t.test('an error inside the stream fails the pull (followProgress alone would call it success)', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  engine.offer(REF, 'sha256:one');
  const ensured = s.ensure('busybox:1.35', { policy: 'always' });
  const pull = await engine.nextPull();
  pull.send(
    { status: 'Pulling fs layer', id: 'l1' },
    { errorDetail: { message: 'unexpected EOF' }, error: 'unexpected EOF' },
    { status: 'ignored after the error', id: 'l1' },
  );
  const err = await ensured.catch((e: unknown) => e);
  t.ok(err instanceof PluginError);
  t.match(err, { message: 'pulling busybox:1.35 failed: unexpected EOF', recoverable: true, details: { reason: 'pull-failed' } });
  t.equal(pull.stream.destroyed, true);
});

t.test('engine refusals become clear errors: not found, credentials, unreachable', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  const notFound = await s.ensure('127.0.0.1:5000/library/busybox:nope', { policy: 'always' }).catch((e: unknown) => e);
  t.ok(notFound instanceof PluginError);
  t.match(notFound, {
    message:
      /^image not found: 127\.0\.0\.1:5000\/library\/busybox:nope \(the registry 127\.0\.0\.1:5000 has no such repository, tag or digest: manifest for/,
    recoverable: false,
    details: { reason: 'not-found', statusCode: 404 },
  });

  engine.failPulls(engineError(500, 'Head "http://127.0.0.1:5001/v2/private/busybox/manifests/1.35": no basic auth credentials'));
  await t.rejects(s.ensure(PRIVATE_IMAGE, { policy: 'always' }), {
    message:
      /^the registry 127\.0\.0\.1:5001 wants credentials for 127\.0\.0\.1:5001\/private\/busybox:1\.35 and none were found: set the Docker plugin's auth/,
    recoverable: false,
    details: { reason: 'unauthorized' },
  });
  engine.failPulls(engineError(401, 'unauthorized'));
  await t.rejects(s.ensure(PRIVATE_IMAGE, { policy: 'always' }), { name: 'PluginError', details: { reason: 'unauthorized' } });

  engine.failPulls(engineError(500, 'Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused'));
  await t.rejects(s.ensure('127.0.0.1:5999/x:1', { policy: 'always' }), {
    message: 'pulling 127.0.0.1:5999/x:1 failed: Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused',
    recoverable: true,
    details: { reason: 'engine-error', statusCode: 500 },
  });
  engine.failPulls(engineError(undefined, 'connect ENOENT /var/run/docker.sock', { code: 'ENOENT' }));
  await t.rejects(s.ensure('busybox:1.35', { policy: 'always' }), {
    message: 'pulling busybox:1.35 failed: cannot reach the Docker engine (ENOENT)',
    recoverable: true,
  });

  engine.failPulls(undefined);
  engine.failInspects(engineError(500, 'layer does not exist'));
  await t.rejects(s.ensure('busybox:1.35', { policy: 'missing' }), {
    message: 'inspecting image busybox:1.35 failed: layer does not exist',
    recoverable: true,
  });
});

t.test('credentials that are refused are told apart from none at all', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker, { auth: async () => ({ username: 'u', password: 'wrong', serveraddress: AUTH_REGISTRY }) });
  engine.failPulls(engineError(500, 'unauthorized: authentication required'));
  await t.rejects(s.ensure(PRIVATE_IMAGE, { policy: 'always' }), {
    message:
      'the registry 127.0.0.1:5001 refused the credentials given for 127.0.0.1:5001/private/busybox:1.35 (unauthorized: authentication required)',
    details: { reason: 'unauthorized' },
  });
});

t.test('a broken progress stream, and a pull that leaves no image, fail recoverably', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  engine.offer(REF, 'sha256:one');
  const broken = s.ensure('busybox:1.35', { policy: 'always' });
  (await engine.nextPull()).stream.destroy(new Error('socket hang up'));
  await t.rejects(broken, {
    message: "pulling busybox:1.35 failed: the engine's progress stream broke: socket hang up",
    recoverable: true,
  });

  const empty = s.ensure('busybox:1.35', { policy: 'always' });
  (await engine.nextPull()).stream.end(); // ends without the image arriving
  await t.rejects(empty, {
    message: 'pulling busybox:1.35 ended, but the engine does not have the image: try again',
    recoverable: true,
    details: { reason: 'pull-incomplete' },
  });
});

t.test('an inspect that never answers times out; a caller can stop waiting for one', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker, { requestTimeoutMs: 50 });
  Object.assign(engine.docker, { getImage: () => ({ inspect: () => new Promise(() => {}) }) });
  await t.rejects(s.ensure('busybox:1.35', { policy: 'missing' }), {
    name: 'TimeoutError',
    message: 'the Docker engine did not answer an inspect of busybox:1.35 within 50ms',
  });
  const quit = new AbortController();
  const ensured = s.ensure('busybox:1.35', { policy: 'missing', signal: quit.signal });
  quit.abort();
  await t.rejects(ensured, CancelledError);
});

t.test('daemonMessage keeps the engine words only', async (t) => {
  t.equal(daemonMessage(engineError(409, 'conflict: unable to delete')), 'conflict: unable to delete');
  t.equal(daemonMessage(Object.assign(new Error('x'), { json: { message: 'from json ' } })), 'from json');
  t.equal(daemonMessage('plain'), 'plain');
  t.equal(daemonMessage(null), 'null');
});

// ------------------------------------------------------------------------------------------
// Auth passed to the pull

t.test('credentials are resolved for the image registry and sent with the pull', async (t) => {
  const engine = fakeEngine();
  const asked: string[] = [];
  const s = service(t, engine.docker, {
    auth: async (registry) => {
      asked.push(registry);
      return registry === AUTH_REGISTRY ? { username: REGISTRY_USER, password: REGISTRY_PASSWORD, serveraddress: registry } : undefined;
    },
  });
  engine.offer(PRIVATE_IMAGE, 'sha256:private');
  engine.offer(REF, 'sha256:public');
  const privateImage = s.ensure(PRIVATE_IMAGE, { policy: 'always' });
  const privatePull = await engine.nextPull();
  privatePull.complete();
  await privateImage;
  const publicImage = s.ensure('busybox:1.35', { policy: 'always' });
  const publicPull = await engine.nextPull();
  publicPull.complete();
  await publicImage;
  t.same(asked, [AUTH_REGISTRY, 'docker.io']);
  t.same(privatePull.authconfig, { username: REGISTRY_USER, password: REGISTRY_PASSWORD, serveraddress: AUTH_REGISTRY });
  t.equal(publicPull.authconfig, undefined);
});

// ------------------------------------------------------------------------------------------
// Shutdown

t.test('close() aborts pulls under way and refuses new work; it is idempotent', async (t) => {
  const engine = fakeEngine();
  const s = new DockerImageService(engine.docker);
  engine.offer(REF, 'sha256:one');
  const ensured = s.ensure('busybox:1.35', { policy: 'always' });
  const pull = await engine.nextPull();
  s.close();
  s.close();
  await t.rejects(ensured, PluginShutdownError);
  t.equal(pull.signal.aborted, true);
  await t.rejects(s.ensure('busybox:1.35', { policy: 'missing' }), { name: 'PluginShutdownError', message: /the image service is closed/ });
});
