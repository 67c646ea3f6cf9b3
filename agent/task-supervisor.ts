/**
 * The task supervisor: every task the agent runs, as a record in the store (design.md section
 * 10). A submission is checked (the spec, its labels, the driver's own policy), then its record
 * is written `pending` before the driver is asked to start it; `running` (with `startedAt`) once
 * the driver started it, and its handle is then in the driver manager's handle store (the agent
 * gives it a FileHandleStore under `<dataDir>/handles`, see handleDir); `exited` with its exit
 * result once it exited; `failed` when it could not start; `lost` when it could not be recovered.
 *
 * At start the driver manager recovers every handle it has; then each record is reconciled:
 * `running` with a live handle is watched again, without one it is `lost`; `pending` (the agent
 * stopped while starting it) is adopted when the driver manager has its handle (the driver's,
 * or the intent handle it stored before calling the driver, from which the driver found the
 * task), else `failed` with CANCELLED. A record that is `pending` at start is never started
 * again, and a completed one never runs again. docs/agent-store.md, "What survives a crash",
 * walks through each step; shared/crash-points.ts lets tests kill the agent at each.
 *
 * Update locks (after balena): while a task's TASKHOST_LOCK_FILE exists in its alloc dir, stop
 * and delete refuse with TaskLockedError; with `force` the file is removed and they go ahead.
 */
import { lstat, rm } from 'node:fs/promises';
import path from 'node:path';
import { EventEmitter } from 'eventemitter3';
import { pino, type Logger } from 'pino';
import type { ExitResult, TaskConfig } from '../shared/driver.js';
import {
  CancelledError,
  InvalidConfigError,
  TaskhostError,
  TaskLockedError,
  TaskNotFoundError,
  TaskNotRunningError,
  TaskRunningError,
} from '../shared/errors.js';
import { taskLockFile } from '../shared/env.js';
import { formatIssues } from '../shared/schema.js';
import { crashPoint } from '../shared/crash-points.js';
import type { DriverManager, TaskOptions } from '../drivers/driver-manager.js';
import { createTaskDirs, parseTaskSpec } from '../drivers/prepare-task.js';
import { applyLabelsUpdate, type LabelsUpdate } from './field-mask.js';
import { checkLabels, checkNamespace } from './names.js';
import type { HeldDevices, TaskDeviceReserver } from './reservations.js';
import type { AgentStore } from './store.js';
import type { TaskRecord, TaskRecordState } from './store-records.js';

/** Where the agent keeps the handles of its live tasks: `<dataDir>/handles` (a FileHandleStore). */
export function handleDir(dataDir: string): string {
  return path.join(dataDir, 'handles');
}

/** States a task never leaves. */
export const terminalStates: readonly TaskRecordState[] = Object.freeze(['exited', 'failed', 'lost']);

export function isTerminal(state: TaskRecordState): boolean {
  return terminalStates.includes(state);
}

export interface TaskSupervisorOptions {
  store: AgentStore;
  /** Its handle store should outlive the agent (FileHandleStore under handleDir(dataDir)). */
  manager: DriverManager;
  /** What every task is built with (host env and its allow-list, node meta). */
  taskOptions?: TaskOptions;
  logger?: Logger;
  /** Reserves the devices a spec asks for (DeviceReservations); without it such specs are refused. */
  devices?: TaskDeviceReserver;
}

export interface StopOptions {
  /** How long the task has to exit after its kill signal; default its killTimeout. */
  timeoutMs?: number;
  /** Goes ahead while the task holds its update lock: the lock file is removed first. */
  force?: boolean;
}

export interface DeleteOptions {
  /** Goes ahead while the task's update lock file is still there: it is removed first. */
  force?: boolean;
}

export interface TaskSupervisorEvents {
  /** A record the supervisor wrote (state changes, labels). */
  changed: [record: TaskRecord];
}

/** Why a `pending` record found at start is marked failed. */
export const interruptedStartMessage = 'the agent stopped while starting it; it was not started again';

export class TaskSupervisor extends EventEmitter<TaskSupervisorEvents> {
  readonly #store: AgentStore;
  readonly #manager: DriverManager;
  readonly #taskOptions: TaskOptions;
  readonly #log: Logger;
  readonly #devices: TaskDeviceReserver | undefined;
  readonly #closing = new AbortController();
  /** Starts in flight, by task id. */
  readonly #starting = new Map<string, Promise<void>>();
  /** Every background job (starts, watches), so close() can wait for them. */
  readonly #jobs = new Set<Promise<void>>();
  /** Why a handle was dropped by the driver manager, by task id. */
  readonly #lostReasons = new Map<string, TaskhostError>();
  #started: Promise<void> | undefined;

  constructor(options: TaskSupervisorOptions) {
    super();
    this.#store = options.store;
    this.#manager = options.manager;
    this.#taskOptions = options.taskOptions ?? {};
    this.#log = options.logger ?? pino({ level: 'warn' }, pino.destination(2));
    this.#devices = options.devices;
  }

  /** Starts the driver manager (which recovers the handles) and reconciles every record with it. */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    this.#manager.on('lost', this.#onLost);
    await this.#manager.start();
    const live = new Set(this.#manager.tasks().map((h) => h.config.id));
    const records = this.#store.tasks.list();
    for (const record of records) {
      const { namespace, id } = record;
      if (record.state === 'running') {
        if (live.has(id)) this.#watch(namespace, id);
        else await this.#settle(namespace, id, 'lost', { error: this.#lostError(id) });
      } else if (record.state === 'pending') {
        if (live.has(id)) {
          this.#log.info({ namespace, taskId: id }, 'adopting a task whose start was in flight when the agent stopped');
          await this.#write(namespace, id, (r) => ({ ...r, state: 'running', startedAt: r.startedAt ?? new Date().toISOString() }));
          this.#watch(namespace, id);
        } else {
          await this.#settle(namespace, id, 'failed', { error: { code: CancelledError.code, message: interruptedStartMessage } });
        }
      } else if (live.has(id)) {
        // It completed, but its handle outlived the record's last write: release it, never run it.
        await this.#manager.destroyTask(id, true).catch((err: unknown) => this.#log.warn({ taskId: id, err }, 'destroy failed'));
      }
    }
    const known = new Set(records.map((r) => r.id));
    for (const id of live) if (!known.has(id)) this.#log.warn({ taskId: id }, 'a task handle without a record is left alone');
  }

  /**
   * Checks the spec and stores its record `pending`, then starts it in the background: the
   * record returned is the stored one. Bad input throws InvalidConfigError naming its JSON path.
   */
  async submit(namespace: string, spec: unknown): Promise<TaskRecord> {
    this.#checkNamespace(namespace);
    const checked = parseTaskSpec(spec, 'the task spec');
    const labels = checked.labels ?? {};
    const issues = checkLabels(labels);
    // Refused rather than ignored when no device reserver was given.
    if (checked.devices?.length && !this.#devices)
      issues.push({ path: '/devices', message: 'this supervisor has no device manager: run a task with devices through the agent' });
    if (issues.length)
      throw new InvalidConfigError(`the task spec is invalid: ${formatIssues(issues).join('; ')}`, { details: { errors: issues } });
    await this.start();
    this.#assertOpen();
    // Devices first: the task's env and mounts come from them. Their reservation is stored in
    // the transaction that stores the task, or given back.
    const held: HeldDevices | undefined = checked.devices?.length
      ? await this.#devices!.hold(checked.devices, this.#closing.signal)
      : undefined;
    let task: TaskConfig;
    let record: TaskRecord;
    try {
      task = await this.#manager.buildTask(checked, held ? { ...this.#taskOptions, reservation: held.reservation } : this.#taskOptions);
      const pending = {
        id: task.id,
        namespace,
        name: checked.name,
        driver: checked.driver,
        state: 'pending' as const,
        labels,
        spec: checked,
      };
      record = await this.#store.transaction((tx) => {
        const created = tx.tasks.create(pending);
        held?.commit(tx, created);
        return created;
      });
    } catch (err) {
      held?.cancel();
      throw err;
    }
    this.emit('changed', record);
    crashPoint('after-pending');
    const starting = this.#run(namespace, task);
    this.#starting.set(task.id, starting);
    this.#track(starting.finally(() => this.#starting.delete(task.id)));
    return record;
  }

  async #run(namespace: string, task: TaskConfig): Promise<void> {
    try {
      await createTaskDirs(task);
      await this.#manager.startTask(task, this.#closing.signal);
    } catch (err) {
      const error = this.#closing.signal.aborted
        ? { code: CancelledError.code, message: 'the agent stopped while starting it' }
        : errorOf(err);
      this.#log.warn({ namespace, taskId: task.id, error }, 'task failed to start');
      await this.#settle(namespace, task.id, 'failed', { error });
      return;
    }
    crashPoint('after-handle');
    await this.#write(namespace, task.id, (r) => ({ ...r, state: 'running', startedAt: new Date().toISOString() }));
    this.#watch(namespace, task.id);
  }

  /** Waits for a running task's exit and records it; the handle is released after the record. */
  #watch(namespace: string, id: string): void {
    const job = (async () => {
      let exit: ExitResult;
      try {
        exit = await this.#manager.waitTask(id, this.#closing.signal);
      } catch (err) {
        if (this.#closing.signal.aborted) return;
        await this.#settle(namespace, id, 'lost', { error: this.#lostReasons.get(id) ? this.#lostError(id) : errorOf(err) });
        return;
      }
      const exitResult = {
        exitCode: exit.exitCode,
        signal: exit.signal,
        oomKilled: exit.oomKilled,
        ...(exit.err ? { err: exit.err } : {}),
      };
      await this.#settle(namespace, id, 'exited', { exitResult });
      crashPoint('after-exit-recorded');
      await this.#manager.destroyTask(id, true).catch((err: unknown) => this.#log.warn({ taskId: id, err }, 'destroy failed'));
    })();
    this.#track(job);
  }

  /** The record; TaskNotFoundError when the namespace has none with this id. */
  get(namespace: string, id: string): TaskRecord {
    const record = this.#store.tasks.get(namespace, id);
    if (!record) throw new TaskNotFoundError(`namespace "${namespace}" has no task with id ${id}`);
    return record;
  }

  /** The namespace's records, those `keep` accepts. */
  list(namespace: string, keep: (record: TaskRecord) => boolean = () => true): TaskRecord[] {
    return this.#store.tasks.list({ namespace }).filter(keep);
  }

  /** Changes the labels (the only mutable field) with containerd's field-mask semantics. */
  async updateLabels(namespace: string, id: string, update: LabelsUpdate): Promise<TaskRecord> {
    this.get(namespace, id);
    const result = await this.#store.tasks.update(namespace, id, (r) => ({ ...r, labels: applyLabelsUpdate(r.labels, update) }));
    if (!result) throw new TaskNotFoundError(`namespace "${namespace}" has no task with id ${id}`);
    this.emit('changed', result);
    return result;
  }

  /** Resolves with the record once the task is exited, failed or lost. */
  async wait(namespace: string, id: string, signal?: AbortSignal): Promise<TaskRecord> {
    const first = this.get(namespace, id);
    if (isTerminal(first.state)) return first;
    return new Promise<TaskRecord>((resolve, reject) => {
      const done = () => {
        this.off('changed', onChange);
        signal?.removeEventListener('abort', onAbort);
        this.#closing.signal.removeEventListener('abort', onAbort);
      };
      const onChange = (record: TaskRecord) => {
        if (record.namespace !== namespace || record.id !== id || !isTerminal(record.state)) return;
        done();
        resolve(record);
      };
      const onAbort = () => {
        done();
        reject(new CancelledError(`stopped waiting for task ${id}`));
      };
      this.on('changed', onChange);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#closing.signal.addEventListener('abort', onAbort, { once: true });
      // It may have settled between the first read and the listener.
      const now = this.#store.tasks.get(namespace, id);
      if (!now) {
        done();
        reject(new TaskNotFoundError(`namespace "${namespace}" has no task with id ${id}`));
      } else onChange(now);
    });
  }

  /**
   * Stops a running task (its kill signal, then SIGKILL after the timeout). Resolves once the
   * driver was asked; the exit is recorded as for any other. A task still starting is stopped
   * once it has started; one that is not running is TaskNotRunningError. While the task holds
   * its update lock (its TASKHOST_LOCK_FILE exists) it is TaskLockedError, unless `force`.
   */
  async stop(namespace: string, id: string, options: StopOptions = {}): Promise<void> {
    const record = await this.#runningRecord(namespace, id, 'stopped');
    await this.#honourLock(
      record,
      options.force,
      (file) =>
        `task ${id} holds its update lock (${file} exists), so it was not stopped: wait until the task removes that file, ` +
        'or stop it anyway with --force (`"force": true` in the body of POST /v1/tasks/{id}/stop), which removes the lock',
    );
    const stopping = this.#manager
      .stopTask(record.id, options.timeoutMs)
      .catch((err: unknown) => this.#log.warn({ namespace, taskId: id, err }, 'stop failed'));
    this.#track(stopping);
  }

  /** Sends a signal to a running task. */
  async signal(namespace: string, id: string, signal: string): Promise<void> {
    await this.#runningRecord(namespace, id, 'signalled');
    await this.#manager.signalTask(id, signal);
  }

  /**
   * Deletes a completed task's record (and any handle left); a pending or running one is
   * TaskRunningError. While its update lock file is still in the alloc dir it is
   * TaskLockedError, unless `force`.
   */
  async delete(namespace: string, id: string, options: DeleteOptions = {}): Promise<void> {
    const record = this.get(namespace, id);
    if (!isTerminal(record.state)) {
      throw new TaskRunningError(`task ${id} is ${record.state}: stop it first (POST /v1/tasks/{id}/stop), then delete it`);
    }
    await this.#honourLock(
      record,
      options.force,
      (file) =>
        `task ${id} holds its update lock (${file} exists), so it was not deleted: remove that file, ` +
        'or delete it anyway with DELETE /v1/tasks/{id}?force=true, which removes the lock',
    );
    // The watcher releases the handle after it recorded the exit, maybe at this very moment.
    if (this.#manager.tasks().some((h) => h.config.id === id))
      await this.#manager.destroyTask(id, true).catch((err: unknown) => {
        if (!(err instanceof TaskNotFoundError)) throw err;
      });
    await this.#store.tasks.delete(namespace, id);
  }

  /** Stops watching (tasks keep running: the next start recovers them) and waits for the jobs. */
  async close(): Promise<void> {
    this.#closing.abort();
    this.#manager.off('lost', this.#onLost);
    await this.#started?.catch(() => undefined);
    while (this.#jobs.size) await Promise.all([...this.#jobs]);
  }

  async #runningRecord(namespace: string, id: string, what: string): Promise<TaskRecord> {
    let record = this.get(namespace, id);
    if (record.state === 'pending') {
      await this.#starting.get(id);
      record = this.get(namespace, id);
    }
    if (record.state !== 'running') throw new TaskNotRunningError(`task ${id} is ${record.state} and cannot be ${what}`);
    return record;
  }

  /**
   * Balena's update lock: while the task's TASKHOST_LOCK_FILE exists (seen from the host: it is
   * in the alloc dir) the task refuses to be stopped or deleted, with `refused(file)` as the
   * message; `force` removes the file, and the caller goes ahead.
   */
  async #honourLock(record: TaskRecord, force: boolean | undefined, refused: (file: string) => string): Promise<void> {
    const file = taskLockFile(this.#manager.allocDir(allocIdOf(record.id)), record.name);
    if (!(await exists(file))) return;
    if (!force) throw new TaskLockedError(refused(file), { details: { lockFile: file } });
    this.#log.info({ namespace: record.namespace, taskId: record.id, lockFile: file }, 'forced: removed the task’s update lock');
    // Whatever the task made there goes (a directory too); rm follows no symbolic link, so a
    // lock that is a link is removed, never its target.
    await rm(file, { force: true, recursive: true });
  }

  readonly #onLost = (_driver: string, taskId: string, error: TaskhostError): void => {
    this.#lostReasons.set(taskId, error);
  };

  #lostError(id: string): { code: string; message: string } {
    const reason = this.#lostReasons.get(id);
    return {
      code: reason?.code ?? TaskNotFoundError.code,
      message: `the task could not be recovered: ${reason?.message ?? 'the driver manager has no handle for it'}`,
    };
  }

  async #settle(namespace: string, id: string, state: TaskRecordState, extra: Partial<TaskRecord>): Promise<void> {
    await this.#write(namespace, id, (r) => (isTerminal(r.state) ? r : { ...r, ...extra, state, completedAt: new Date().toISOString() }));
  }

  async #write(namespace: string, id: string, change: (r: TaskRecord) => TaskRecord): Promise<void> {
    try {
      const record = await this.#store.tasks.update(namespace, id, change);
      if (record) this.emit('changed', record);
    } catch (err) {
      this.#log.error({ namespace, taskId: id, err }, 'could not write the task record');
    }
  }

  #track(job: Promise<void>): void {
    const tracked = job.catch((err: unknown) => this.#log.error({ err }, 'supervisor job failed'));
    this.#jobs.add(tracked);
    void tracked.finally(() => this.#jobs.delete(tracked));
  }

  #checkNamespace(namespace: string): void {
    const issues = checkNamespace(namespace, '/namespace');
    if (issues.length)
      throw new InvalidConfigError(`the namespace is invalid: ${formatIssues(issues).join('; ')}`, { details: { errors: issues } });
  }

  #assertOpen(): void {
    if (this.#closing.signal.aborted) throw new CancelledError('the task supervisor is closed');
  }
}

/** A task id is `<allocId>/<name>/<8 hex>` (buildTaskConfig). */
function allocIdOf(taskId: string): string {
  return taskId.slice(0, taskId.indexOf('/'));
}

/** Whether something is at `file`; a dangling symbolic link counts, as the task made it. */
async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function errorOf(err: unknown): { code: string; message: string } {
  if (err instanceof TaskhostError) return { code: err.code, message: err.message };
  return { code: TaskhostError.code, message: err instanceof Error ? err.message : String(err) };
}
