/**
 * The agent's image records (design.md section 10, after balena-supervisor's image manager): the
 * images its docker tasks run, in the store's `images` collection, keyed by `name:tag@digest`,
 * with the engine's id and size, the ids of the tasks using each (`users`) and when it was last
 * used. Reference counts and GC deadlines are records, so an agent restart forgets neither.
 *
 * Why the agent, not the Docker driver, owns them: the driver runs in a plugin worker and sees
 * only its own calls; its GC counts users in memory, and a restart forgets them (Nomad has the
 * same gap). The agent already has the one crash-safe store (whose every write is an event) and
 * knows each task's life from submit to exit, restarts included; a second truth in a file of the
 * driver's would have to be mirrored into the store and could disagree with it. So the agent
 * records what a docker task's handle says it runs (`driverState.imageId`, `driverState.image`),
 * asks the engine itself (dockerode, at the endpoint the docker plugin is configured with) for
 * digest and size, and collects unused images. The docker plugin's `gc.image` and
 * `gc.imageDelay` keep their meaning but are applied here; the driver is handed `gc.image: false`
 * (agentDockerConfig), so two collectors never race.
 *
 * The engine is the truth: a record is written only once a task runs from the image (so the
 * engine has it); at start each record's name is looked up on the engine, and a record whose
 * image is gone is dropped (one whose id changed under the same digest gets the new id); GC
 * drops the record with the image. GC removes one name at a time (balena's rule: tags one by
 * one), never by id and never with force: an image with other names or containers stays.
 */
import path from 'node:path';
import type Dockerode from 'dockerode';
import { pino, type Logger } from 'pino';
import type { TaskHandle } from '../shared/driver.js';
import { parseDuration } from '../shared/duration.js';
import { parseImageRef, type ImageRef } from '../shared/image-ref.js';
import { compileSchema, parseWith } from '../shared/schema.js';
import { createDockerClient, resolveEndpoint } from '../drivers/docker/docker-client.js';
import { DockerConfig } from '../drivers/docker/docker-config.js';
import { daemonMessage } from '../drivers/docker/daemon-message.js';
import type { AgentConfig } from '../plugin-loader/agent-config.js';
import type { TaskChanges } from './reservations.js';
import type { AgentStore } from './store.js';
import type { ImageRecord, TaskRecord, Unstamped } from './store-records.js';
import { isTerminal } from './task-supervisor.js';

/** When unused images are removed: `delayMs` after their last user let go. */
export interface ImageGcPolicy {
  enabled: boolean;
  delayMs: number;
}

export interface ImageRecordsOptions {
  store: AgentStore;
  /** The live task handles (the DriverManager): a docker task's says which image it runs. */
  handles: { tasks(): TaskHandle[] };
  docker: Dockerode;
  gc: ImageGcPolicy;
  logger?: Logger;
  /** The driver whose tasks' images are recorded (default `docker`). */
  driver?: string;
  /** Deadline of one engine request (default 30 s). */
  requestTimeoutMs?: number;
}

/** The name of the built-in driver whose images the agent records. */
export const dockerDriverName = 'docker';

/** The longest a timer can wait in Node (about 24.8 days); a later deadline is re-armed. */
const maxTimerMs = 2 ** 31 - 1;

const validateDockerConfig = compileSchema<DockerConfig>(DockerConfig);

/**
 * The docker plugin's image GC policy and endpoint as the agent applies them, and the agent
 * config to hand the plugin loader: the same, but with the docker plugin's own `gc.image` off.
 * `hostsDocker`: whether the loader may start a docker driver with no entry in the config.
 */
export function agentDockerConfig(
  config: AgentConfig,
  hostsDocker: boolean,
): { loaderConfig: AgentConfig; gc: ImageGcPolicy; endpoint: string } {
  const entry = config.plugins[dockerDriverName];
  const given = entry?.config ?? {};
  // An invalid docker config fails the plugin at load, with its paths; the agent keeps the defaults.
  const checked = validateDockerConfig(given);
  const filled = checked.ok ? checked.value : parseWith(validateDockerConfig, {}, 'the docker defaults');
  const gc: ImageGcPolicy = { enabled: filled.gc.image, delayMs: parseDuration(filled.gc.imageDelay) };
  const endpoint = resolveEndpoint(filled.endpoint);
  if ((!entry && !hostsDocker) || !isObject(given)) return { loaderConfig: config, gc, endpoint };
  const givenGc = isObject(given.gc) ? given.gc : {};
  const docker = { ...(entry ?? { enabled: true }), config: { ...given, gc: { ...givenGc, image: false } } };
  return { loaderConfig: { ...config, plugins: { ...config.plugins, [dockerDriverName]: docker } }, gc, endpoint };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether one of the built-in plugin folders is the docker driver's. */
export function hostsDockerBuiltin(builtinDirs: readonly string[]): boolean {
  return builtinDirs.some((dir) => path.basename(dir) === dockerDriverName);
}

/** A dockerode client for the endpoint agentDockerConfig resolved. */
export function agentDockerClient(endpoint: string): Dockerode {
  return createDockerClient(endpoint);
}

interface EngineImage {
  id: string;
  sizeBytes: number;
  repoDigests: string[];
}

/** What a docker task's handle says about its image. */
interface TaskImage {
  namespace: string;
  taskId: string;
  imageId: string;
  image: string;
}

export class ImageRecords {
  readonly #store: AgentStore;
  readonly #handles: { tasks(): TaskHandle[] };
  readonly #docker: Dockerode;
  readonly #gc: ImageGcPolicy;
  readonly #log: Logger;
  readonly #driver: string;
  readonly #requestTimeoutMs: number;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #jobs = new Set<Promise<void>>();
  #changes: TaskChanges | undefined;
  #closed = false;

  constructor(options: ImageRecordsOptions) {
    this.#store = options.store;
    this.#handles = options.handles;
    this.#docker = options.docker;
    this.#gc = options.gc;
    this.#log = options.logger ?? pino({ level: 'warn' }, pino.destination(2));
    this.#driver = options.driver ?? dockerDriverName;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  /** Follows the tasks: a running one becomes its image's user, an ended one lets go. Call before the supervisor starts. */
  attach(changes: TaskChanges): void {
    this.#changes = changes;
    changes.on('changed', this.#onChanged);
  }

  /**
   * Brings the records in line with the engine and the tasks, after the supervisor recovered
   * them: records of images gone from the engine are dropped, users that ended are let go,
   * running tasks become users, and GC deadlines (last use + the delay in force) are armed; an
   * image due while the agent was down is collected now.
   */
  async start(): Promise<void> {
    let engineUp = true;
    for (const record of this.#store.images.list()) {
      try {
        await this.#checkAgainstEngine(record);
      } catch (err) {
        // Without the engine nothing can be known: keep the records, GC waits for the next start.
        this.#log.warn({ err: daemonMessage(err) }, 'cannot check the image records against the Docker engine');
        engineUp = false;
        break;
      }
    }
    await this.#dropEndedUsers();
    for (const task of this.#liveTaskImages()) await this.#use(task);
    for (const record of this.#store.images.list()) await this.#armGc(record, engineUp);
  }

  /** The records of a namespace, sorted by ref. */
  list(namespace: string): ImageRecord[] {
    return this.#store.images.list({ namespace });
  }

  /** Stops the GC timers and waits for the work under way; records stay as they are. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#changes?.off('changed', this.#onChanged);
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    while (this.#jobs.size) await Promise.all([...this.#jobs]);
  }

  readonly #onChanged = (record: TaskRecord): void => {
    if (record.driver !== this.#driver || this.#closed) return;
    if (record.state === 'running') {
      // Read now: the handle is gone once the task has exited and been destroyed.
      const task = this.#taskImage(record);
      if (task) this.#track(this.#use(task));
    } else if (isTerminal(record.state)) this.#track(this.#letGo(record.namespace, record.id));
  };

  /** The image a task's handle names, or undefined (no handle, or not a docker handle). */
  #taskImage(record: TaskRecord): TaskImage | undefined {
    const handle = this.#handles.tasks().find((h) => h.config.id === record.id);
    const state = handle?.driverState as { imageId?: unknown; image?: unknown } | undefined;
    if (typeof state?.imageId !== 'string' || typeof state.image !== 'string') return undefined;
    return { namespace: record.namespace, taskId: record.id, imageId: state.imageId, image: state.image };
  }

  /** Docker tasks that run now (recovered at start, say), with their images. */
  #liveTaskImages(): TaskImage[] {
    return this.#store.tasks
      .list()
      .filter((r) => r.driver === this.#driver && r.state === 'running')
      .flatMap((r) => this.#taskImage(r) ?? []);
  }

  /** Records the task as a user of its image, once the engine has confirmed the image. */
  async #use(task: TaskImage): Promise<void> {
    const known = this.#store.images
      .list({ namespace: task.namespace })
      .find((r) => r.id === task.imageId && r.users.includes(task.taskId));
    if (known) return;
    let image: EngineImage | undefined;
    try {
      image = await this.#inspect(task.imageId);
    } catch (err) {
      this.#log.warn(
        { taskId: task.taskId, image: task.image, err: daemonMessage(err) },
        'cannot record the image: the engine did not answer',
      );
      return;
    }
    if (!image) {
      this.#log.warn({ taskId: task.taskId, image: task.image }, 'the engine no longer has the image a task runs: not recorded');
      return;
    }
    const ref = parseImageRef(task.image);
    const digest = ref.digest ?? digestFor(ref, image.repoDigests);
    const key = recordRef(ref, digest);
    const now = new Date().toISOString();
    const written = await this.#store.transaction((tx) => {
      const current = tx.images.get(task.namespace, key);
      const owner = tx.tasks.get(task.namespace, task.taskId);
      // A task that ended before this write is no user, but the image is still one the engine has.
      const users = new Set(current?.users ?? []);
      if (owner && !isTerminal(owner.state)) users.add(task.taskId);
      const next: Unstamped<ImageRecord> = {
        ref: key,
        namespace: task.namespace,
        name: ref.familiar,
        id: image.id,
        ...(digest ? { digest } : {}),
        sizeBytes: image.sizeBytes,
        users: [...users].sort(),
        labels: current?.labels ?? {},
        lastUsedAt: now,
        ...(users.size === 0 && this.#gc.enabled ? { removeAfter: this.#deadline(now) } : {}),
      };
      return tx.images.put(next);
    });
    this.#schedule(written);
  }

  /** The task no longer uses any image: with no users left, an image's GC deadline starts. */
  async #letGo(namespace: string, taskId: string): Promise<void> {
    const now = new Date().toISOString();
    const written = await this.#store.transaction((tx) =>
      tx.images
        .list({ namespace })
        .filter((r) => r.users.includes(taskId))
        .map((r) =>
          tx.images.put(
            this.#withUsers(
              r,
              r.users.filter((u) => u !== taskId),
              now,
            ),
          ),
        ),
    );
    for (const record of written) this.#schedule(record);
  }

  /** Users whose task is gone or ended (while the agent was down) are let go. */
  async #dropEndedUsers(): Promise<void> {
    const written = await this.#store.transaction((tx) => {
      const out: ImageRecord[] = [];
      for (const record of tx.images.list()) {
        const ended = record.users
          .map((id) => [id, tx.tasks.get(record.namespace, id)] as const)
          .filter(([, t]) => !t || isTerminal(t.state));
        if (!ended.length) continue;
        // The last use is when the last of them ended, as far as the records say.
        const endedAt =
          ended
            .map(([, t]) => t?.completedAt ?? '')
            .sort()
            .at(-1) || new Date().toISOString();
        const gone = new Set(ended.map(([id]) => id));
        out.push(
          tx.images.put(
            this.#withUsers(
              record,
              record.users.filter((u) => !gone.has(u)),
              endedAt,
            ),
          ),
        );
      }
      return out;
    });
    if (written.length) this.#log.info({ images: written.map((r) => r.ref) }, 'let go of image users that ended while the agent was down');
  }

  #withUsers(record: ImageRecord, users: string[], now: string): Unstamped<ImageRecord> {
    if (users.length) return withDeadlineAt({ ...record, users }, undefined);
    return withDeadlineAt({ ...record, users, lastUsedAt: now }, this.#gc.enabled ? this.#deadline(now) : undefined);
  }

  /** Sets an unused record's deadline from its last use and the delay in force now, and arms it. */
  async #armGc(record: ImageRecord, engineUp: boolean): Promise<void> {
    if (record.users.length) return this.#schedule(record);
    const lastUsed = record.lastUsedAt ?? record.updatedAt;
    const due = this.#gc.enabled ? this.#deadline(lastUsed) : undefined;
    let current = record;
    if (due !== record.removeAfter) {
      const written = await this.#store.images.update(record.namespace, record.ref, (r) => (r.users.length ? r : withDeadlineAt(r, due)));
      if (!written) return;
      current = written;
    }
    if (engineUp) this.#schedule(current);
  }

  #deadline(from: string): string {
    return new Date(Date.parse(from) + this.#gc.delayMs).toISOString();
  }

  /** Arms (or disarms) the GC timer of a record. */
  #schedule(record: ImageRecord): void {
    const key = timerKey(record.namespace, record.ref);
    clearTimeout(this.#timers.get(key));
    this.#timers.delete(key);
    if (this.#closed || record.users.length || !record.removeAfter || !this.#gc.enabled) return;
    const wait = Math.min(Math.max(0, Date.parse(record.removeAfter) - Date.now()), maxTimerMs);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.#track(this.#collect(record.namespace, record.ref));
    }, wait);
    // A pending removal alone must not keep the process alive; close() clears it anyway.
    timer.unref();
    this.#timers.set(key, timer);
  }

  /** Removes an unused image whose deadline passed (its name, from the engine) and its record. */
  async #collect(namespace: string, ref: string): Promise<void> {
    const record = this.#store.images.get(namespace, ref);
    if (!record || record.users.length || !record.removeAfter) return;
    if (Date.parse(record.removeAfter) > Date.now()) return this.#schedule(record);
    const target = parseImageRef(record.name).reference;
    if (this.#wanted(target)) {
      // A task on its way to using it: not now; it becomes a user once it runs.
      const later = await this.#store.images.update(namespace, ref, (r) => ({
        ...r,
        removeAfter: this.#deadline(new Date().toISOString()),
      }));
      if (later) this.#schedule(later);
      return;
    }
    // Another namespace's record of the same name keeps the name on the engine.
    const shared = this.#store.images
      .list()
      .some((r) => !(r.namespace === namespace && r.ref === ref) && parseImageRef(r.name).reference === target);
    if (!shared) {
      const outcome = await this.#removeName(target, record.id);
      if (outcome === 'kept') {
        const kept = await this.#store.images.update(namespace, ref, (r) => withDeadlineAt(r, undefined));
        if (kept) this.#schedule(kept);
        return;
      }
      if (outcome === 'failed') {
        const later = await this.#store.images.update(namespace, ref, (r) => ({
          ...r,
          removeAfter: this.#deadline(new Date().toISOString()),
        }));
        if (later) this.#schedule(later);
        return;
      }
    }
    await this.#store.transaction((tx) => {
      const now = tx.images.get(namespace, ref);
      if (now && now.users.length === 0) tx.images.delete(namespace, ref);
    });
  }

  /** Whether a task that has not ended yet names this image (one still pending, say). */
  #wanted(reference: string): boolean {
    return this.#store.tasks.list().some((t) => {
      if (t.driver !== this.#driver || isTerminal(t.state)) return false;
      const image = (t.spec.config as { image?: unknown } | undefined)?.image;
      if (typeof image !== 'string') return false;
      try {
        return parseImageRef(image).reference === reference;
      } catch {
        return false;
      }
    });
  }

  /**
   * Untags `name` on the engine, unless it now names another image than `id` (a moved tag is
   * not ours to remove). `removed` also when the engine had it no more; `kept` when the engine
   * refused (a container uses it); `failed` when the engine did not answer.
   */
  async #removeName(name: string, id: string): Promise<'removed' | 'kept' | 'failed'> {
    try {
      const now = await this.#inspect(name);
      if (!now) return 'removed';
      if (now.id !== id) {
        this.#log.info({ image: name, recorded: id, now: now.id }, 'the name moved to another image: only the record is dropped');
        return 'removed';
      }
      // No force: with force the engine would delete the image under a stopped container.
      await this.#docker.getImage(name).remove({ abortSignal: AbortSignal.timeout(this.#requestTimeoutMs) });
      this.#log.info({ image: name, id }, `removed image ${name}: unused for ${this.#gc.delayMs} ms`);
      return 'removed';
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 404) return 'removed';
      if (status === 409) {
        this.#log.info({ image: name }, `kept image ${name}: ${daemonMessage(err)}`);
        return 'kept';
      }
      this.#log.warn({ image: name, err: daemonMessage(err) }, `could not remove image ${name}`);
      return 'failed';
    }
  }

  /** The engine's view of a record's name: dropped when gone, the id filled in when its digest still names it. */
  async #checkAgainstEngine(record: ImageRecord): Promise<void> {
    const ref = parseImageRef(record.name);
    const image = await this.#inspect(ref.reference);
    const sameDigest = image !== undefined && record.digest !== undefined && digestFor(ref, image.repoDigests) === record.digest;
    if (!image || (image.id !== record.id && !sameDigest)) {
      this.#log.info({ image: record.ref }, 'the engine no longer has the image: its record is dropped');
      await this.#store.images.delete(record.namespace, record.ref);
      return;
    }
    if (image.id === record.id && image.sizeBytes === record.sizeBytes) return;
    await this.#store.images.update(record.namespace, record.ref, (r) => ({ ...r, id: image.id, sizeBytes: image.sizeBytes }));
  }

  /** The engine's image for a name or id, or undefined when it has none. */
  async #inspect(nameOrId: string): Promise<EngineImage | undefined> {
    try {
      // dockerode's Image.inspect ignores abortSignal: stop waiting instead.
      const info = await withDeadline(this.#docker.getImage(nameOrId).inspect(), this.#requestTimeoutMs, `inspect of image ${nameOrId}`);
      return { id: info.Id, sizeBytes: info.Size, repoDigests: info.RepoDigests ?? [] };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  #track(job: Promise<void>): void {
    const tracked = job.catch((err: unknown) => this.#log.error({ err }, 'image record job failed'));
    this.#jobs.add(tracked);
    void tracked.finally(() => this.#jobs.delete(tracked));
  }
}

/** `name:tag@digest` (or `name@digest` for a reference pinned without a tag; `name:tag` when the engine knows no digest). */
export function recordRef(ref: ImageRef, digest: string | undefined): string {
  return `${ref.name}${ref.tag !== undefined ? `:${ref.tag}` : ''}${digest ? `@${digest}` : ''}`;
}

/** The digest the engine has for the reference's repository, if any. */
function digestFor(ref: ImageRef, repoDigests: readonly string[]): string | undefined {
  for (const entry of repoDigests) {
    try {
      const parsed = parseImageRef(entry);
      if (parsed.name === ref.name && parsed.digest) return parsed.digest;
    } catch {
      // An entry we cannot parse names no repository of ours.
    }
  }
  return undefined;
}

/** The record with this GC deadline, or none. */
function withDeadlineAt(record: ImageRecord, due: string | undefined): Unstamped<ImageRecord> {
  const { removeAfter: _, ...rest } = record;
  return due === undefined ? rest : { ...rest, removeAfter: due };
}

function timerKey(namespace: string, ref: string): string {
  return `${namespace}\0${ref}`;
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the Docker engine did not answer the ${what} within ${ms} ms`)), ms);
  });
  promise.catch(() => undefined); // once the deadline won, its outcome is nobody's to hear
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
