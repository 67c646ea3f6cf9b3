/**
 * The Docker driver's image side: makes images present per a pull policy, pulls each image at
 * most once at a time however many tasks ask (Nomad's image coordinator), finds registry
 * credentials, and removes images some time after the last task using them is gone.
 */
import type Dockerode from 'dockerode';
import type { Readable } from 'node:stream';
import { formatDuration } from '../../shared/duration.js';
import { CancelledError, InvalidConfigError, PluginError, PluginShutdownError, TimeoutError } from '../../shared/errors.js';
import { isLatest, parseImageRef, type ImageRef } from '../../shared/image-ref.js';
import { daemonMessage } from './daemon-message.js';
import { ImageGarbageCollector } from './image-garbage-collector.js';
import type { EnsuredImage, EnsureImageOptions, ImageService, PullPolicy } from './image-manager.js';
import { PullFlight, type PulledImage } from './pull-flight.js';
import type { PullEvent } from './pull-progress-tracker.js';
import { registryAuthResolver, type RegistryAuth, type RegistryAuthConfig, type RegistryAuthResolver } from './registry-auth-resolver.js';

export type ImageServiceLogLevel = 'debug' | 'info' | 'warn';
export type ImageServiceLog = (level: ImageServiceLogLevel, message: string) => void;

/** Options of DockerImageService; every key is optional, the defaults are Nomad's. */
export interface DockerImageServiceOptions {
  /** A pull with no progress event for this long is aborted with a TimeoutError (default 2 min; 0: never). */
  pullActivityTimeoutMs?: number;
  /** A pull that takes longer than this in all is aborted with a TimeoutError (default 5 min; 0: never). */
  pullTimeoutMs?: number;
  /** Remove an image `delayMs` after its last user released it (default: enabled, 3 min). */
  gc?: { enabled?: boolean; delayMs?: number };
  /** Registry credentials: the plugin's `auth` config (a docker config.json and/or a credential helper), or a function. */
  auth?: RegistryAuthConfig | RegistryAuthResolver;
  /** Where the service says what it did (removed images, odd events); silent by default. */
  onLog?: ImageServiceLog;
  /** At most one progress report per caller per interval, plus the final one (default 250 ms). */
  progressIntervalMs?: number;
  /** Deadline for a short engine request: image inspect, image remove (default 30 s). */
  requestTimeoutMs?: number;
}

const policies: readonly PullPolicy[] = ['always', 'missing', 'never'];

export class DockerImageService implements ImageService {
  private readonly pullActivityTimeoutMs: number;
  private readonly pullTimeoutMs: number;
  private readonly progressIntervalMs: number;
  private readonly requestTimeoutMs: number;
  private readonly resolveAuth: RegistryAuthResolver | undefined;
  private readonly log: ImageServiceLog;
  private readonly gc: ImageGarbageCollector;
  private readonly flights = new Map<string, PullFlight>();
  private closed = false;

  constructor(
    private readonly docker: Dockerode,
    options: DockerImageServiceOptions = {},
  ) {
    this.pullActivityTimeoutMs = milliseconds(options, 'pullActivityTimeoutMs', 120_000);
    this.pullTimeoutMs = milliseconds(options, 'pullTimeoutMs', 300_000);
    this.progressIntervalMs = milliseconds(options, 'progressIntervalMs', 250);
    this.requestTimeoutMs = milliseconds(options, 'requestTimeoutMs', 30_000);
    const gc = options.gc ?? {};
    if (gc.enabled !== undefined && typeof gc.enabled !== 'boolean') {
      throw new InvalidConfigError('options.gc.enabled must be a boolean');
    }
    const gcDelayMs = milliseconds(gc, 'delayMs', 180_000, 'options.gc.');
    this.log = options.onLog ?? (() => {});
    this.resolveAuth = typeof options.auth === 'function' ? options.auth : options.auth ? registryAuthResolver(options.auth) : undefined;
    this.gc = new ImageGarbageCollector(docker, {
      enabled: gc.enabled ?? true,
      delayMs: gcDelayMs,
      requestTimeoutMs: this.requestTimeoutMs,
      log: this.log,
    });
  }

  async ensure(image: string, options: EnsureImageOptions): Promise<EnsuredImage> {
    if (this.closed) throw new PluginShutdownError(`the image service is closed: cannot ensure ${image}`);
    if (!policies.includes(options.policy)) {
      throw new InvalidConfigError(`pull policy "${String(options.policy)}" is not one of ${policies.join(', ')}`);
    }
    const ref = parseImageRef(image);
    const { signal } = options;
    if (signal?.aborted) throw cancelled(ref, signal);
    // Docker's rule: a mutable ":latest" is always re-pulled; "never" still means never.
    const policy = options.policy === 'missing' && isLatest(ref) ? 'always' : options.policy;
    // Joining a pull under way (even for "missing") keeps callers from racing a half-pulled image.
    if (policy === 'always' || (policy === 'missing' && this.flights.has(ref.reference))) {
      return this.pull(ref, options);
    }
    const present = await this.inspect(ref, signal, 'caller');
    if (present) return { reference: ref.reference, id: present.id, env: present.env, pulled: false };
    if (policy === 'never') {
      throw new PluginError(
        `image ${ref.familiar} is not present and the pull policy is "never": load it first (docker pull or docker load), or use the policy "missing"`,
        { details: { image: ref.reference, reason: 'not-present' } },
      );
    }
    return this.pull(ref, options);
  }

  acquire(imageId: string): void {
    this.gc.acquire(imageId);
  }

  release(imageId: string): void {
    this.gc.release(imageId);
  }

  /** Calls off pending image removals and aborts pulls under way; ensure() fails afterwards. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.gc.close();
    for (const flight of [...this.flights.values()]) flight.abort(new PluginShutdownError('the image service was closed during the pull'));
  }

  /** How many callers wait on the pull of `image` (0 when none is under way); for tests and diagnostics. */
  pullWaiters(image: string): number {
    return this.flights.get(parseImageRef(image).reference)?.waiting ?? 0;
  }

  /** The garbage collector's count of users of an image id. */
  imageUsers(imageId: string): number {
    return this.gc.usersOf(imageId);
  }

  private async pull(ref: ImageRef, options: EnsureImageOptions): Promise<EnsuredImage> {
    let flight = this.flights.get(ref.reference);
    if (!flight) {
      const started = new PullFlight({
        image: ref,
        activityTimeoutMs: this.pullActivityTimeoutMs,
        totalTimeoutMs: this.pullTimeoutMs,
        progressIntervalMs: this.progressIntervalMs,
        log: this.log,
        run: (signal, onEvent) => this.pullNow(ref, signal, onEvent),
        onSettled: () => {
          if (this.flights.get(ref.reference) === started) this.flights.delete(ref.reference);
        },
      });
      flight = started;
      this.flights.set(ref.reference, flight);
    }
    const image = await flight.join({ onProgress: options.onProgress, signal: options.signal });
    return { reference: ref.reference, id: image.id, env: image.env, pulled: true };
  }

  /** The pull itself: credentials, the engine's pull stream to its end, then the image's id and env. */
  private async pullNow(ref: ImageRef, signal: AbortSignal, onEvent: (event: PullEvent) => void): Promise<PulledImage> {
    const auth = this.resolveAuth ? await this.resolveAuth(ref.registry, signal) : undefined;
    signal.throwIfAborted();
    this.log('debug', `pulling ${ref.reference}${auth ? ` with credentials for ${ref.registry}` : ''}`);
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.pull(ref.reference, auth ? { authconfig: auth, abortSignal: signal } : { abortSignal: signal });
    } catch (err) {
      throw signal.aborted ? signal.reason : pullError(ref, err, auth);
    }
    await this.follow(ref, stream, signal, onEvent);
    const image = await this.inspect(ref, signal, 'pull');
    if (!image) {
      throw new PluginError(`pulling ${ref.familiar} ended, but the engine does not have the image: try again`, {
        recoverable: true,
        details: { image: ref.reference, reason: 'pull-incomplete' },
      });
    }
    return image;
  }

  /** Reads the pull stream to its end. followProgress reports errors inside the stream as success, so we look for them. */
  private follow(ref: ImageRef, stream: NodeJS.ReadableStream, signal: AbortSignal, onEvent: (event: PullEvent) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let failure: PullEvent | undefined;
      const stop = (): void => void (stream as Partial<Readable>).destroy?.();
      const onAbort = (): void => {
        stop();
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.docker.modem.followProgress(
        stream,
        (err) => {
          signal.removeEventListener('abort', onAbort);
          if (signal.aborted) reject(signal.reason);
          else if (failure) reject(streamError(ref, failure));
          else if (err) {
            reject(
              new PluginError(`pulling ${ref.familiar} failed: the engine's progress stream broke: ${err.message}`, {
                recoverable: true,
                cause: err,
                details: { image: ref.reference, reason: 'pull-failed' },
              }),
            );
          } else resolve();
        },
        (event: PullEvent) => {
          if (failure) return;
          if (event.error !== undefined || event.errorDetail !== undefined) {
            failure = event;
            stop();
            return;
          }
          onEvent(event);
        },
      );
    });
  }

  /**
   * The image's id and env, or undefined when the engine does not have it. A caller's signal
   * ends it with CancelledError; the pull's own signal with the pull's reason (a timeout, say).
   */
  private async inspect(ref: ImageRef, signal: AbortSignal | undefined, whose: 'caller' | 'pull'): Promise<PulledImage | undefined> {
    const deadline = AbortSignal.timeout(this.requestTimeoutMs);
    try {
      // dockerode's Image.inspect ignores abortSignal (lib/image.js), so we stop waiting instead.
      const info = await untilAborted(
        this.docker.getImage(ref.reference).inspect(),
        signal ? AbortSignal.any([signal, deadline]) : deadline,
      );
      return { id: info.Id, env: info.Config?.Env ?? [] };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      if (signal?.aborted) throw whose === 'pull' ? signal.reason : cancelled(ref, signal);
      if (deadline.aborted) {
        throw new TimeoutError(
          `the Docker engine did not answer an inspect of ${ref.familiar} within ${formatDuration(this.requestTimeoutMs)}`,
          {
            details: { image: ref.reference },
          },
        );
      }
      throw engineError(`inspecting image ${ref.familiar} failed`, ref, err);
    }
  }
}

function milliseconds<T extends object>(options: T, key: keyof T & string, fallback: number, prefix = 'options.'): number {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidConfigError(`${prefix}${key} must be a non-negative integer (milliseconds), not ${JSON.stringify(value)}`);
  }
  return value;
}

function cancelled(ref: ImageRef, signal: AbortSignal): CancelledError {
  return new CancelledError(`stopped waiting for image ${ref.familiar}`, { cause: signal.reason, details: { image: ref.reference } });
}

/** Resolves or rejects as `promise` does, or rejects with the signal's reason once it aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {}); // nobody waits for it any more: its failure is no one's to hear
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}

// The engine (20.10) answers a pull it may not make with HTTP 500 and these words, not 401.
const authFailure = /unauthorized|authentication required|no basic auth credentials|access to the resource is denied|denied:/i;

/** A pull the engine refused before streaming: unknown image, credentials, or something else. */
function pullError(ref: ImageRef, err: unknown, auth: RegistryAuth | undefined): Error {
  const status = (err as { statusCode?: number }).statusCode;
  const said = daemonMessage(err);
  if (status === 404) {
    return new PluginError(
      `image not found: ${ref.familiar} (the registry ${ref.registry} has no such repository, tag or digest: ${said})`,
      {
        cause: err,
        details: { image: ref.reference, reason: 'not-found', statusCode: status },
      },
    );
  }
  if (status === 401 || status === 403 || (status !== undefined && authFailure.test(said))) {
    const what = auth
      ? `the registry ${ref.registry} refused the credentials given for ${ref.familiar}`
      : `the registry ${ref.registry} wants credentials for ${ref.familiar} and none were found: set the Docker plugin's auth (a docker config file or a credential helper)`;
    return new PluginError(`${what} (${said})`, {
      cause: err,
      details: { image: ref.reference, reason: 'unauthorized', statusCode: status },
    });
  }
  return engineError(`pulling ${ref.familiar} failed`, ref, err);
}

/** Anything else the engine or the connection to it said: worth a retry. */
function engineError(what: string, ref: ImageRef, err: unknown): PluginError {
  const status = (err as { statusCode?: number }).statusCode;
  const code = (err as { code?: string }).code;
  const detail = status === undefined && code !== undefined ? `cannot reach the Docker engine (${code})` : daemonMessage(err);
  return new PluginError(`${what}: ${detail}`, {
    recoverable: true,
    cause: err,
    details: { image: ref.reference, reason: 'engine-error', ...(status === undefined ? {} : { statusCode: status }) },
  });
}

/** An `{error, errorDetail}` line in the pull stream. */
function streamError(ref: ImageRef, event: PullEvent): PluginError {
  const said = event.errorDetail?.message ?? event.error ?? 'unknown error';
  return new PluginError(`pulling ${ref.familiar} failed: ${said}`, {
    recoverable: true,
    details: { image: ref.reference, reason: 'pull-failed' },
  });
}
