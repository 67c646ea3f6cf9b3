// The Docker driver's image side. First against a fake engine (a real dockerode client whose
// pull/getImage are replaced; its real modem.followProgress reads the fake streams), for the
// timing-sensitive logic: single flight, cancellation, timeouts, throttled progress, GC. Then
// against the real engine and the real registries of scripts/docker-test-env.sh.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import Dockerode from 'dockerode';
import t from 'tap';
import { daemonMessage } from '../../drivers/docker/daemon-message.js';
import { DockerImageService, type DockerImageServiceOptions } from '../../drivers/docker/docker-image-service.js';
import type { PullProgress } from '../../drivers/docker/image-manager.js';
import { PullFlight } from '../../drivers/docker/pull-flight.js';
import { PullProgressTracker } from '../../drivers/docker/pull-progress-tracker.js';
import { registryAuthResolver, registryHost } from '../../drivers/docker/registry-auth-resolver.js';
import {
  CancelledError,
  InvalidConfigError,
  PluginError,
  PluginShutdownError,
  TimeoutError,
} from '../../shared/errors.js';
import { parseImageRef } from '../../shared/image-ref.js';
import {
  AUTH_REGISTRY,
  BUSYBOX_IMAGE,
  deleteFromRegistry,
  IMAGE_GREETING,
  NESTED_IMAGE,
  PLAIN_IMAGE,
  PLAIN_REGISTRY,
  PRIVATE_IMAGE,
  pushThrowawayImage,
  REGISTRY_PASSWORD,
  REGISTRY_USER,
  removeImageRefs,
  imageExists,
  requireDocker,
  tarArchive,
} from '../helpers/docker.js';

// GC timers are unref'd (a plugin must not be kept alive by them); this keeps the test process
// alive while a test waits on nothing else.
const keepAlive = setInterval(() => undefined, 1000);
t.teardown(() => clearInterval(keepAlive));

// ------------------------------------------------------------------------------------------
// A fake engine

interface ImageRecord {
  Id: string;
  Config: { Env: string[] | null };
}

interface FakePull {
  ref: string;
  authconfig: unknown;
  signal: AbortSignal;
  stream: PassThrough;
  /** Writes pull events as the engine would, one JSON line each. */
  send(...events: object[]): void;
  /** Writes the usual events of a one-layer pull, then ends: the image is then present. */
  complete(): void;
}

function engineError(statusCode: number | undefined, message: string, extra: object = {}): Error {
  const text = statusCode === undefined ? message : `(HTTP code ${statusCode}) unexpected - ${message} `;
  return Object.assign(new Error(text), statusCode === undefined ? {} : { statusCode, json: null }, extra);
}

function fakeEngine() {
  const docker = new Dockerode({ socketPath: '/nonexistent/taskhost-fake-engine.sock' });
  /** Images the fake registry can deliver, by normalised reference. */
  const registry = new Map<string, ImageRecord>();
  /** Images the engine has, by reference and by id. */
  const local = new Map<string, ImageRecord>();
  const pulls: FakePull[] = [];
  const removed: string[] = [];
  const waitingForPull: ((pull: FakePull) => void)[] = [];
  let taken = 0;
  let pullError: Error | undefined;
  let inspectError: Error | undefined;
  let removeResult: (id: string) => Promise<unknown> = async (id) => {
    removed.push(id);
    return [{ Deleted: id }];
  };

  const pull = async (ref: string, options: { authconfig?: unknown; abortSignal: AbortSignal }): Promise<PassThrough> => {
    if (pullError) throw pullError;
    const image = registry.get(ref);
    if (!image) throw engineError(404, `manifest for ${ref} not found: manifest unknown`);
    const stream = new PassThrough();
    options.abortSignal.addEventListener('abort', () => stream.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })), { once: true });
    const record: FakePull = {
      ref,
      authconfig: options.authconfig,
      signal: options.abortSignal,
      stream,
      send: (...events) => void stream.write(events.map((e) => JSON.stringify(e) + '\n').join('')),
      complete: () => {
        record.send(
          { status: 'Pulling from fake', id: 'tag' },
          { status: 'Pulling fs layer', progressDetail: {}, id: 'layer1' },
          { status: 'Downloading', progressDetail: { current: 512, total: 1024 }, id: 'layer1' },
          { status: 'Download complete', progressDetail: {}, id: 'layer1' },
          { status: 'Pull complete', progressDetail: {}, id: 'layer1' },
          { status: 'Digest: sha256:' + 'd'.repeat(64) },
          { status: `Status: Downloaded newer image for ${ref}` },
        );
        local.set(ref, image);
        local.set(image.Id, image);
        stream.end();
      },
    };
    pulls.push(record);
    const waiter = waitingForPull.shift();
    if (waiter) {
      taken += 1;
      waiter(record);
    }
    return stream;
  };
  const getImage = (name: string) => ({
    inspect: async () => {
      if (inspectError) throw inspectError;
      const image = local.get(name);
      if (!image) throw engineError(404, `no such image: ${name}`, { reason: 'no such image' });
      return image;
    },
    remove: (options: { abortSignal?: AbortSignal } = {}) => {
      options.abortSignal?.throwIfAborted();
      return removeResult(name);
    },
  });
  Object.assign(docker, { pull, getImage });

  return {
    docker,
    registry,
    local,
    pulls,
    removed,
    /** Resolves with the first pull no test has taken yet, waiting for it if need be. */
    nextPull: (): Promise<FakePull> => {
      const made = pulls[taken++];
      if (made) return Promise.resolve(made);
      return new Promise((resolve) => waitingForPull.push(resolve));
    },
    failPulls: (err: Error | undefined) => void (pullError = err),
    failInspects: (err: Error | undefined) => void (inspectError = err),
    onRemove: (fn: (id: string) => Promise<unknown>) => void (removeResult = fn),
    /** Makes `ref` pullable (and, with `present`, already there). */
    offer(ref: string, id: string, present = false): ImageRecord {
      const image = { Id: id, Config: { Env: ['PATH=/bin', `FROM=${ref}`] } };
      registry.set(ref, image);
      if (present) {
        local.set(ref, image);
        local.set(id, image);
      }
      return image;
    },
  };
}

function service(t: { teardown(fn: () => void): void }, docker: Dockerode, options: DockerImageServiceOptions = {}): DockerImageService {
  const s = new DockerImageService(docker, { progressIntervalMs: 0, ...options });
  t.teardown(() => s.close());
  return s;
}

const REF = 'docker.io/library/busybox:1.35';

/** Waits until `check()` holds, polling; fails the wait after `timeoutMs`. */
async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await delay(10);
  }
}

// ------------------------------------------------------------------------------------------
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
  t.same(await ensured, { reference: 'docker.io/library/busybox:1.36', id: 'sha256:new', env: ['PATH=/bin', 'FROM=docker.io/library/busybox:1.36'], pulled: true });
});

t.test('policy "never": use what is there, or fail naming the image', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  engine.offer(REF, 'sha256:present', true);
  t.match(await s.ensure('busybox:1.35', { policy: 'never' }), { id: 'sha256:present', pulled: false });
  const err = await s.ensure('busybox:1.36', { policy: 'never' }).catch((e: unknown) => e);
  t.ok(err instanceof PluginError);
  t.match(err, { message: /image busybox:1\.36 is not present and the pull policy is "never"/, recoverable: false, details: { reason: 'not-present' } });
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
  await t.rejects(s.ensure('busybox:1.35', { policy: 'sometimes' as 'always' }), /pull policy "sometimes" is not one of always, missing, never/);
  const aborted = AbortSignal.abort();
  await t.rejects(s.ensure('busybox:1.35', { policy: 'missing', signal: aborted }), CancelledError);
  t.equal(engine.pulls.length, 0);
});

t.test('options are checked up front', async (t) => {
  const docker = fakeEngine().docker;
  t.throws(() => new DockerImageService(docker, { pullTimeoutMs: -1 }), /options\.pullTimeoutMs must be a non-negative integer \(milliseconds\), not -1/);
  t.throws(() => new DockerImageService(docker, { pullActivityTimeoutMs: 1.5 }), /options\.pullActivityTimeoutMs/);
  t.throws(() => new DockerImageService(docker, { gc: { delayMs: '3m' as unknown as number } }), /options\.gc\.delayMs must be a non-negative integer \(milliseconds\), not "3m"/);
  t.throws(() => new DockerImageService(docker, { gc: { enabled: 'yes' as unknown as boolean } }), /options\.gc\.enabled must be a boolean/);
  t.throws(() => new DockerImageService(docker, { auth: { helper: '../evil' } }), /auth\.helper: "\.\.\/evil" is not a credential helper name/);
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
    s.ensure(i % 2 ? 'busybox:1.35' : 'docker.io/library/busybox:1.35', { policy: i % 3 ? 'missing' : 'always', onProgress: (p) => progress.push(p) }),
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
  const bad = s.ensure('busybox:1.35', { policy: 'always', onProgress: () => { throw new Error('boom'); } });
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
  t.match(err, { recoverable: true, message: /pulling busybox:1\.35 made no progress for 400ms: aborted/, details: { reason: 'pull-inactive' } });
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
  await t.rejects(ensured, { name: 'TimeoutError', message: /pulling busybox:1\.35 took longer than 150ms: aborted/, details: { reason: 'pull-timeout' } });
  t.equal(pull.signal.aborted, true);
});

t.test('the activity timer runs before the stream, too: an engine that never answers', async (t) => {
  const engine = fakeEngine();
  let signal: AbortSignal | undefined;
  Object.assign(engine.docker, {
    pull: (_ref: string, options: { abortSignal: AbortSignal }) => {
      signal = options.abortSignal;
      return new Promise((_resolve, reject) => options.abortSignal.addEventListener('abort', () => reject(new Error('The operation was aborted'))));
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
  pull.send({ status: 'Pulling fs layer', id: 'l1' }, { errorDetail: { message: 'unexpected EOF' }, error: 'unexpected EOF' }, { status: 'ignored after the error', id: 'l1' });
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
  t.match(notFound, { message: /^image not found: 127\.0\.0\.1:5000\/library\/busybox:nope \(the registry 127\.0\.0\.1:5000 has no such repository, tag or digest: manifest for/, recoverable: false, details: { reason: 'not-found', statusCode: 404 } });

  engine.failPulls(engineError(500, 'Head "http://127.0.0.1:5001/v2/private/busybox/manifests/1.35": no basic auth credentials'));
  await t.rejects(s.ensure(PRIVATE_IMAGE, { policy: 'always' }), {
    message: /^the registry 127\.0\.0\.1:5001 wants credentials for 127\.0\.0\.1:5001\/private\/busybox:1\.35 and none were found: set the Docker plugin's auth/,
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
  await t.rejects(s.ensure('busybox:1.35', { policy: 'always' }), { message: 'pulling busybox:1.35 failed: cannot reach the Docker engine (ENOENT)', recoverable: true });

  engine.failPulls(undefined);
  engine.failInspects(engineError(500, 'layer does not exist'));
  await t.rejects(s.ensure('busybox:1.35', { policy: 'missing' }), { message: 'inspecting image busybox:1.35 failed: layer does not exist', recoverable: true });
});

t.test('credentials that are refused are told apart from none at all', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker, { auth: async () => ({ username: 'u', password: 'wrong', serveraddress: AUTH_REGISTRY }) });
  engine.failPulls(engineError(500, 'unauthorized: authentication required'));
  await t.rejects(s.ensure(PRIVATE_IMAGE, { policy: 'always' }), {
    message: 'the registry 127.0.0.1:5001 refused the credentials given for 127.0.0.1:5001/private/busybox:1.35 (unauthorized: authentication required)',
    details: { reason: 'unauthorized' },
  });
});

t.test('a broken progress stream, and a pull that leaves no image, fail recoverably', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker);
  engine.offer(REF, 'sha256:one');
  const broken = s.ensure('busybox:1.35', { policy: 'always' });
  (await engine.nextPull()).stream.destroy(new Error('socket hang up'));
  await t.rejects(broken, { message: "pulling busybox:1.35 failed: the engine's progress stream broke: socket hang up", recoverable: true });

  const empty = s.ensure('busybox:1.35', { policy: 'always' });
  (await engine.nextPull()).stream.end(); // ends without the image arriving
  await t.rejects(empty, { message: 'pulling busybox:1.35 ended, but the engine does not have the image: try again', recoverable: true, details: { reason: 'pull-incomplete' } });
});

t.test('an inspect that never answers times out; a caller can stop waiting for one', async (t) => {
  const engine = fakeEngine();
  const s = service(t, engine.docker, { requestTimeoutMs: 50 });
  Object.assign(engine.docker, { getImage: () => ({ inspect: () => new Promise(() => {}) }) });
  await t.rejects(s.ensure('busybox:1.35', { policy: 'missing' }), { name: 'TimeoutError', message: 'the Docker engine did not answer an inspect of busybox:1.35 within 50ms' });
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

// ------------------------------------------------------------------------------------------
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
  t.ok(logs.includes('info kept image sha256:used: conflict: unable to delete 1234 (must be forced) - image is referenced in multiple repositories'));
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
        new Promise((_resolve, reject) => options.abortSignal.addEventListener('abort', () => reject(new Error('The operation was aborted')))),
    }),
  });
  s.acquire('sha256:a');
  s.release('sha256:a');
  await until(() => logs.includes('warn could not remove image sha256:a: The operation was aborted'));
  t.pass('given up, and said so');
});

// ------------------------------------------------------------------------------------------
// Registry credentials: config files and helpers (no engine needed)

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-auth-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Puts a docker-credential-<name> script on PATH for the test. */
function credentialHelper(t: { teardown(fn: () => void): void }, name: string, script: string): void {
  const dir = tempDir(t);
  const file = path.join(dir, `docker-credential-${name}`);
  writeFileSync(file, `#!/bin/sh\n${script}\n`);
  chmodSync(file, 0o755);
  const before = process.env.PATH;
  process.env.PATH = `${dir}${path.delimiter}${before ?? ''}`;
  t.teardown(() => void (process.env.PATH = before));
}

const basic = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64');

/** A helper that knows one server, as docker-credential-helpers stores do. */
const knowsAuthRegistry = `read server
if [ "$server" = "${AUTH_REGISTRY}" ]; then
  printf '{"ServerURL":"%s","Username":"${REGISTRY_USER}","Secret":"${REGISTRY_PASSWORD}"}' "$server"
elif [ "$server" = "https://index.docker.io/v1/" ]; then
  printf '{"ServerURL":"%s","Username":"<token>","Secret":"hub-token"}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi`;

t.test('auth: registry hosts match however a config file spells them', async (t) => {
  t.equal(registryHost('https://index.docker.io/v1/'), 'docker.io');
  t.equal(registryHost('registry-1.docker.io'), 'docker.io');
  t.equal(registryHost('docker.io'), 'docker.io');
  t.equal(registryHost('http://127.0.0.1:5001/v2/'), '127.0.0.1:5001');
  t.equal(registryHost('Registry.Example.com'), 'registry.example.com');
});

t.test('auth: a docker config file (auth, username/password, identity token, hub key)', async (t) => {
  const dir = tempDir(t);
  const config = path.join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: basic('hubuser', 'hub:pass') },
        'http://127.0.0.1:5001': { auth: basic('wrong', 'wrong') },
        '127.0.0.1:5001': { auth: basic(REGISTRY_USER, REGISTRY_PASSWORD) },
        'https://registry.example.com/v1/': { username: 'plain', password: 'text' },
        'token.example.com': { identitytoken: 'tok' },
        'empty.example.com': {},
      },
    }),
  );
  const resolve = registryAuthResolver({ config });
  t.same(await resolve('docker.io'), { username: 'hubuser', password: 'hub:pass', serveraddress: 'https://index.docker.io/v1/' });
  t.same(await resolve(AUTH_REGISTRY), { username: REGISTRY_USER, password: REGISTRY_PASSWORD, serveraddress: AUTH_REGISTRY }, 'the exact key wins');
  t.same(await resolve('registry.example.com'), { username: 'plain', password: 'text', serveraddress: 'registry.example.com' });
  t.same(await resolve('token.example.com'), { identitytoken: 'tok', serveraddress: 'token.example.com' });
  t.equal(await resolve('empty.example.com'), undefined);
  t.equal(await resolve('127.0.0.1:5000'), undefined);
});

t.test('auth: bad config files fail with a message naming the file', async (t) => {
  const dir = tempDir(t);
  await t.rejects(registryAuthResolver({ config: path.join(dir, 'missing.json') })('docker.io'), { name: 'InvalidConfigError', message: /auth\.config: cannot read the docker config file .*missing\.json/ });
  const notJson = path.join(dir, 'bad.json');
  writeFileSync(notJson, '{ nope');
  await t.rejects(registryAuthResolver({ config: notJson })('docker.io'), { message: /auth\.config: .*bad\.json is not valid JSON/ });
  const array = path.join(dir, 'array.json');
  writeFileSync(array, '[]');
  await t.rejects(registryAuthResolver({ config: array })('docker.io'), { message: /must hold a JSON object/ });
  const badAuth = path.join(dir, 'bad-auth.json');
  writeFileSync(badAuth, JSON.stringify({ auths: { 'x.io': { auth: Buffer.from('no-colon').toString('base64') } } }));
  await t.rejects(registryAuthResolver({ config: badAuth })('x.io'), { message: /auths\["x\.io"\]\.auth must be base64 of "user:password"/ });
  const badHelper = path.join(dir, 'bad-helper.json');
  writeFileSync(badHelper, JSON.stringify({ credsStore: 'a/b' }));
  await t.rejects(registryAuthResolver({ config: badHelper })('x.io'), { message: /credHelpers\/credsStore: "a\/b" is not a credential helper name/ });
});

t.test('auth: credential helpers (plugin option, credHelpers, credsStore), in docker order', async (t) => {
  credentialHelper(t, 'taskhost-test', knowsAuthRegistry);
  const byOption = registryAuthResolver({ helper: 'taskhost-test' });
  t.same(await byOption(AUTH_REGISTRY), { username: REGISTRY_USER, password: REGISTRY_PASSWORD, serveraddress: AUTH_REGISTRY });
  t.same(await byOption('index.docker.io'), { identitytoken: 'hub-token', serveraddress: 'https://index.docker.io/v1/' });
  t.equal(await byOption('127.0.0.1:5000'), undefined, '"not found" is no credentials, not an error');

  const dir = tempDir(t);
  const config = path.join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ credHelpers: { [AUTH_REGISTRY]: 'taskhost-test' }, auths: { [AUTH_REGISTRY]: { auth: basic('inline', 'x') }, 'a.io': { auth: basic('inline', 'a') } } }));
  const viaFile = registryAuthResolver({ config });
  t.match(await viaFile(AUTH_REGISTRY), { username: REGISTRY_USER }, 'credHelpers before auths');
  t.match(await viaFile('a.io'), { username: 'inline' });

  const storeConfig = path.join(dir, 'store.json');
  writeFileSync(storeConfig, JSON.stringify({ credsStore: 'taskhost-test', auths: { 'b.io': { auth: basic('inline', 'b') } } }));
  const viaStore = registryAuthResolver({ config: storeConfig, helper: 'taskhost-test' });
  t.match(await viaStore(AUTH_REGISTRY), { username: REGISTRY_USER });
  t.match(await viaStore('b.io'), { username: 'inline' }, 'the store has nothing: inline auths');
  t.equal(await viaStore('c.io'), undefined);
});

t.test('auth: a failing, missing, slow or confused helper gives a clear error', async (t) => {
  credentialHelper(t, 'taskhost-fails', 'echo "keychain locked" >&2; exit 3');
  credentialHelper(t, 'taskhost-silent', 'exit 4');
  credentialHelper(t, 'taskhost-babbles', 'echo "this is not json"');
  credentialHelper(t, 'taskhost-empty', `echo '{"Username":"u","Secret":""}'`);
  credentialHelper(t, 'taskhost-nouser', `echo '{"Secret":"s"}'`);
  credentialHelper(t, 'taskhost-sleeps', 'exec sleep 10');
  await t.rejects(registryAuthResolver({ helper: 'taskhost-fails' })('x.io'), { name: 'PluginError', message: 'the credential helper docker-credential-taskhost-fails failed for x.io (exit code 3): keychain locked' });
  await t.rejects(registryAuthResolver({ helper: 'taskhost-silent' })('x.io'), { message: 'the credential helper docker-credential-taskhost-silent failed for x.io (exit code 4)' });
  await t.rejects(registryAuthResolver({ helper: 'taskhost-babbles' })('x.io'), { message: /printed something that is not JSON for x\.io: this is not json/ });
  t.equal(await registryAuthResolver({ helper: 'taskhost-empty' })('x.io'), undefined);
  t.same(await registryAuthResolver({ helper: 'taskhost-nouser' })('x.io'), { username: '', password: 's', serveraddress: 'x.io' });
  await t.rejects(registryAuthResolver({ helper: 'taskhost-not-installed' })('x.io'), { message: 'the credential helper docker-credential-taskhost-not-installed was not found on PATH (asked for x.io)' });
  await t.rejects(registryAuthResolver({ helper: 'taskhost-sleeps' }, { helperTimeoutMs: 100 })('x.io'), { name: 'TimeoutError', message: /did not answer within 100 ms/ });
  const quit = new AbortController();
  const asked = registryAuthResolver({ helper: 'taskhost-sleeps' })('x.io', quit.signal);
  setTimeout(() => quit.abort(new CancelledError('gave up')), 50);
  await t.rejects(asked, { name: 'CancelledError', message: 'gave up' });
});

// ==========================================================================================
// The real engine and the real registries (scripts/docker-test-env.sh)

// Throwaway images get this run's tags, so parallel runs never touch each other's images;
// busybox:1.35 and busybox:1.36 themselves are never removed or untagged.
const runId = randomBytes(4).toString('hex');

/** Removes throwaway images from the engine and from the registry. */
async function forgetThrowaways(docker: Dockerode, refs: string[]): Promise<void> {
  await removeImageRefs(docker, refs);
  for (const ref of refs) await deleteFromRegistry(ref);
}

/** Untags `ref` after the test unless the engine had it before (another test may use it). */
async function untagAfter(t: { teardown(fn: () => unknown): void }, docker: Dockerode, ref: string): Promise<void> {
  if (await imageExists(docker, ref)) return;
  t.teardown(() => removeImageRefs(docker, [ref]));
}

t.test('real engine: pull by tag from the registry, with progress, and the image env', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const ref = await pushThrowawayImage(docker, 'pull', `tag-${runId}`);
  t.teardown(() => forgetThrowaways(docker, [ref]));
  const s = service(t, docker);
  const progress: PullProgress[] = [];
  const ensured = await s.ensure(ref, { policy: 'missing', onProgress: (p) => progress.push(p) });
  t.match(ensured, { reference: ref, pulled: true, id: /^sha256:[0-9a-f]{64}$/ });
  t.ok(ensured.env.includes(`THROWAWAY=tag-${runId}`), 'the image env comes back');
  t.ok(progress.length >= 1, 'progress was reported');
  t.match(progress.at(-1), { image: ref, layersDone: 1, layersTotal: 1, message: /^Pulled 127\.0\.0\.1:5000\/taskhost-test\/pull:tag-\w+: 1 of 1 layers, [\d.]+ of [\d.]+ MiB$/ });
  t.ok(progress.at(-1)!.totalBytes > 0, 'bytes were counted');
  t.match(await s.ensure(ref, { policy: 'missing' }), { id: ensured.id, pulled: false }, 'present now: no second pull');
  t.match(await s.ensure(ref, { policy: 'never' }), { id: ensured.id, pulled: false });
});

t.test('real engine: pull by digest, and from a nested path', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  // The registry tells the digest of what it holds.
  const manifest = await fetch(`http://${PLAIN_REGISTRY}/v2/team/tools/busybox/manifests/1.35`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
  });
  const digest = manifest.headers.get('docker-content-digest');
  t.match(digest, /^sha256:[0-9a-f]{64}$/);
  const pinned = `${PLAIN_REGISTRY}/team/tools/busybox@${digest}`;
  await removeImageRefs(docker, [NESTED_IMAGE, pinned]);
  t.teardown(() => removeImageRefs(docker, [NESTED_IMAGE, pinned]));
  const s = service(t, docker);
  const local = await docker.getImage(BUSYBOX_IMAGE).inspect();

  const byDigest = await s.ensure(`${NESTED_IMAGE}@${digest}`, { policy: 'missing' });
  t.same(byDigest, { reference: pinned, id: local.Id, env: local.Config.Env, pulled: true }, 'the tag is dropped, as docker does');
  t.ok(byDigest.env.includes(IMAGE_GREETING));
  t.match(await s.ensure(pinned, { policy: 'missing' }), { pulled: false });

  const byTag = await s.ensure(NESTED_IMAGE, { policy: 'always' });
  t.same(byTag, { reference: NESTED_IMAGE, id: local.Id, env: local.Config.Env, pulled: true });
});

t.test('real engine: unknown tags and repositories are "image not found"', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const s = service(t, docker);
  for (const image of [`${PLAIN_REGISTRY}/library/busybox:no-such-tag`, `${PLAIN_REGISTRY}/no/such/repository:1`]) {
    const err = await s.ensure(image, { policy: 'missing' }).catch((e: unknown) => e);
    t.ok(err instanceof PluginError, image);
    t.match(err, { message: /^image not found: 127\.0\.0\.1:5000\/.* \(the registry 127\.0\.0\.1:5000 has no such repository, tag or digest: .*manifest unknown/, recoverable: false, details: { reason: 'not-found', statusCode: 404 } });
  }
  await t.rejects(s.ensure(`${PLAIN_REGISTRY}/library/busybox:no-such-tag`, { policy: 'never' }), { name: 'PluginError', details: { reason: 'not-present' } });
});

t.test('real engine: the auth registry wants credentials; a config file or a helper brings them', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  await removeImageRefs(docker, [PRIVATE_IMAGE]);
  t.teardown(() => removeImageRefs(docker, [PRIVATE_IMAGE]));

  const without = service(t, docker);
  const err = await without.ensure(PRIVATE_IMAGE, { policy: 'always' }).catch((e: unknown) => e);
  t.ok(err instanceof PluginError);
  t.match(err, { message: /^the registry 127\.0\.0\.1:5001 wants credentials for 127\.0\.0\.1:5001\/private\/busybox:1\.35 and none were found/, recoverable: false, details: { reason: 'unauthorized' } });

  const dir = tempDir(t);
  const wrongConfig = path.join(dir, 'wrong.json');
  writeFileSync(wrongConfig, JSON.stringify({ auths: { [AUTH_REGISTRY]: { auth: basic(REGISTRY_USER, 'wrong') } } }));
  const wrong = service(t, docker, { auth: { config: wrongConfig } });
  await t.rejects(wrong.ensure(PRIVATE_IMAGE, { policy: 'always' }), { message: /^the registry 127\.0\.0\.1:5001 refused the credentials given for/, details: { reason: 'unauthorized' } });

  const config = path.join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ auths: { [`http://${AUTH_REGISTRY}`]: { auth: basic(REGISTRY_USER, REGISTRY_PASSWORD) } } }));
  const withFile = service(t, docker, { auth: { config } });
  const pulled = await withFile.ensure(PRIVATE_IMAGE, { policy: 'always' });
  t.match(pulled, { reference: PRIVATE_IMAGE, pulled: true });
  t.ok(pulled.env.includes(IMAGE_GREETING));

  await removeImageRefs(docker, [PRIVATE_IMAGE]);
  credentialHelper(t, 'taskhost-test', knowsAuthRegistry);
  const withHelper = service(t, docker, { auth: { helper: 'taskhost-test' } });
  t.match(await withHelper.ensure(PRIVATE_IMAGE, { policy: 'always' }), { reference: PRIVATE_IMAGE, pulled: true });
});

t.test('real engine: ten concurrent ensure() make one pull; a caller that quits does not stop it', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const ref = await pushThrowawayImage(docker, 'flight', `tag-${runId}`);
  t.teardown(() => forgetThrowaways(docker, [ref]));
  const pulls: string[] = [];
  const realPull = docker.pull.bind(docker);
  // Count what reaches the engine; the service under test sees the real client.
  (docker as { pull: typeof realPull }).pull = ((image: string, options?: object) => {
    pulls.push(image);
    return realPull(image, options);
  }) as typeof realPull;
  const s = service(t, docker);
  const quitter = new AbortController();
  const progress = Array.from({ length: 10 }, () => [] as PullProgress[]);
  const ensured = progress.map((seen, i) =>
    s.ensure(ref, { policy: 'always', onProgress: (p) => seen.push(p), ...(i === 0 ? { signal: quitter.signal } : {}) }),
  );
  quitter.abort();
  const [first, ...rest] = await Promise.allSettled(ensured);
  t.match(first, { status: 'rejected', reason: { name: 'CancelledError' } });
  t.ok(rest.every((r) => r.status === 'fulfilled' && r.value.pulled), 'the nine others got the image');
  t.same(pulls, [ref], 'exactly one pull reached the engine');
  const ids = new Set(rest.map((r) => (r as PromiseFulfilledResult<{ id: string }>).value.id));
  t.equal(ids.size, 1);
  for (const seen of progress.slice(1)) t.match(seen.at(-1), { message: /^Pulled / });
  t.ok(await imageExists(docker, ref));
});

t.test('real engine: policies against a present image and an absent one', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  await untagAfter(t, docker, PLAIN_IMAGE);
  const s = service(t, docker);
  const local = await docker.getImage(BUSYBOX_IMAGE).inspect();
  t.same(await s.ensure(BUSYBOX_IMAGE, { policy: 'never' }), { reference: 'docker.io/library/busybox:1.35', id: local.Id, env: local.Config.Env, pulled: false });
  t.same(await s.ensure(BUSYBOX_IMAGE, { policy: 'missing' }), { reference: 'docker.io/library/busybox:1.35', id: local.Id, env: local.Config.Env, pulled: false });
  t.ok(local.Config.Env.includes(IMAGE_GREETING));
  // "always" really asks the registry: the open one has busybox:1.35 under library/.
  t.match(await s.ensure(PLAIN_IMAGE, { policy: 'always' }), { reference: PLAIN_IMAGE, id: local.Id, pulled: true });
});

t.test('real engine: GC removes an unused image after the delay, and keeps one acquired again in time', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const removedRef = await pushThrowawayImage(docker, 'gc', `removed-${runId}`);
  const keptRef = await pushThrowawayImage(docker, 'gc', `kept-${runId}`);
  t.teardown(() => forgetThrowaways(docker, [removedRef, keptRef]));
  const s = service(t, docker, { gc: { delayMs: 1000 } });

  const removed = await s.ensure(removedRef, { policy: 'missing' });
  s.acquire(removed.id);
  s.release(removed.id);
  t.ok(await imageExists(docker, removed.id), 'still there within the delay');
  await until(async () => !(await imageExists(docker, removed.id)));
  t.pass('removed after the delay');

  const kept = await s.ensure(keptRef, { policy: 'missing' });
  s.acquire(kept.id);
  s.release(kept.id);
  await delay(50);
  s.acquire(kept.id);
  await delay(1500);
  t.ok(await imageExists(docker, kept.id), 'kept: acquired again within the delay');
});

t.test('real engine: GC never removes an image that has another name (409 keeps it)', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  await untagAfter(t, docker, PLAIN_IMAGE);
  const logs: string[] = [];
  const s = service(t, docker, { gc: { delayMs: 1 }, onLog: (level, m) => logs.push(`${level} ${m}`) });
  const ensured = await s.ensure(PLAIN_IMAGE, { policy: 'missing' }); // the same id as busybox:1.35
  s.acquire(ensured.id);
  s.release(ensured.id);
  await until(() => logs.some((l) => l.startsWith(`info kept image ${ensured.id}: conflict: unable to delete`)));
  t.pass('kept, and said why');
  t.ok(await imageExists(docker, BUSYBOX_IMAGE));
});

/**
 * A registry that serves one image but stalls halfway through its layer: the engine reports
 * some download progress, then nothing. Only the activity timeout can end such a pull.
 */
async function stallingRegistry(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
  // Random content: the engine shares downloads of one layer digest between pulls, so a layer
  // another run is pulling at the same time would tie the two pulls together.
  const tar = tarArchive([{ name: 'payload.bin', content: randomBytes(2 * 1024 * 1024) }]);
  const layer = gzipSync(tar, { level: 0 });
  const config = JSON.stringify({
    architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
  });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: Buffer.byteLength(config), digest: sha256(config) },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: sha256(layer) }],
  });
  const server: Server = createServer((req, res) => {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const url = req.url ?? '';
    if (url === '/v2/') return void res.end('{}');
    if (url.includes('/manifests/')) {
      res.setHeader('Content-Type', 'application/vnd.docker.distribution.manifest.v2+json');
      res.setHeader('Docker-Content-Digest', sha256(manifest));
      res.setHeader('Content-Length', Buffer.byteLength(manifest));
      return void res.end(req.method === 'HEAD' ? undefined : manifest);
    }
    if (url.endsWith(sha256(config))) return void res.end(config);
    if (url.endsWith(sha256(layer))) {
      res.writeHead(200, { 'Content-Length': layer.length, 'Content-Type': 'application/octet-stream' });
      res.write(layer.subarray(0, layer.length / 2)); // ...and never the rest
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as { port: number };
  return `127.0.0.1:${port}`;
}

t.test('real engine: a pull that stalls mid-layer is aborted by the activity timeout', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const registry = await stallingRegistry(t);
  const ref = `${registry}/stalls/halfway:1`;
  t.teardown(() => removeImageRefs(docker, [ref]));
  const s = service(t, docker, { pullActivityTimeoutMs: 1500, pullTimeoutMs: 60_000 });
  const progress: PullProgress[] = [];
  const started = Date.now();
  const err = await s.ensure(ref, { policy: 'always', onProgress: (p) => progress.push(p) }).catch((e: unknown) => e);
  t.ok(err instanceof TimeoutError, `TimeoutError (${String(err)})`);
  t.match(err, { message: /made no progress for 1\.5s: aborted/, details: { reason: 'pull-inactive' } });
  t.ok(Date.now() - started < 30_000, 'long before the total timeout');
  t.ok(progress.some((p) => p.layersTotal === 1 && p.currentBytes > 0), 'some bytes arrived before the stall');
  t.notOk(await imageExists(docker, ref));
});
