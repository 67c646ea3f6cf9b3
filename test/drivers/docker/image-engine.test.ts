// The Docker image service against the real engine and the real registries of
// scripts/docker-test-env.sh: pulls by tag and digest, auth, single flight, policies, GC, stalls.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type Dockerode from 'dockerode';
import t from 'tap';
import type { PullProgress } from '../../../drivers/docker/image-manager.js';
import { PluginError, TimeoutError } from '../../../shared/errors.js';
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
} from '../../helpers/docker.js';
import { basic, credentialHelper, knowsAuthRegistry, service, tempDir, until } from '../../helpers/image-service-fakes.js';

// GC timers are unref'd (a plugin must not be kept alive by them); this keeps the test process
// alive while a test waits on nothing else.
const keepAlive = setInterval(() => undefined, 1000);
t.teardown(() => clearInterval(keepAlive));

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
  t.match(progress.at(-1), {
    image: ref,
    layersDone: 1,
    layersTotal: 1,
    message: /^Pulled 127\.0\.0\.1:5000\/taskhost-test\/pull:tag-\w+: 1 of 1 layers, [\d.]+ of [\d.]+ MiB$/,
  });
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
    t.match(err, {
      message:
        /^image not found: 127\.0\.0\.1:5000\/.* \(the registry 127\.0\.0\.1:5000 has no such repository, tag or digest: .*manifest unknown/,
      recoverable: false,
      details: { reason: 'not-found', statusCode: 404 },
    });
  }
  await t.rejects(s.ensure(`${PLAIN_REGISTRY}/library/busybox:no-such-tag`, { policy: 'never' }), {
    name: 'PluginError',
    details: { reason: 'not-present' },
  });
});

t.test('real engine: the auth registry wants credentials; a config file or a helper brings them', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  await removeImageRefs(docker, [PRIVATE_IMAGE]);
  t.teardown(() => removeImageRefs(docker, [PRIVATE_IMAGE]));

  const without = service(t, docker);
  const err = await without.ensure(PRIVATE_IMAGE, { policy: 'always' }).catch((e: unknown) => e);
  t.ok(err instanceof PluginError);
  t.match(err, {
    message: /^the registry 127\.0\.0\.1:5001 wants credentials for 127\.0\.0\.1:5001\/private\/busybox:1\.35 and none were found/,
    recoverable: false,
    details: { reason: 'unauthorized' },
  });

  const dir = tempDir(t);
  const wrongConfig = path.join(dir, 'wrong.json');
  writeFileSync(wrongConfig, JSON.stringify({ auths: { [AUTH_REGISTRY]: { auth: basic(REGISTRY_USER, 'wrong') } } }));
  const wrong = service(t, docker, { auth: { config: wrongConfig } });
  await t.rejects(wrong.ensure(PRIVATE_IMAGE, { policy: 'always' }), {
    message: /^the registry 127\.0\.0\.1:5001 refused the credentials given for/,
    details: { reason: 'unauthorized' },
  });

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
  t.ok(
    rest.every((r) => r.status === 'fulfilled' && r.value.pulled),
    'the nine others got the image',
  );
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
  t.same(await s.ensure(BUSYBOX_IMAGE, { policy: 'never' }), {
    reference: 'docker.io/library/busybox:1.35',
    id: local.Id,
    env: local.Config.Env,
    pulled: false,
  });
  t.same(await s.ensure(BUSYBOX_IMAGE, { policy: 'missing' }), {
    reference: 'docker.io/library/busybox:1.35',
    id: local.Id,
    env: local.Config.Env,
    pulled: false,
  });
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
  t.ok(
    progress.some((p) => p.layersTotal === 1 && p.currentBytes > 0),
    'some bytes arrived before the stall',
  );
  t.notOk(await imageExists(docker, ref));
});
