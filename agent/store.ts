/**
 * The agent's crash-safe embedded store: LMDB under `<dataDir>/store/` (see docs/agent-store.md).
 * Records live at `v1/<namespace>/<kind>/<id>`, events at `events/<index>`, the store's own
 * bookkeeping at `meta/...`. A write the caller awaited is on disk.
 */
import { existsSync, mkdirSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import path from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { CancelledError, EventIndexError, InvalidConfigError, InvalidStoreError, TaskExistsError } from '../shared/errors.js';
import { compileSchema, parseWith, type Validator } from '../shared/schema.js';
import { lockDataDir, type DataDirLock } from './data-dir-lock.js';
import { metaKeys, storeMigrations, type MigrationTransaction, type StoreMigration } from './store-migrations.js';
import {
  ImageRecord,
  ReservationRecord,
  TaskRecord,
  maxLabelBytes,
  maxNamespaceLength,
  namePattern,
  type StoreEvent,
  type Unstamped,
} from './store-records.js';

export interface AgentStoreOptions {
  dataDir: string;
  /** How many events are kept; older ones are dropped. Default 10,000. */
  eventHistory?: number;
  /** Take `<dataDir>/agent.lock` for the store's lifetime (default true). */
  lock?: boolean;
  /** The clock for `createdAt`/`updatedAt`. */
  now?: () => Date;
  /** The schema migrations; tests only; default this taskhost's. */
  migrations?: readonly StoreMigration[];
}

/** Whether a write appends an event, and what it says. Default: an event of the record's kind. */
export interface WriteOptions {
  event?: false | { topic?: string; type?: string; payload?: unknown };
}

export interface ListOptions {
  /** One namespace; all of them when left out. */
  namespace?: string;
  /** Only ids (image refs) that start with this. */
  prefix?: string;
}

/** One kind of record, inside a transaction: reads see the transaction's own writes. */
export interface TransactionCollection<T> {
  get(namespace: string, id: string): T | undefined;
  list(options?: ListOptions): T[];
  /** Creates or replaces; keeps `createdAt` of the record it replaces. */
  put(record: Unstamped<T>, options?: WriteOptions): T;
  /** Applies `change` to the current record; undefined (and no write) when there is none. */
  update(namespace: string, id: string, change: (current: T) => Unstamped<T>, options?: WriteOptions): T | undefined;
  /** Whether there was a record to delete. */
  delete(namespace: string, id: string, options?: WriteOptions): boolean;
}

/** One kind of record: each write is its own transaction, durable once its promise resolves. */
export interface Collection<T> {
  get(namespace: string, id: string): T | undefined;
  list(options?: ListOptions): T[];
  put(record: Unstamped<T>, options?: WriteOptions): Promise<T>;
  update(namespace: string, id: string, change: (current: T) => Unstamped<T>, options?: WriteOptions): Promise<T | undefined>;
  delete(namespace: string, id: string, options?: WriteOptions): Promise<boolean>;
}

export interface TaskCollection extends Collection<TaskRecord> {
  /** Stores a new task; TaskExistsError when that namespace already has the id. */
  create(record: Unstamped<TaskRecord>, options?: WriteOptions): Promise<TaskRecord>;
}

/** What a transaction callback gets. It runs synchronously; if it throws, nothing is written. */
export interface StoreTransaction {
  tasks: TransactionCollection<TaskRecord> & { create(record: Unstamped<TaskRecord>, options?: WriteOptions): TaskRecord };
  images: TransactionCollection<ImageRecord>;
  reservations: TransactionCollection<ReservationRecord>;
  /** Appends an event that no record write made (a task's output reached a limit, say). */
  appendEvent(event: Omit<StoreEvent, 'index'>): StoreEvent;
}

interface Kind<T> {
  name: 'tasks' | 'images' | 'reservations';
  what: string;
  validator: Validator<T>;
  idOf(record: T): string;
}

const kinds = {
  tasks: { name: 'tasks', what: 'task record', validator: compileSchema<TaskRecord>(TaskRecord), idOf: (r: TaskRecord) => r.id },
  images: { name: 'images', what: 'image record', validator: compileSchema<ImageRecord>(ImageRecord), idOf: (r: ImageRecord) => r.ref },
  reservations: {
    name: 'reservations',
    what: 'reservation record',
    validator: compileSchema<ReservationRecord>(ReservationRecord),
    idOf: (r: ReservationRecord) => r.id,
  },
} as const;

const marker = { app: 'taskhost', layout: 'v1' };
const eventsPrefix = 'events/';
const namespaceRe = new RegExp(namePattern);
// LMDB's data file begins with a meta page holding this magic number (0xBEEFC0DE, little-endian).
const lmdbMagic = Buffer.from([0xde, 0xc0, 0xef, 0xbe]);

/** The latest schema version this taskhost writes. */
export const storeSchemaVersion = storeMigrations.length;

/** The agent's store. Open with `AgentStore.open`; one per data dir, held by a lock. */
export class AgentStore {
  readonly tasks: TaskCollection;
  readonly images: Collection<ImageRecord>;
  readonly reservations: Collection<ReservationRecord>;
  /** Where the LMDB files are: `<dataDir>/store`. */
  readonly path: string;
  readonly schemaVersion: number;
  readonly eventHistory: number;

  #db: RootDatabase;
  #lock: DataDirLock | undefined;
  #now: () => Date;
  #lastEventIndex: number;
  #waiters = new Set<() => void>();
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(db: RootDatabase, storePath: string, version: number, lock: DataDirLock | undefined, options: AgentStoreOptions) {
    this.#db = db;
    this.path = storePath;
    this.schemaVersion = version;
    this.#lock = lock;
    this.#now = options.now ?? (() => new Date());
    this.eventHistory = options.eventHistory ?? 10_000;
    this.#lastEventIndex = (db.get(metaKeys.lastEventIndex) as number | undefined) ?? 0;
    const tasks = this.#collection(kinds.tasks);
    this.tasks = { ...tasks, create: (record, options) => this.transaction((tx) => tx.tasks.create(record, options)) };
    this.images = this.#collection(kinds.images);
    this.reservations = this.#collection(kinds.reservations);
  }

  /**
   * Opens (or creates) the store of `dataDir`, taking its lock and bringing it to the latest
   * schema version. InvalidStoreError for a store that is corrupt, foreign or newer;
   * DataDirLockedError when another agent holds the data dir.
   */
  static async open(options: AgentStoreOptions): Promise<AgentStore> {
    const history = options.eventHistory ?? 10_000;
    if (!Number.isInteger(history) || history < 1) {
      throw new InvalidConfigError(`options.eventHistory must be a positive integer, not ${String(history)}`);
    }
    const migrations = options.migrations ?? storeMigrations;
    migrations.forEach((m, i) => {
      if (m.from !== i) throw new InvalidConfigError(`migration ${i} must be from version ${i}, not ${m.from}`);
    });
    const lock = options.lock === false ? undefined : lockDataDir(options.dataDir);
    try {
      const storePath = path.join(path.resolve(options.dataDir), 'store');
      const db = openLmdb(storePath);
      try {
        const version = migrate(db, storePath, migrations);
        return new AgentStore(db, storePath, version, lock, { ...options, eventHistory: history });
      } catch (err) {
        await db.close();
        throw err;
      }
    } catch (err) {
      lock?.release();
      throw err;
    }
  }

  /** The index of the last event appended (0 before the first). */
  get lastEventIndex(): number {
    return this.#lastEventIndex;
  }

  /** The index of the oldest event still kept (lastEventIndex + 1 when none are). */
  get oldestEventIndex(): number {
    for (const key of this.#db.getKeys({ start: eventsPrefix, end: prefixEnd(eventsPrefix), limit: 1 })) {
      return Number((key as string).slice(eventsPrefix.length));
    }
    return this.#lastEventIndex + 1;
  }

  /**
   * Runs `fn` in one write transaction: all its writes and events land together or not at all.
   * `fn` runs synchronously (no awaits inside); the promise resolves once the commit is on disk.
   */
  async transaction<T>(fn: (tx: StoreTransaction) => T): Promise<T> {
    this.#assertOpen();
    let outcome: { ok: true; value: T; staged: Staged } | { ok: false; error: unknown } | undefined;
    // lmdb runs every transaction callback queued in one event turn inside one LMDB transaction,
    // and a callback that throws does not undo what it wrote. So a callback writes into a
    // staging map first and applies it only when it returned: a throw leaves nothing behind.
    await this.#db.transaction(() => {
      const staged = new Staged(this.#db);
      try {
        outcome = { ok: true, value: fn(this.#transactionView(staged)), staged };
      } catch (error) {
        outcome = { ok: false, error };
        return;
      }
      staged.apply();
    });
    if (!outcome) throw new Error('lmdb did not run the transaction');
    if (!outcome.ok) throw outcome.error;
    const last = outcome.staged.lastEventIndex;
    if (last !== undefined && last > this.#lastEventIndex) {
      this.#lastEventIndex = last;
      for (const wake of [...this.#waiters]) wake();
    }
    return outcome.value;
  }

  /**
   * The events after index `after` (0: from the first kept), oldest first, at most `limit`.
   * EventIndexError when some after `after` were dropped from the history, or `after` is past
   * the last event.
   */
  eventsSince(after: number, options: { limit?: number } = {}): StoreEvent[] {
    this.#assertOpen();
    if (!Number.isSafeInteger(after) || after < 0)
      throw new InvalidConfigError(`an event index must be a non-negative integer, not ${after}`);
    const last = this.#lastEventIndex;
    if (after > last) {
      throw new EventIndexError(
        `event index ${after} is past the last event (${last}): this store is not the one that index came from; list the records again and follow events from ${last}`,
        { details: { reason: 'ahead', requested: after, lastIndex: last, oldestIndex: this.oldestEventIndex } },
      );
    }
    const oldest = this.oldestEventIndex;
    if (after < oldest - 1) {
      throw new EventIndexError(
        `events after index ${after} are no longer kept (the history holds ${this.eventHistory}; the oldest is ${oldest}): list the records again and follow events from ${last}`,
        { details: { reason: 'expired', requested: after, lastIndex: last, oldestIndex: oldest } },
      );
    }
    const range = this.#db.getRange({ start: eventKey(after + 1), end: prefixEnd(eventsPrefix), limit: options.limit ?? 1000 });
    return [...range].map((e) => e.value as StoreEvent);
  }

  /**
   * Every event after `after`, then each new one as it is committed. Ends when the store
   * closes; throws CancelledError when `signal` aborts, and EventIndexError as eventsSince does
   * (also when a slow reader falls out of the history).
   */
  async *watchEvents(after: number, options: { signal?: AbortSignal } = {}): AsyncGenerator<StoreEvent, void, undefined> {
    const { signal } = options;
    let cursor = after;
    for (;;) {
      if (signal?.aborted) throw new CancelledError('stopped following events: the caller aborted', { cause: signal.reason });
      if (this.#closed) return;
      const batch = this.eventsSince(cursor);
      for (const event of batch) {
        yield event;
        cursor = event.index;
      }
      if (batch.length === 0) await this.#nextEvent(cursor, signal);
    }
  }

  /** Closes the store and releases the data dir lock; idempotent. Followers of events end. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      for (const wake of [...this.#waiters]) wake();
      try {
        await this.#db.close();
      } finally {
        this.#lock?.release();
      }
    })();
    return this.#closing;
  }

  #nextEvent(cursor: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      if (this.#lastEventIndex > cursor || this.#closed) return resolve();
      const done = () => {
        this.#waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  #assertOpen(): void {
    if (this.#closed)
      throw new InvalidStoreError(`the store at ${this.path} is closed`, { details: { path: this.path, reason: 'closed' } });
  }

  #collection<T>(kind: Kind<T>): Collection<T> {
    return {
      get: (namespace, id) => {
        this.#assertOpen();
        return this.#db.get(recordKey(kind.name, namespace, id)) as T | undefined;
      },
      list: (options = {}) => {
        this.#assertOpen();
        return listRecords<T>((start, end) => this.#db.getRange({ start, end }), kind.name, options).map(([, v]) => v);
      },
      put: (record, options) => this.transaction((tx) => this.#txCollection(tx, kind).put(record, options)),
      update: (namespace, id, change, options) =>
        this.transaction((tx) => this.#txCollection(tx, kind).update(namespace, id, change, options)),
      delete: (namespace, id, options) => this.#transactionDelete(kind, namespace, id, options),
    };
  }

  #transactionDelete<T>(kind: Kind<T>, namespace: string, id: string, options: WriteOptions | undefined): Promise<boolean> {
    return this.transaction((tx) => this.#txCollection(tx, kind).delete(namespace, id, options));
  }

  #txCollection<T>(tx: StoreTransaction, kind: Kind<T>): TransactionCollection<T> {
    return tx[kind.name] as unknown as TransactionCollection<T>;
  }

  #transactionView(staged: Staged): StoreTransaction {
    const appendEvent = (event: Omit<StoreEvent, 'index'>): StoreEvent => {
      const index = ((staged.get(metaKeys.lastEventIndex) as number | undefined) ?? 0) + 1;
      const stored: StoreEvent = { index, topic: event.topic, type: event.type, key: event.key, payload: event.payload };
      staged.put(eventKey(index), stored);
      staged.put(metaKeys.lastEventIndex, index);
      staged.lastEventIndex = index;
      // Drop what falls out of the history: usually the one oldest event.
      for (const key of staged.keys(eventsPrefix, eventKey(index - this.eventHistory + 1))) staged.remove(key);
      return stored;
    };
    const view = <T>(kind: Kind<T>): TransactionCollection<T> => {
      const event = (options: WriteOptions | undefined, type: string, namespace: string, id: string, payload: unknown) => {
        if (options?.event === false) return;
        appendEvent({
          topic: options?.event?.topic ?? kind.name,
          type: options?.event?.type ?? type,
          key: `${namespace}/${id}`,
          payload: options?.event && 'payload' in options.event ? options.event.payload : payload,
        });
      };
      const put = (input: Unstamped<T>, options?: WriteOptions): T => {
        const draft = input as Unstamped<T> & { namespace?: unknown };
        const now = this.#now().toISOString();
        const id = kind.idOf(input as T);
        const key = recordKey(kind.name, String(draft.namespace), String(id));
        const previous = staged.get(key) as (T & { createdAt: string }) | undefined;
        const stamped = { ...input, createdAt: previous?.createdAt ?? now, updatedAt: now };
        const record = parseWith(kind.validator, stamped, `the ${kind.what}`);
        checkLabels(record as { labels?: Record<string, string> }, kind.what);
        staged.put(key, record);
        event(options, previous ? 'updated' : 'created', String(draft.namespace), id, record);
        return record;
      };
      return {
        get: (namespace, id) => staged.get(recordKey(kind.name, namespace, id)) as T | undefined,
        list: (options = {}) => listRecords<T>((start, end) => staged.range(start, end), kind.name, options).map(([, v]) => v),
        put,
        update: (namespace, id, change, options) => {
          const current = staged.get(recordKey(kind.name, namespace, id)) as T | undefined;
          if (current === undefined) return undefined;
          const next = change(structuredClone(current));
          const nextId = kind.idOf(next as T);
          const nextNamespace = (next as { namespace?: unknown }).namespace;
          if (nextId !== id || nextNamespace !== namespace) {
            throw new InvalidConfigError(`an update cannot change a record's namespace or id (${namespace}/${id})`);
          }
          return put(next, options);
        },
        delete: (namespace, id, options) => {
          const key = recordKey(kind.name, namespace, id);
          const previous = staged.get(key);
          if (previous === undefined) return false;
          staged.remove(key);
          event(options, 'deleted', namespace, id, previous);
          return true;
        },
      };
    };
    const tasks = view(kinds.tasks);
    return {
      tasks: {
        ...tasks,
        create: (record, options) => {
          if (tasks.get(record.namespace, record.id) !== undefined) {
            throw new TaskExistsError(`namespace ${record.namespace} already has a task with id ${record.id}`, {
              details: { namespace: record.namespace, id: record.id },
            });
          }
          return tasks.put(record, options);
        },
      },
      images: view(kinds.images),
      reservations: view(kinds.reservations),
      appendEvent,
    };
  }
}

/** Writes of one transaction callback, held back until it returns; reads see them. */
class Staged {
  lastEventIndex: number | undefined;
  #writes = new Map<string, unknown>(); // undefined: removed

  constructor(private readonly db: RootDatabase) {}

  get(key: string): unknown {
    return this.#writes.has(key) ? this.#writes.get(key) : this.db.get(key);
  }
  put(key: string, value: unknown): void {
    this.#writes.set(key, value);
  }
  remove(key: string): void {
    this.#writes.set(key, undefined);
  }
  /** Keys from `start` (inclusive) to `end` (exclusive), staged writes included, in order. */
  keys(start: string, end: string): string[] {
    return this.range(start, end).map(([k]) => k);
  }
  range(start: string, end: string): [string, unknown][] {
    const merged = new Map<string, unknown>();
    for (const { key, value } of this.db.getRange({ start, end })) merged.set(key as string, value);
    for (const [key, value] of this.#writes) if (key >= start && key < end) merged.set(key, value);
    return [...merged].filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
  apply(): void {
    for (const [key, value] of this.#writes) {
      if (value === undefined) void this.db.remove(key);
      else void this.db.put(key, value);
    }
  }
}

function listRecords<T>(
  range: (start: string, end: string) => Iterable<[string, unknown]> | Iterable<{ key: unknown; value: unknown }>,
  kind: string,
  options: ListOptions,
): [string, T][] {
  const prefix = options.namespace === undefined ? 'v1/' : `v1/${checkNamespace(options.namespace)}/${kind}/${options.prefix ?? ''}`;
  const out: [string, T][] = [];
  for (const entry of range(prefix, prefixEnd(prefix))) {
    const [key, value] = Array.isArray(entry)
      ? (entry as [string, unknown])
      : [(entry as { key: string }).key, (entry as { value: unknown }).value];
    if (options.namespace === undefined) {
      // v1/<namespace>/<kind>/<id>: namespaces hold no '/', ids may.
      const rest = key.slice(3);
      const slash = rest.indexOf('/');
      const after = rest.slice(slash + 1);
      if (!after.startsWith(`${kind}/${options.prefix ?? ''}`)) continue;
    }
    out.push([key, value as T]);
  }
  return out;
}

function recordKey(kind: string, namespace: string, id: string): string {
  if (typeof id !== 'string' || id === '') throw new InvalidConfigError(`a record id must be a non-empty string`);
  return `v1/${checkNamespace(namespace)}/${kind}/${id}`;
}

function checkNamespace(namespace: string): string {
  if (typeof namespace !== 'string' || namespace.length > maxNamespaceLength || !namespaceRe.test(namespace)) {
    throw new InvalidConfigError(
      `namespace ${JSON.stringify(namespace)} is invalid: it must match ${namePattern} and have at most ${maxNamespaceLength} characters`,
      { details: { errors: [{ path: '/namespace', message: `must match ${namePattern}` }] } },
    );
  }
  return namespace;
}

function checkLabels(record: { labels?: Record<string, string> }, what: string): void {
  for (const [key, value] of Object.entries(record.labels ?? {})) {
    if (Buffer.byteLength(key) + Buffer.byteLength(value) > maxLabelBytes) {
      const path = `/labels/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      throw new InvalidConfigError(`the ${what} is invalid: ${path}: key and value must be at most ${maxLabelBytes} bytes together`, {
        details: { errors: [{ path, message: `key and value must be at most ${maxLabelBytes} bytes together` }] },
      });
    }
  }
}

/** Events sort by index: zero-padded to the digits of Number.MAX_SAFE_INTEGER. */
function eventKey(index: number): string {
  return eventsPrefix + String(Math.max(index, 0)).padStart(16, '0');
}

/** The first key after every key that starts with `prefix`. */
function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

function invalid(
  storePath: string,
  reason: 'corrupt' | 'foreign' | 'newer' | 'migration',
  message: string,
  cause?: unknown,
): InvalidStoreError {
  return new InvalidStoreError(message, { details: { path: storePath, reason }, cause });
}

const moveAside = 'move it aside (the agent never resets a store) or start the agent with another dataDir';

function openLmdb(storePath: string): RootDatabase {
  if (existsSync(storePath) && !statSync(storePath).isDirectory()) {
    throw invalid(storePath, 'corrupt', `the store ${storePath} is not a directory: ${moveAside}`);
  }
  mkdirSync(storePath, { recursive: true });
  // LMDB maps a file that is not its own and crashes the process: look for its magic first.
  const dataFile = path.join(storePath, 'data.mdb');
  if (existsSync(dataFile) && statSync(dataFile).size > 0 && !hasLmdbMagic(dataFile)) {
    throw invalid(storePath, 'corrupt', `the store ${dataFile} is not an LMDB file (corrupt, or something else wrote it): ${moveAside}`);
  }
  try {
    return open({
      path: storePath,
      // JSON: records read back exactly as the API sends them (no Dates, no msgpack structures
      // kept in the store), and the file stays readable with any LMDB tool.
      encoding: 'json',
      compression: false,
      // Durability: with overlappingSync (lmdb-js's default on Linux) a write's promise resolves
      // when it is committed and visible, and the fsync follows later, so an acknowledged write
      // can be lost on power failure. Off, each commit is synced before its promise resolves:
      // an awaited write is on disk, as bbolt's commit is. lmdb-js batches the writes of one
      // event turn into one commit, so the agent pays one fsync per turn, not per record.
      overlappingSync: false,
    });
  } catch (err) {
    throw invalid(storePath, 'corrupt', `the store ${storePath} cannot be opened as LMDB (${(err as Error).message}): ${moveAside}`, err);
  }
}

function hasLmdbMagic(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(64);
    const n = readSync(fd, head, 0, head.length, 0);
    return head.subarray(0, n).includes(lmdbMagic);
  } finally {
    closeSync(fd);
  }
}

/** Checks the marker and version, runs the migrations due; returns the version now. */
function migrate(db: RootDatabase, storePath: string, migrations: readonly StoreMigration[]): number {
  const latest = migrations.length;
  let version: number;
  try {
    const found = db.get(metaKeys.marker) as { app?: unknown } | undefined;
    if (found === undefined) {
      let empty = true;
      for (const _ of db.getKeys({ limit: 1 })) empty = false;
      if (!empty) {
        throw invalid(
          storePath,
          'foreign',
          `the store ${storePath} is an LMDB file that taskhost did not write (it has no taskhost marker): ${moveAside}`,
        );
      }
      version = 0;
    } else {
      if (found?.app !== marker.app)
        throw invalid(storePath, 'foreign', `the store ${storePath} has a marker that is not taskhost's: ${moveAside}`);
      const stored = db.get(metaKeys.schemaVersion);
      if (!Number.isSafeInteger(stored) || (stored as number) < 0) {
        throw invalid(storePath, 'corrupt', `the store ${storePath} has no valid schema version (${JSON.stringify(stored)}): ${moveAside}`);
      }
      version = stored as number;
    }
  } catch (err) {
    if (err instanceof InvalidStoreError) throw err;
    // A value that is not JSON: another program's LMDB file.
    throw invalid(
      storePath,
      'foreign',
      `the store ${storePath} holds data taskhost did not write (${(err as Error).message}): ${moveAside}`,
      err,
    );
  }
  if (version > latest) {
    throw invalid(
      storePath,
      'newer',
      `the store ${storePath} has schema version ${version}, newer than this taskhost knows (${latest}): run the taskhost that wrote it, or ${moveAside}`,
    );
  }
  if (version === latest) return version;
  const tx: MigrationTransaction = {
    get: (key) => db.get(key),
    put: (key, value) => void db.putSync(key, value),
    remove: (key) => void db.removeSync(key),
    keys: (prefix) => [...db.getKeys({ start: prefix, end: prefixEnd(prefix) })] as string[],
  };
  let running = version;
  try {
    // One synchronous transaction for all of them: a throw (or a crash) leaves the old version.
    db.transactionSync(() => {
      if (version === 0) db.putSync(metaKeys.marker, marker);
      for (; running < latest; running++) {
        migrations[running]!.migrate(tx);
        db.putSync(metaKeys.schemaVersion, running + 1);
      }
    });
  } catch (err) {
    throw invalid(
      storePath,
      'migration',
      `migrating the store ${storePath} from version ${running} to ${running + 1} (${migrations[running]?.description}) failed: ${(err as Error).message}; the store stays at version ${version}`,
      err,
    );
  }
  return latest;
}
