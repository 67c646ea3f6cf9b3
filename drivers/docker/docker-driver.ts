/**
 * The docker driver, built in: each task is one container of the local Docker Engine, labelled
 * as taskhost's, created from the image reference the user wrote (so `docker ps` shows
 * `busybox:1.35`, not an id). Containers outlive the driver: after a restart recoverTask finds
 * them again by id, and a reconciler removes labelled containers that no task owns any more.
 * Images come from an ImageService (pulls, auth, reference-counted GC), which this file only uses.
 */
import { mkdir } from 'node:fs/promises';
import type Docker from 'dockerode';
import {
  signalNumber,
  type DriverCapabilities,
  type DriverFingerprint,
  type DriverPlugin,
  type ExecResult,
  type ExitResult,
  type TaskConfig,
  type TaskEvent,
  type TaskHandle,
  type TaskResourceUsage,
  type TaskStatus,
} from '../../shared/driver.js';
import { parseDuration } from '../../shared/duration.js';
import {
  InvalidConfigError,
  PluginError,
  TaskExistsError,
  TaskNotFoundError,
  TaskNotRunningError,
  TaskRunningError,
  TimeoutError,
  type TaskhostError,
} from '../../shared/errors.js';
import { EventHub } from '../../shared/event-hub.js';
import { parseImageRef } from '../../shared/image-ref.js';
import type { PluginInfo, SetConfigRequest } from '../../shared/plugin.js';
import { compileSchema, parseWith } from '../../shared/schema.js';
import { createDockerClient, resolveEndpoint, shortCall, socketPathOf } from './docker-client.js';
import { DockerConfig, DockerTaskConfig, labelPrefix } from './docker-config.js';
import { daemonMessage } from './daemon-message.js';
import { dockerStatus, isNotFound, isNotRunning, isUnreachable } from './docker-errors.js';
import { DockerFingerprint } from './docker-fingerprint.js';
import { checkPolicy, containerSpec, taskLabels } from './container-spec.js';
import { execInContainer } from './container-exec.js';
import { toResourceUsage, type EngineCpuStats, type EngineStats } from './container-stats.js';
import { logFileTimes } from './container-logs.js';
import { ContainerTask, isoTime, type DriverState } from './container-task.js';
import { waitContainer } from './container-wait.js';
import { reconcileDangling, type ReconcileResult } from './dangling-reconciler.js';
import type { EnsuredImage, ImageService, PullProgress } from './image-manager.js';
import { closingController, pause } from '../../shared/pause.js';

const version = '0.1.0';

/** The version of the driverState layout in task handles. */
const handleVersion = 1;

/** How long a container may take to die after SIGKILL before stop gives up. */
const killWaitMs = 10_000;

/** The least memory limit the Engine accepts (6 MiB, in the task spec's MB). */
const minMemoryMB = 6;

const validateConfig = compileSchema<DockerConfig>(DockerConfig);
const validateTaskConfig = compileSchema<DockerTaskConfig>(DockerTaskConfig);

/** Builds the image side for a client and config; `log` is the driver's own. */
export type ImageServiceFactory = (docker: Docker, config: DockerConfig, log: (message: string) => void) => ImageService;

export interface DockerDriverOptions {
  imageService: ImageServiceFactory;
  /** Where the driver's own messages go (the host logs a plugin's stderr). */
  log?: (message: string) => void;
}

export class DockerDriver implements DriverPlugin<DockerConfig> {
  #config: DockerConfig = parseWith(validateConfig, {}, 'docker driver config');
  #endpoint = resolveEndpoint(undefined);
  /** The agent's data directory, which scopes the reconciler to this agent's containers. */
  #agentDir: string | undefined;
  #docker: Docker | undefined;
  #images: ImageService | undefined;
  #fingerprint: DockerFingerprint | undefined;
  readonly #options: DockerDriverOptions;
  readonly #log: (message: string) => void;
  readonly #tasks = new Map<string, ContainerTask>();
  /** Ids between the duplicate check and the task being tracked (a pull may take minutes). */
  readonly #starting = new Set<string>();
  readonly #events = new EventHub<TaskEvent>();
  /** Ends every stream, wait and timer when the driver shuts down. */
  readonly #closing = closingController();
  #reconcileTimer: NodeJS.Timeout | undefined;
  /** When this driver (this worker) started: the reconciler's grace counts from here too. */
  readonly #upSince = Date.now();

  constructor(options: DockerDriverOptions) {
    this.#options = options;
    this.#log = options.log ?? ((message) => process.stderr.write(`docker driver: ${message}\n`));
  }

  info(): PluginInfo {
    return { type: 'driver', name: 'docker', pluginVersion: version, apiVersions: ['1.0'] };
  }

  configSchema(): typeof DockerConfig {
    return DockerConfig;
  }

  /** Takes the config and builds the clients; connects to nothing. */
  setConfig(request: SetConfigRequest<DockerConfig>): void {
    const config = parseWith(validateConfig, request.config ?? {}, 'docker driver config');
    const forged = Object.keys(config.extraLabels).filter((key) => key.startsWith(labelPrefix));
    if (forged.length) {
      const issues = forged.map((key) => ({
        path: `/extraLabels/${key}`,
        message: `labels under "${labelPrefix}" are set by taskhost itself`,
      }));
      throw new InvalidConfigError(`docker driver config is invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, {
        details: { errors: issues },
      });
    }
    this.#config = config;
    this.#agentDir = request.agent?.dataDir;
    this.#endpoint = resolveEndpoint(config.endpoint);
    this.#images?.close();
    this.#docker = createDockerClient(this.#endpoint);
    this.#images = this.#options.imageService(this.#docker, config, this.#log);
    // Called again with tasks running (a config reload), the new image service must know
    // which images they use, or its GC could remove one from under them.
    for (const task of this.#tasks.values()) this.#images.acquire(task.state.imageId);
    this.#fingerprint = new DockerFingerprint(this.#docker, this.#endpoint);
  }

  /** Starts the dangling-container reconciler: once now (see reconcile for the grace), then every reconcileInterval. */
  init(): void {
    if (!this.#config.gc.container) return;
    const run = () => {
      this.reconcile().catch((err: unknown) => {
        // An Engine that is away is the fingerprint's news, not the reconciler's.
        if (!isUnreachable(err)) this.#log(`dangling container check failed: ${daemonMessage(err)}`);
      });
    };
    clearInterval(this.#reconcileTimer);
    this.#reconcileTimer = setInterval(run, parseDuration(this.#config.gc.reconcileInterval)).unref();
    run();
  }

  taskConfigSchema(): typeof DockerTaskConfig {
    return DockerTaskConfig;
  }

  capabilities(): DriverCapabilities {
    return { sendSignals: true, exec: true, fsIsolation: 'image', networkModes: ['none', 'host'], mounts: true };
  }

  async *fingerprint(signal: AbortSignal): AsyncGenerator<DriverFingerprint> {
    const stop = AbortSignal.any([signal, this.#closing.signal]);
    const interval = parseDuration(this.#config.fingerprintInterval);
    const probe = this.#probe();
    while (!stop.aborted) {
      yield await probe.probe(stop);
      await pause(interval, stop);
    }
  }

  /**
   * The task against this driver's policy: its config (defaults filled), its image reference,
   * and what the plugin config allows (volumes, privileged, capabilities, reserved labels).
   * Nothing is pulled or created; the Engine is not asked.
   */
  validateTask(cfg: TaskConfig): void {
    this.#admit(cfg);
  }

  async startTask(cfg: TaskConfig, signal?: AbortSignal): Promise<{ handle: TaskHandle }> {
    // Reserved synchronously, so a second start of the same id cannot slip in during the pull.
    if (this.#tasks.has(cfg.id) || this.#starting.has(cfg.id)) throw new TaskExistsError(`docker already has a task "${cfg.id}"`);
    this.#starting.add(cfg.id);
    try {
      return await this.#start(cfg, signal);
    } finally {
      this.#starting.delete(cfg.id);
    }
  }

  async waitTask(taskId: string, signal?: AbortSignal): Promise<ExitResult> {
    return this.#task(taskId).wait(signal);
  }

  /**
   * Sends the kill signal (the argument, else the container's StopSignal, else SIGTERM), waits up
   * to `timeoutMs`, then sends SIGKILL; resolves once the container has exited.
   */
  async stopTask(taskId: string, timeoutMs: number, killSignal?: string): Promise<void> {
    const task = this.#task(taskId);
    if (!task.running) return;
    const name = killSignal ?? (await this.#stopSignalOf(task));
    checkSignal(name);
    this.#emit(task.config, `stop requested: sending ${name}, SIGKILL after ${timeoutMs}ms`, { signal: name });
    if ((await this.#kill(task, name)) && !(await task.exitedWithin(timeoutMs))) {
      this.#emit(task.config, `task did not exit within ${timeoutMs}ms of ${name}: sending SIGKILL`, { signal: 'SIGKILL' });
      await this.#kill(task, 'SIGKILL');
    }
    if (!(await task.exitedWithin(killWaitMs))) {
      throw new TimeoutError(`container ${task.state.containerName} of task "${taskId}" did not exit within ${killWaitMs}ms of SIGKILL`);
    }
  }

  /** Removes the container (unless gc.container is off), releases the image and forgets the task. */
  async destroyTask(taskId: string, force: boolean): Promise<void> {
    const task = this.#task(taskId);
    if (task.running) {
      // `!== true`: a missing force must not read as the (truthy) AbortSignal that follows it.
      if (force !== true) throw new TaskRunningError(`task "${taskId}" is still running: stop it first, or destroy it with force`);
      // Killed first, so anyone waiting on the task gets its real exit rather than "removed".
      if (await this.#kill(task, 'SIGKILL')) await task.exitedWithin(killWaitMs);
    }
    if (this.#config.gc.container) await removeContainer(task.container);
    task.close();
    this.#tasks.delete(taskId);
    // The image service removes it later if gc.image is on and no other task uses it.
    this.#imageService().release(task.state.imageId);
  }

  async inspectTask(taskId: string): Promise<TaskStatus> {
    const task = this.#task(taskId);
    let info: Docker.ContainerInspectInfo | undefined;
    try {
      info = await task.container.inspect({ abortSignal: shortCall() });
    } catch (err) {
      // Gone or out of reach: say what this driver knows rather than fail.
      if (!isNotFound(err) && !isUnreachable(err)) throw engineError(`cannot inspect container ${task.state.containerName}`, err);
    }
    let exitResult = task.result;
    if (exitResult === undefined && info && !info.State.Running) exitResult = task.exitResultOf(info.State);
    const status: TaskStatus = {
      id: task.config.id,
      name: task.config.name,
      state: exitResult ? 'exited' : info?.State.Running ? 'running' : 'unknown',
      startedAt: isoTime(info?.State.StartedAt) ?? task.startedAt,
      driverAttributes: {
        containerId: task.state.containerId,
        containerName: task.state.containerName,
        image: task.state.image,
        imageId: task.state.imageId,
      },
    };
    if (exitResult) status.exitResult = exitResult;
    const completedAt = task.completedAt ?? (exitResult ? isoTime(info?.State.FinishedAt) : undefined);
    if (completedAt) status.completedAt = completedAt;
    return status;
  }

  /**
   * Finds the container again by id: running, it is watched and followed; exited, its exit is
   * recorded. The host's intent handle (`driverState: null`: the host died while a start was in
   * flight) is found by the task's label instead; see #recoverStart.
   */
  async recoverTask(handle: TaskHandle): Promise<void> {
    if (typeof handle?.config?.id !== 'string') throw invalid('/config', 'the task handle has no task config');
    const cfg = handle.config;
    if (this.#tasks.has(cfg.id) || this.#starting.has(cfg.id)) return;
    if (handle.driverState === null) return this.#recoverStart(cfg);
    if (handle.version !== handleVersion) {
      throw invalid('/version', `docker cannot recover a task handle of version ${handle.version}; it writes version ${handleVersion}`);
    }
    const state = driverState(handle.driverState);
    const container = this.#client().getContainer(state.containerId);
    let info: Docker.ContainerInspectInfo;
    try {
      info = await container.inspect({ abortSignal: shortCall() });
    } catch (err) {
      if (isNotFound(err)) {
        throw new TaskNotFoundError(
          `task "${cfg.id}" is lost: its container ${state.containerName} (${state.containerId.slice(0, 12)}) no longer exists; it was removed outside taskhost`,
        );
      }
      throw engineError(`cannot recover task "${cfg.id}"`, err);
    }
    await this.#adopt(container, cfg, state, info);
  }

  /**
   * A start that was in flight when the host died: the task's container is found by its task id
   * label. One that ran (running, or exited since) is adopted as recoverTask adopts any; one
   * that was created but never started is removed and the task reported not found, so the host
   * records the start as cancelled: a task whose start was interrupted before its container
   * started is never started later by a recovery (nobody could tell when it would run), and
   * never twice. No container at all: TaskNotFoundError. (A create the Engine was still doing
   * when the host died may finish after this look: that container never starts, and the
   * reconciler removes it.)
   */
  async #recoverStart(cfg: TaskConfig): Promise<void> {
    const docker = this.#client();
    const labels = [`${taskLabels.taskId}=${cfg.id}`, `${taskLabels.managed}=true`, `${taskLabels.driver}=docker`];
    if (this.#agentDir !== undefined) labels.push(`${taskLabels.agent}=${this.#agentDir}`);
    let listed: Docker.ContainerInfo[];
    try {
      listed = await docker.listContainers({
        all: true,
        filters: { label: labels },
        abortSignal: shortCall(),
      } as Docker.ContainerListOptions);
    } catch (err) {
      throw engineError(`cannot look for the container of task "${cfg.id}"`, err);
    }
    // Checked again here: some Engines have ignored label filters.
    const ours = listed.filter((c) => c.Labels?.[taskLabels.taskId] === cfg.id && c.Labels?.[taskLabels.managed] === 'true');
    const created = ours.filter((c) => c.State === 'created');
    for (const c of created) {
      await removeContainer(docker.getContainer(c.Id));
      this.#emit(cfg, `removed container ${containerLabel(c)}: it was created but never started when the host stopped`, {
        containerId: c.Id,
      });
    }
    // The container's name comes from the task id, so the Engine holds at most one that ran.
    const ran = ours.find((c) => c.State !== 'created');
    if (!ran) {
      throw new TaskNotFoundError(
        created.length
          ? `task "${cfg.id}" was not started: its container was created but never started when the host stopped; it was removed`
          : `task "${cfg.id}" was not started: no container carries its label (its start was interrupted before the Engine created one)`,
      );
    }
    const container = docker.getContainer(ran.Id);
    let info: Docker.ContainerInspectInfo;
    try {
      info = await container.inspect({ abortSignal: shortCall() });
    } catch (err) {
      if (isNotFound(err))
        throw new TaskNotFoundError(`task "${cfg.id}" is lost: its container ${containerLabel(ran)} was removed meanwhile`);
      throw engineError(`cannot recover task "${cfg.id}"`, err);
    }
    const state: DriverState = {
      containerId: info.Id,
      containerName: info.Name.replace(/^\//, ''),
      imageId: info.Image,
      image: info.Config.Image,
    };
    await this.#adopt(container, cfg, state, info);
  }

  /** Tracks a container found again: running, it is watched and followed; exited, its exit is recorded. */
  async #adopt(container: Docker.Container, cfg: TaskConfig, state: DriverState, info: Docker.ContainerInspectInfo): Promise<void> {
    if (this.#tasks.has(cfg.id)) return; // recovered by a concurrent call meanwhile
    const task = this.#track(container, cfg, state, info.State.StartedAt);
    this.#imageService().acquire(state.imageId);
    // Only lines newer than what the last instance wrote to each file, so none is written twice.
    const since = await logFileTimes(cfg);
    if (info.State.Running) {
      task.copyLogs({ follow: true, since });
      task.watch();
    } else {
      task.copyLogs({ follow: false, since });
      await task.finish(info.State);
    }
    this.#emit(cfg, `recovered: container ${state.containerName} (${info.State.Running ? 'running' : 'exited'})`, {
      containerId: state.containerId,
    });
  }

  /** The Engine's samples (one a second), at most one every `intervalMs`, until the task exits. */
  async *taskStats(taskId: string, intervalMs: number, signal: AbortSignal): AsyncGenerator<TaskResourceUsage> {
    const task = this.#task(taskId);
    if (!(intervalMs > 0)) throw invalid('', `the stats interval must be a positive number of ms, got ${intervalMs}`);
    const stop = AbortSignal.any([signal, task.exitSignal, this.#closing.signal]);
    let previous: EngineCpuStats | undefined;
    let lastAt = -Infinity;
    let delay = 250;
    while (!stop.aborted) {
      try {
        for await (const sample of statsSamples(task.container, stop)) {
          delay = 250;
          const now = performance.now();
          if (now - lastAt < intervalMs - 50) continue; // 50ms slack for the Engine's jitter
          yield toResourceUsage(taskId, sample, previous);
          previous = sample.cpu_stats;
          lastAt = now;
        }
      } catch (err) {
        if (stop.aborted || isNotFound(err) || isNotRunning(err)) return;
        // A stats error is retried, not the end of the stream: the Engine may be restarting.
      }
      await pause(delay, stop);
      delay = Math.min(delay * 2, 10_000);
    }
  }

  taskEvents(signal: AbortSignal): AsyncIterable<TaskEvent> {
    return this.#events.subscribe(AbortSignal.any([signal, this.#closing.signal]));
  }

  async signalTask(taskId: string, signal: string): Promise<void> {
    checkSignal(signal);
    const task = this.#task(taskId);
    if (!task.running) throw notRunning(taskId, `send ${signal} to`);
    if (!(await this.#kill(task, signal))) throw notRunning(taskId, `send ${signal} to`);
    this.#emit(task.config, `sent ${signal}`, { signal });
  }

  async execTask(taskId: string, command: string[], timeoutMs: number, signal?: AbortSignal): Promise<ExecResult> {
    if (!Array.isArray(command) || command.length === 0 || !command[0]) {
      throw invalid('/command', 'exec needs a command: a non-empty list, program first');
    }
    const task = this.#task(taskId);
    if (!task.running) throw notRunning(taskId, 'exec in');
    try {
      return await execInContainer(task.container, command, {
        timeoutMs,
        signal,
        localEngine: socketPathOf(this.#endpoint) !== undefined,
      });
    } catch (err) {
      if (dockerStatus(err) === 409) throw notRunning(taskId, 'exec in');
      if (dockerStatus(err) !== undefined) throw engineError(`cannot exec in task "${taskId}"`, err);
      throw err;
    }
  }

  /**
   * Removes containers that carry this driver's labels but belong to no task it tracks, once
   * they are older than gc.danglingGrace and this driver has run that long too; with gc.dryRun
   * only reports them. `now` lets tests move the clock.
   */
  async reconcile(options: { now?: number } = {}): Promise<ReconcileResult> {
    const { gc } = this.#config;
    const graceMs = parseDuration(gc.danglingGrace);
    const now = options.now ?? Date.now();
    // Without the agent's identity, containers of other agents could not be told apart. And a
    // driver that has just started has not been asked to recover its tasks yet: after an agent
    // down longer than the grace, every container would look dangling.
    if (this.#agentDir === undefined || now - this.#upSince < graceMs) return { removed: [], wouldRemove: [] };
    const result = await reconcileDangling(this.#client(), {
      agentDir: this.#agentDir,
      isTracked: (taskId) => this.#tasks.has(taskId) || this.#starting.has(taskId),
      graceMs,
      dryRun: gc.dryRun,
      now,
      signal: this.#closing.signal,
    });
    for (const c of result.wouldRemove)
      this.#log(`dry run: would remove dangling container ${c.name} (${c.id.slice(0, 12)}) of task "${c.taskId}", created ${c.createdAt}`);
    for (const c of result.removed)
      this.#log(`removed dangling container ${c.name} (${c.id.slice(0, 12)}) of task "${c.taskId}", created ${c.createdAt}`);
    return result;
  }

  /** Stops watching, following and timers; the containers keep running, to be recovered. */
  shutdown(): void {
    this.#closing.abort();
    clearInterval(this.#reconcileTimer);
    for (const task of this.#tasks.values()) task.close();
    this.#images?.close();
  }

  async #start(cfg: TaskConfig, signal: AbortSignal | undefined): Promise<{ handle: TaskHandle }> {
    // Checked again (the host did, but the plugin config may have changed since, and tests call
    // this directly): a task the config refuses must not cost a pull.
    const config = this.#admit(cfg);
    const image = await this.#ensureImage(cfg, config, signal);
    // Held from here, so GC cannot remove the image between this check and the create.
    this.#imageService().acquire(image.id);
    const friendly = parseImageRef(image.reference).familiar;
    let container: Docker.Container | undefined;
    try {
      const spec = containerSpec({
        task: cfg,
        config,
        plugin: this.#config,
        image: friendly,
        imageEnv: image.env,
        agentDir: this.#agentDir,
      });
      // Bind mounts need their sources; the host made them, but a direct caller may not have.
      await Promise.all([cfg.allocDir, cfg.taskDir, cfg.secretsDir].map((dir) => mkdir(dir, { recursive: true })));
      container = await this.#create(cfg, spec);
      const state: DriverState = { containerId: container.id, containerName: spec.name!, imageId: image.id, image: friendly };
      this.#emit(cfg, `created container ${state.containerName} from ${friendly}`, { containerId: container.id, image: friendly });

      // Armed before start, so even a container that exits in a millisecond has its exit seen.
      const abort = new AbortController();
      const armed = { abort, wait: waitContainer(container, 'next-exit', abort.signal) };
      armed.wait.catch(() => undefined);
      try {
        await container.start({ abortSignal: shortCall(signal) });
      } catch (err) {
        armed.abort.abort();
        throw startError(cfg, config, err);
      }
      const task = this.#track(container, cfg, state, new Date().toISOString());
      task.copyLogs({ follow: true });
      task.watch(armed);
      this.#emit(cfg, `started container ${state.containerName}`, { containerId: container.id });
      return { handle: { version: handleVersion, config: cfg, state: 'running', driverState: state } };
    } catch (err) {
      // No leaks: a container that will never be a task is removed, its image released.
      if (container) await removeContainer(container).catch(() => undefined);
      this.#imageService().release(image.id);
      throw err;
    }
  }

  /** validateTask's checks; the task's config with its defaults filled. */
  #admit(cfg: TaskConfig): DockerTaskConfig {
    const config = parseWith(validateTaskConfig, cfg.config, `the config of task "${cfg.id}"`, '/config');
    parseImageRef(config.image, '/config/image');
    const memoryMB = cfg.resources?.memoryMB;
    // The Engine refuses a smaller limit at create time, after the pull.
    if (memoryMB !== undefined && memoryMB < minMemoryMB) {
      throw invalid('/resources/memoryMB', `the Docker Engine needs a memory limit of at least ${minMemoryMB} MB, got ${memoryMB}`);
    }
    checkPolicy(config, this.#config);
    return config;
  }

  /** Makes the image present per the task's pull policy, its pull progress becoming task events. */
  async #ensureImage(cfg: TaskConfig, config: DockerTaskConfig, signal: AbortSignal | undefined): Promise<EnsuredImage> {
    // The image service throttles progress and applies the pull timeouts.
    const onProgress = (p: PullProgress) =>
      this.#emit(cfg, p.message, {
        image: p.image,
        currentBytes: String(p.currentBytes),
        totalBytes: String(p.totalBytes),
        layersDone: String(p.layersDone),
        layersTotal: String(p.layersTotal),
      });
    const stop = signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
    const image = await this.#imageService().ensure(config.image, { policy: config.pullPolicy, onProgress, signal: stop });
    if (image.pulled)
      this.#emit(cfg, `pulled image ${parseImageRef(image.reference).familiar}`, { image: image.reference, imageId: image.id });
    return image;
  }

  /** Creates the container. A name taken by an earlier attempt at this same task is cleared first. */
  async #create(cfg: TaskConfig, spec: Docker.ContainerCreateOptions): Promise<Docker.Container> {
    const docker = this.#client();
    try {
      return await docker.createContainer({ ...spec, abortSignal: shortCall() });
    } catch (err) {
      if (dockerStatus(err) !== 409) throw engineError(`cannot create the container for task "${cfg.id}"`, err);
    }
    // The Engine may have created the container although its answer never arrived.
    const existing = docker.getContainer(spec.name!);
    const info = await existing.inspect({ abortSignal: shortCall() }).catch(() => undefined);
    if (info?.Config.Labels?.[taskLabels.taskId] !== cfg.id) {
      throw new PluginError(
        `cannot create container ${spec.name}: a container of that name exists and is not task "${cfg.id}"'s; remove it`,
      );
    }
    await removeContainer(existing);
    try {
      return await docker.createContainer({ ...spec, abortSignal: shortCall() });
    } catch (err) {
      throw engineError(`cannot create the container for task "${cfg.id}"`, err);
    }
  }

  #track(container: Docker.Container, cfg: TaskConfig, state: DriverState, startedAt: string): ContainerTask {
    const task = new ContainerTask({
      container,
      config: cfg,
      state,
      startedAt: isoTime(startedAt) ?? new Date().toISOString(),
      emit: (message, annotations) => this.#emit(cfg, message, annotations),
    });
    this.#tasks.set(cfg.id, task);
    return task;
  }

  /** Sends a signal; false when the container was no longer running (which a stop wants anyway). */
  async #kill(task: ContainerTask, signal: string): Promise<boolean> {
    task.noteSignal(signal);
    try {
      await task.container.kill({ signal, abortSignal: shortCall() });
      return true;
    } catch (err) {
      if (isNotRunning(err) || isNotFound(err)) return false;
      if (dockerStatus(err) === 400) throw invalid('/signal', `the Engine refused signal ${signal}: ${daemonMessage(err)}`);
      throw engineError(`cannot send ${signal} to container ${task.state.containerName}`, err);
    }
  }

  /** The container's StopSignal (the task's stopSignal or killSignal, else the image's), else SIGTERM. */
  async #stopSignalOf(task: ContainerTask): Promise<string> {
    try {
      const info = await task.container.inspect({ abortSignal: shortCall() });
      const configured = (info.Config as { StopSignal?: string }).StopSignal;
      if (configured && signalNumber(configured) !== undefined) return configured;
    } catch {
      // SIGTERM, then SIGKILL after the timeout, is right for any container.
    }
    return task.config.killSignal ?? 'SIGTERM';
  }

  #task(taskId: string): ContainerTask {
    const task = this.#tasks.get(taskId);
    if (!task) throw new TaskNotFoundError(`docker has no task "${taskId}"`);
    return task;
  }

  #client(): Docker {
    this.#docker ??= createDockerClient(this.#endpoint);
    return this.#docker;
  }

  #imageService(): ImageService {
    this.#images ??= this.#options.imageService(this.#client(), this.#config, this.#log);
    return this.#images;
  }

  #probe(): DockerFingerprint {
    this.#fingerprint ??= new DockerFingerprint(this.#client(), this.#endpoint);
    return this.#fingerprint;
  }

  #emit(cfg: TaskConfig, message: string, annotations?: Record<string, string>): void {
    this.#events.emit({
      taskId: cfg.id,
      taskName: cfg.name,
      allocId: cfg.allocId,
      timestamp: new Date().toISOString(),
      message,
      ...(annotations ? { annotations } : {}),
    });
  }
}

/** One parsed stats sample at a time from the Engine's stream (NDJSON, split across chunks at will). */
async function* statsSamples(container: Docker.Container, signal: AbortSignal): AsyncGenerator<EngineStats> {
  const stream = (await container.stats({ stream: true, abortSignal: signal } as { stream: true })) as NodeJS.ReadableStream & {
    destroy(): void;
  };
  // An aborted or dropped stream emits 'error'; unheard, that would crash the worker.
  stream.on('error', () => undefined);
  const stop = () => stream.destroy();
  signal.addEventListener('abort', stop, { once: true });
  let pending = '';
  try {
    for await (const chunk of stream) {
      pending += chunk.toString();
      let newline: number;
      while ((newline = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line) yield JSON.parse(line) as EngineStats;
      }
    }
  } finally {
    signal.removeEventListener('abort', stop);
    stream.destroy();
  }
}

/** Removes a container and its anonymous volumes; one that is gone already is fine. */
async function removeContainer(container: Docker.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true, abortSignal: shortCall() } as Docker.ContainerRemoveOptions);
  } catch (err) {
    if (!isNotFound(err)) throw engineError(`cannot remove container ${container.id.slice(0, 12)}`, err);
  }
}

/** A failed Engine call as a taskhost error: worth retrying when the Engine was away or failing. */
function engineError(what: string, err: unknown): TaskhostError {
  const status = dockerStatus(err);
  const recoverable = status === undefined || status >= 500;
  return new PluginError(`${what}: ${daemonMessage(err)}`, {
    recoverable,
    cause: err,
    ...(status ? { details: { statusCode: status } } : {}),
  });
}

/** A start the Engine refused for the task's own reasons (command not found...) is a config error. */
function startError(cfg: TaskConfig, config: DockerTaskConfig, err: unknown): TaskhostError {
  if (dockerStatus(err) === 400) {
    const where = config.command !== undefined ? '/config/command' : config.entrypoint ? '/config/entrypoint' : '/config/image';
    return invalid(where, `the container of task "${cfg.id}" cannot start: ${daemonMessage(err)}`);
  }
  return engineError(`cannot start the container of task "${cfg.id}"`, err);
}

function driverState(value: unknown): DriverState {
  const s = value as Partial<DriverState> | null;
  const text = (v: unknown) => typeof v === 'string' && v !== '';
  if (typeof s !== 'object' || s === null || !text(s.containerId) || !text(s.containerName) || !text(s.imageId) || !text(s.image)) {
    throw invalid('/driverState', 'the task handle has no docker driver state ({ containerId, containerName, imageId, image })');
  }
  return s as DriverState;
}

/** `name (short id)` of a listed container. */
function containerLabel(c: Docker.ContainerInfo): string {
  return `${(c.Names[0] ?? c.Id).replace(/^\//, '')} (${c.Id.slice(0, 12)})`;
}

function notRunning(taskId: string, action: string): TaskhostError {
  return new TaskNotRunningError(`cannot ${action} task "${taskId}": it has exited`);
}

function invalid(where: string, message: string): InvalidConfigError {
  return new InvalidConfigError(message, { details: { errors: [{ path: where, message }] } });
}

function checkSignal(name: string): void {
  if (signalNumber(name) === undefined) throw invalid('/signal', `unknown signal "${name}": use a name such as SIGTERM, SIGHUP or SIGUSR1`);
}
