/** A fake Docker engine for the image service's tests, and the credential-helper fixtures they share. */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import Dockerode from 'dockerode';
import { DockerImageService, type DockerImageServiceOptions } from '../../drivers/docker/docker-image-service.js';
import { AUTH_REGISTRY, REGISTRY_PASSWORD, REGISTRY_USER } from './docker.js';

// ------------------------------------------------------------------------------------------
// A fake engine

export interface ImageRecord {
  Id: string;
  Config: { Env: string[] | null };
}

export interface FakePull {
  ref: string;
  authconfig: unknown;
  signal: AbortSignal;
  stream: PassThrough;
  /** Writes pull events as the engine would, one JSON line each. */
  send(...events: object[]): void;
  /** Writes the usual events of a one-layer pull, then ends: the image is then present. */
  complete(): void;
}

export function engineError(statusCode: number | undefined, message: string, extra: object = {}): Error {
  const text = statusCode === undefined ? message : `(HTTP code ${statusCode}) unexpected - ${message} `;
  return Object.assign(new Error(text), statusCode === undefined ? {} : { statusCode, json: null }, extra);
}

export function fakeEngine() {
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
    options.abortSignal.addEventListener('abort', () => stream.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })), {
      once: true,
    });
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

export function service(
  t: { teardown(fn: () => void): void },
  docker: Dockerode,
  options: DockerImageServiceOptions = {},
): DockerImageService {
  const s = new DockerImageService(docker, { progressIntervalMs: 0, ...options });
  t.teardown(() => s.close());
  return s;
}

export const REF = 'docker.io/library/busybox:1.35';

/** Waits until `check()` holds, polling; fails the wait after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await delay(10);
  }
}

export function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-auth-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Puts a docker-credential-<name> script on PATH for the test. */
export function credentialHelper(t: { teardown(fn: () => void): void }, name: string, script: string): void {
  const dir = tempDir(t);
  const file = path.join(dir, `docker-credential-${name}`);
  writeFileSync(file, `#!/bin/sh\n${script}\n`);
  chmodSync(file, 0o755);
  const before = process.env.PATH;
  process.env.PATH = `${dir}${path.delimiter}${before ?? ''}`;
  t.teardown(() => void (process.env.PATH = before));
}

export const basic = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64');

/** A helper that knows one server, as docker-credential-helpers stores do. */
export const knowsAuthRegistry = `read server
if [ "$server" = "${AUTH_REGISTRY}" ]; then
  printf '{"ServerURL":"%s","Username":"${REGISTRY_USER}","Secret":"${REGISTRY_PASSWORD}"}' "$server"
elif [ "$server" = "https://index.docker.io/v1/" ]; then
  printf '{"ServerURL":"%s","Username":"<token>","Secret":"hub-token"}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi`;
