/**
 * The records the agent's store keeps (design.md section 10, after containerd's metadata store):
 * every record lives in a namespace, carries string labels, and has `createdAt`/`updatedAt` that
 * the store sets. One TypeBox schema per record gives both its type and its validator.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { TaskSpec } from '../shared/driver.js';
import { StringEnum } from '../shared/schema.js';

/** Namespaces (and ids) as containerd spells them: `[A-Za-z0-9]+([._-][A-Za-z0-9]+)*`, <= 76 characters. */
export const namePattern = '^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$';
export const maxNamespaceLength = 76;
/** A label's key and value together, in UTF-8 bytes. */
export const maxLabelBytes = 4096;

export const Namespace = Type.String({ pattern: namePattern, maxLength: maxNamespaceLength });
export const Labels = Type.Record(Type.String({ minLength: 1 }), Type.String());
const Timestamp = Type.String({ format: 'date-time' });

export const taskStates = ['pending', 'running', 'exited', 'failed', 'lost'] as const;
export type TaskRecordState = (typeof taskStates)[number];

export const ExitResultSchema = Type.Object({
  exitCode: Type.Integer(),
  signal: Type.Union([Type.String(), Type.Null()]),
  oomKilled: Type.Boolean(),
  err: Type.Optional(Type.String()),
});

/** The fields every record has, set by the store on each write. */
const stamped = { createdAt: Timestamp, updatedAt: Timestamp };

/** A task: its spec as submitted, where it stands, and how it ended. */
export const TaskRecord = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 256 }),
  namespace: Namespace,
  name: Type.String({ minLength: 1 }),
  driver: Type.String({ minLength: 1 }),
  state: StringEnum(taskStates),
  labels: Labels,
  // The API validates the spec against shared/driver.ts's TaskSpec before it is stored; the store
  // keeps it as given, so a spec from an older version still reads back.
  spec: Type.Unsafe<TaskSpec>({ type: 'object' }),
  exitResult: Type.Optional(ExitResultSchema),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: true })),
  ...stamped,
  startedAt: Type.Optional(Timestamp),
  completedAt: Type.Optional(Timestamp),
});
export type TaskRecord = Static<typeof TaskRecord>;

/**
 * An image the engine has (after balena: recorded only once the engine holds it), keyed by
 * `name:tag@digest`. `users` are the ids of the tasks that use it, so reference counts survive a
 * restart and counting twice is harmless; `removeAfter` is when an unused image may be collected.
 */
export const ImageRecord = Type.Object({
  ref: Type.String({ minLength: 1, maxLength: 1024 }),
  namespace: Namespace,
  name: Type.String({ minLength: 1 }),
  id: Type.String({ minLength: 1 }),
  digest: Type.Optional(Type.String()),
  sizeBytes: Type.Integer({ minimum: 0 }),
  users: Type.Array(Type.String()),
  labels: Labels,
  lastUsedAt: Type.Optional(Timestamp),
  removeAfter: Type.Optional(Timestamp),
  ...stamped,
});
export type ImageRecord = Static<typeof ImageRecord>;

/** Devices reserved for a task: which group, which device ids. */
export const ReservationRecord = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 256 }),
  namespace: Namespace,
  taskId: Type.String({ minLength: 1 }),
  devices: Type.Array(Type.Object({ name: Type.String({ minLength: 1 }), ids: Type.Array(Type.String()) })),
  labels: Labels,
  ...stamped,
});
export type ReservationRecord = Static<typeof ReservationRecord>;

/** One change, as the event stream (`GET /v1/events`) sends it. */
export interface StoreEvent {
  /** Strictly increasing across the store's life, restarts included. */
  index: number;
  /** What kind of record: `tasks`, `images`, `reservations`, or a topic a caller chose. */
  topic: string;
  /** What happened: `created`, `updated`, `deleted`, or a type a caller chose (`state`, say). */
  type: string;
  /** `<namespace>/<id>` of the record (`<namespace>/<ref>` for images). */
  key: string;
  payload: unknown;
}

/** A record as the caller gives it: the store sets `createdAt` and `updatedAt`. */
export type Unstamped<T> = Omit<T, 'createdAt' | 'updatedAt'> & { createdAt?: string; updatedAt?: string };
