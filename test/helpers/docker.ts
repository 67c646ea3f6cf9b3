/**
 * The Docker test environment (scripts/docker-test-env.sh sets it up): a real engine, two
 * registries on loopback and busybox test images. Tests call requireDocker(t) first: without
 * Docker they skip, unless TASKHOST_REQUIRE_DOCKER=1 (CI), where a missing Docker is a failure.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import Dockerode from 'dockerode';

/** The open registry and the one with htpasswd auth. */
export const PLAIN_REGISTRY = '127.0.0.1:5000';
export const AUTH_REGISTRY = '127.0.0.1:5001';
export const REGISTRY_USER = 'taskhost';
export const REGISTRY_PASSWORD = 'taskhost-secret';

/** Local images, imported from busybox-static; their env has PATH=/bin and IMAGE_GREETING. */
export const BUSYBOX_IMAGE = 'busybox:1.35';
export const BUSYBOX_NEXT_IMAGE = 'busybox:1.36';
export const IMAGE_GREETING = 'IMAGE_GREETING=from-image';

/** busybox:1.35 as pushed to the registries. */
export const PLAIN_IMAGE = `${PLAIN_REGISTRY}/library/busybox:1.35`;
export const NESTED_IMAGE = `${PLAIN_REGISTRY}/team/tools/busybox:1.35`;
export const PRIVATE_IMAGE = `${AUTH_REGISTRY}/private/busybox:1.35`;

const setupHint = 'run `sudo scripts/docker-test-env.sh` to set it up';

/** Whether the engine answers a ping within two seconds. */
export async function dockerAvailable(docker: Dockerode = new Dockerode()): Promise<boolean> {
  return (await dockerProblem(docker)) === undefined;
}

/** What a test needs of tap to skip or fail. */
interface TestLike {
  plan(n: number, reason?: string): void;
  fail(message: string): unknown;
}

let environment: Promise<string | undefined> | undefined;

/**
 * A Docker client when the test environment is complete (engine, registries, test images).
 * Otherwise the test is skipped, or fails when TASKHOST_REQUIRE_DOCKER=1; then it returns
 * undefined and the test should return.
 */
export async function requireDocker(t: TestLike): Promise<Dockerode | undefined> {
  const docker = new Dockerode();
  environment ??= environmentProblem(docker);
  const problem = await environment;
  if (problem === undefined) return docker;
  if (process.env.TASKHOST_REQUIRE_DOCKER === '1') {
    t.fail(`TASKHOST_REQUIRE_DOCKER=1 but the Docker test environment is not ready: ${problem}; ${setupHint}`);
  } else {
    t.plan(0, `no Docker test environment (${problem}); ${setupHint}, or set TASKHOST_REQUIRE_DOCKER=1 to make this a failure`);
  }
  return undefined;
}

async function dockerProblem(docker: Dockerode): Promise<string | undefined> {
  try {
    // dockerode's ping takes an abortSignal; @types/dockerode does not say so.
    const ping = docker.ping.bind(docker) as unknown as (options: { abortSignal: AbortSignal }) => Promise<unknown>;
    await ping({ abortSignal: AbortSignal.timeout(2000) });
    return undefined;
  } catch (err) {
    return `the Docker engine does not answer: ${(err as Error).message}`;
  }
}

async function environmentProblem(docker: Dockerode): Promise<string | undefined> {
  const engine = await dockerProblem(docker);
  if (engine) return engine;
  for (const image of [BUSYBOX_IMAGE, BUSYBOX_NEXT_IMAGE]) {
    try {
      await docker.getImage(image).inspect();
    } catch {
      return `the test image ${image} is missing`;
    }
  }
  for (const [registry, expected] of [
    [PLAIN_REGISTRY, 200],
    [AUTH_REGISTRY, 401],
  ] as const) {
    const status = await fetch(`http://${registry}/v2/`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.status,
      () => 0,
    );
    if (status !== expected) return `the registry ${registry} answers ${status || 'nothing'}, not ${expected}`;
  }
  return undefined;
}

/** Removes image references (tags or digests), ignoring those that are not there. */
export async function removeImageRefs(docker: Dockerode, refs: string[]): Promise<void> {
  for (const ref of refs) {
    try {
      await docker.getImage(ref).remove();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
  }
}

/** Deletes `registry/repository:tag` from a registry of ours (they allow deletes); absent is fine. */
export async function deleteFromRegistry(ref: string): Promise<void> {
  const match = /^([^/]+)\/(.+):([^:/]+)$/.exec(ref);
  if (!match) throw new Error(`deleteFromRegistry wants registry/repository:tag, not ${ref}`);
  const [, registry, repository, tag] = match;
  const head = await fetch(`http://${registry}/v2/${repository}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
  });
  const digest = head.headers.get('docker-content-digest');
  if (head.status === 404 || !digest) return;
  const deleted = await fetch(`http://${registry}/v2/${repository}/manifests/${digest}`, { method: 'DELETE' });
  if (deleted.status !== 202 && deleted.status !== 404) throw new Error(`deleting ${ref} from its registry: HTTP ${deleted.status}`);
}

/** Whether the engine has an image (by reference or id). */
export async function imageExists(docker: Dockerode, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

/** Reads a dockerode progress stream to its end; rejects on an `error` line, which followProgress would not. */
export function followToEnd(docker: Dockerode, stream: NodeJS.ReadableStream): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err, output: Record<string, unknown>[]) => {
      const failed = output.find((line) => line.error !== undefined);
      if (err) reject(err);
      else if (failed) reject(new Error(String(failed.error)));
      else resolve(output);
    });
  });
}

/**
 * Pushes a fresh single-layer image (not runnable: one data file, no busybox) to the plain
 * registry as `127.0.0.1:5000/taskhost-test/<name>:<tag>`, then drops the local copy, so the
 * next pull downloads its layer. The layer holds the reference too, so it is this image's alone:
 * with one layer shared by every throwaway image, a pull that ran while another test held such an
 * image found the layer "Already exists" and downloaded nothing (no bytes to report progress of).
 */
export async function pushThrowawayImage(docker: Dockerode, name: string, tag: string): Promise<string> {
  const ref = `${PLAIN_REGISTRY}/taskhost-test/${name}:${tag}`;
  const layer = tarArchive([
    { name: 'payload.bin', content: pseudoRandomBytes(256 * 1024) },
    { name: 'image', content: Buffer.from(ref) },
  ]);
  await followToEnd(
    docker,
    await docker.importImage(Readable.from([layer]), {
      repo: `${PLAIN_REGISTRY}/taskhost-test/${name}`,
      tag,
      message: `throwaway test image ${tag}`,
      changes: ['ENV PATH=/bin', `ENV THROWAWAY=${tag}`],
    }),
  );
  // The engine wants an X-Registry-Auth header on a push even when the registry needs none.
  await followToEnd(docker, await docker.getImage(ref).push({ authconfig: { serveraddress: PLAIN_REGISTRY } }));
  await docker.getImage(ref).remove();
  return ref;
}

/** The same bytes on every call: a sha256 chain, which a registry cannot compress away. */
export function pseudoRandomBytes(size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update('taskhost').digest();
  for (let at = 0; at < size; at += block.length) {
    block.copy(out, at);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** A ustar archive of plain files (mode 0644, owner root, mtime 0), enough for a layer. */
export function tarArchive(files: { name: string; content: Buffer }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const file of files) {
    const header = Buffer.alloc(512);
    const field = (offset: number, length: number, value: string): void => void header.write(value, offset, length, 'ascii');
    const octal = (offset: number, length: number, value: number): void =>
      field(offset, length, value.toString(8).padStart(length - 1, '0'));
    field(0, 100, file.name);
    octal(100, 8, 0o644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, file.content.length);
    octal(136, 12, 0);
    field(156, 1, '0');
    field(257, 6, 'ustar');
    field(263, 2, '00');
    field(148, 8, ' '.repeat(8)); // the checksum is computed with its own field as spaces
    let sum = 0;
    for (const byte of header) sum += byte;
    field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    blocks.push(header, file.content, Buffer.alloc((512 - (file.content.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}
