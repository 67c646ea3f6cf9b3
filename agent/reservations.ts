/**
 * The agent's device reservations (design.md section 10): a task that asks for devices gets them
 * at submit, and they stay its own, in the store, until it ends (exited, failed or lost), across
 * agent restarts. The node's devices come from the DeviceManager; who holds which is the store's
 * `reservations` collection, the truth that outlives the manager's memory.
 *
 * Two submissions at once never get the same device. A task's env, mounts and device nodes come
 * from the device plugins (an async call) and are needed to build the task, before its record
 * can be written; so choosing cannot wait for the record's transaction. Instead the choice is
 * serialised twice: the DeviceManager picks and marks devices in one synchronous step (no other
 * submit can pick them meanwhile), never picking one a stored reservation holds; then the
 * reservation record is written in the same transaction as the task's `pending` record, which
 * checks once more against every stored reservation (transactions run one at a time and see each
 * other's writes) and refuses with NO_FREE_DEVICE rather than hand a device out twice.
 *
 * A reservation is released (its record deleted, which is an event) when its task reaches a
 * terminal state; at start, the records of tasks that ended or vanished while the agent was down
 * are released too.
 */
import { pino, type Logger } from 'pino';
import type { DeviceManager, DeviceRequest } from '../devices/device-manager.js';
import type { FilledContainerReservation } from '../shared/device.js';
import { NoFreeDeviceError, TaskhostError } from '../shared/errors.js';
import type { AgentStore, StoreTransaction } from './store.js';
import type { ReservationRecord, TaskRecord } from './store-records.js';
import { isTerminal } from './task-supervisor.js';

/** Devices picked for a task that is not stored yet. */
export interface HeldDevices {
  /** What the task needs to use them (envs, mounts, device nodes): give it to buildTask. */
  reservation: FilledContainerReservation;
  /** Which devices, by group. */
  devices: { group: string; ids: string[] }[];
  /**
   * Writes the reservation record of `task` inside the transaction that creates the task's
   * record; NoFreeDeviceError (and so no task record) when a stored reservation holds one of them.
   */
  commit(tx: StoreTransaction, task: { namespace: string; id: string }): ReservationRecord;
  /** Gives the devices back: the task was not stored after all. Idempotent. */
  cancel(): void;
}

/** What the task supervisor needs to reserve devices (DeviceReservations). */
export interface TaskDeviceReserver {
  /** Picks devices for the requests and asks their plugins what the task needs. */
  hold(requests: readonly DeviceRequest[], signal?: AbortSignal): Promise<HeldDevices>;
}

/** What DeviceReservations listens to: the task supervisor's record changes. */
export interface TaskChanges {
  on(event: 'changed', fn: (record: TaskRecord) => void): unknown;
  off(event: 'changed', fn: (record: TaskRecord) => void): unknown;
}

export interface DeviceReservationsOptions {
  store: AgentStore;
  devices: DeviceManager;
  logger?: Logger;
  /** How long a submit waits for the device plugins' first fingerprints (default 10 s). */
  fingerprintTimeoutMs?: number;
}

export class DeviceReservations implements TaskDeviceReserver {
  readonly #store: AgentStore;
  readonly #devices: DeviceManager;
  readonly #log: Logger;
  readonly #fingerprintTimeoutMs: number;
  readonly #jobs = new Set<Promise<void>>();
  #changes: TaskChanges | undefined;

  constructor(options: DeviceReservationsOptions) {
    this.#store = options.store;
    this.#devices = options.devices;
    this.#log = options.logger ?? pino({ level: 'warn' }, pino.destination(2));
    this.#fingerprintTimeoutMs = options.fingerprintTimeoutMs ?? 10_000;
  }

  /** Releases a task's devices once it is exited, failed or lost. Call before the supervisor starts. */
  attach(changes: TaskChanges): void {
    this.#changes = changes;
    changes.on('changed', this.#onChanged);
  }

  /** Releases the reservations whose task is gone or ended (while the agent was down, say). */
  async start(): Promise<void> {
    const stale = this.#store.reservations.list().filter((r) => {
      const task = this.#store.tasks.get(r.namespace, r.taskId);
      return !task || isTerminal(task.state);
    });
    if (!stale.length) return;
    await this.#store.transaction((tx) => {
      for (const r of stale) tx.reservations.delete(r.namespace, r.id);
    });
    this.#log.info({ released: stale.map((r) => r.id) }, 'released the devices of tasks that ended while the agent was down');
  }

  async hold(requests: readonly DeviceRequest[], signal?: AbortSignal): Promise<HeldDevices> {
    await this.#devices.waitForFirstFingerprint(this.#fingerprintTimeoutMs);
    const stored = reservedKeys(this.#store.reservations.list());
    let held;
    try {
      held = await this.#devices.reserve(requests, {
        isReserved: (group, id) => stored.has(reservedKey(group, id)),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      throw withRequestPath(err, requests);
    }
    const handle = held.id;
    const devices = held.devices.map((d) => ({ group: d.group, ids: [...d.ids] }));
    let cancelled = false;
    return {
      reservation: held.reservation,
      devices,
      commit: (tx, task) => {
        const taken = reservedKeys(tx.reservations.list());
        const clash = devices.find((d) => d.ids.some((id) => taken.has(reservedKey(d.group, id))));
        if (clash) {
          throw new NoFreeDeviceError(`no free device: ${clash.group} (${clash.ids.join(', ')}) is reserved by another task`, {
            details: { name: clash.group, count: clash.ids.length },
          });
        }
        return tx.reservations.put({
          id: handle,
          namespace: task.namespace,
          taskId: task.id,
          devices: devices.map((d) => ({ name: d.group, ids: d.ids })),
          labels: {},
        });
      },
      cancel: () => {
        if (cancelled) return;
        cancelled = true;
        this.#devices.release(handle);
      },
    };
  }

  /** The stored reservations: of one namespace, or all. */
  list(namespace?: string): ReservationRecord[] {
    return this.#store.reservations.list(namespace === undefined ? {} : { namespace });
  }

  /** Frees the devices of a task: its reservation records are deleted (each an event). Returns how many. */
  async release(namespace: string, taskId: string): Promise<number> {
    const mine = this.#store.reservations.list({ namespace }).filter((r) => r.taskId === taskId);
    if (!mine.length) return 0;
    const deleted = await this.#store.transaction((tx) => mine.filter((r) => tx.reservations.delete(namespace, r.id)).length);
    for (const r of mine) this.#devices.release(r.id);
    if (deleted) this.#log.info({ namespace, taskId, devices: mine.flatMap((r) => r.devices) }, 'devices released');
    return deleted;
  }

  /** Stops listening and waits for releases under way. */
  async close(): Promise<void> {
    this.#changes?.off('changed', this.#onChanged);
    while (this.#jobs.size) await Promise.all([...this.#jobs]);
  }

  readonly #onChanged = (record: TaskRecord): void => {
    if (!isTerminal(record.state)) return;
    const job = this.release(record.namespace, record.id).then(
      () => undefined,
      (err: unknown) => this.#log.error({ namespace: record.namespace, taskId: record.id, err }, 'could not release the devices'),
    );
    this.#jobs.add(job);
    void job.finally(() => this.#jobs.delete(job));
  };
}

function reservedKey(group: string, id: string): string {
  return `${group}\0${id}`;
}

function reservedKeys(records: readonly ReservationRecord[]): Set<string> {
  return new Set(records.flatMap((r) => r.devices.flatMap((d) => d.ids.map((id) => reservedKey(d.name, id)))));
}

/** A refusal that names a request gets that request's JSON path in the task spec. */
function withRequestPath(err: unknown, requests: readonly DeviceRequest[]): unknown {
  if (!(err instanceof TaskhostError) || typeof err.details?.name !== 'string') return err;
  const index = requests.findIndex((r) => r.name === err.details!.name);
  if (index === -1) return err;
  const ErrorClass = err.constructor as typeof TaskhostError;
  return new ErrorClass(`/devices/${index}: ${err.message}`, {
    details: { ...err.details, path: `/devices/${index}` },
    recoverable: err.recoverable,
    cause: err,
  });
}
