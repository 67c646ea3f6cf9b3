/**
 * taskhost errors as gRPC status errors, the way Nomad's plugin clients read them: the code
 * from the error's class, `CODE: message` as the status details, and for a recoverable start
 * failure Nomad's RecoverableError detail in `grpc-status-details-bin` (a google.rpc.Status),
 * which makes Nomad retry the start instead of failing the task. Every Nomad service (base,
 * driver, device) answers through this one mapping (grpc-handlers.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { TaskhostError, toErrorData } from '../../shared/errors.js';

const codeOf: Record<string, grpc.status> = {
  INVALID_CONFIG: grpc.status.INVALID_ARGUMENT,
  // The plugin's own schema does not compile: not the caller's fault, and no retry mends it.
  INVALID_SCHEMA: grpc.status.FAILED_PRECONDITION,
  TASK_NOT_FOUND: grpc.status.NOT_FOUND,
  PLUGIN_NOT_FOUND: grpc.status.NOT_FOUND,
  UNKNOWN_DEVICE: grpc.status.NOT_FOUND,
  TASK_EXISTS: grpc.status.ALREADY_EXISTS,
  TASK_RUNNING: grpc.status.FAILED_PRECONDITION,
  TASK_NOT_RUNNING: grpc.status.FAILED_PRECONDITION,
  TASK_LOCKED: grpc.status.FAILED_PRECONDITION,
  DEVICE_UNHEALTHY: grpc.status.FAILED_PRECONDITION,
  NO_FREE_DEVICE: grpc.status.RESOURCE_EXHAUSTED,
  NOT_IMPLEMENTED: grpc.status.UNIMPLEMENTED,
  CANCELLED: grpc.status.CANCELLED,
  TIMEOUT: grpc.status.DEADLINE_EXCEEDED,
  PLUGIN_CRASHED: grpc.status.UNAVAILABLE,
  PLUGIN_FAILED: grpc.status.UNAVAILABLE,
  // A plugin that cannot be imported stays so until someone fixes it.
  PLUGIN_LOAD_FAILED: grpc.status.FAILED_PRECONDITION,
  PLUGIN_SHUTDOWN: grpc.status.UNAVAILABLE,
};

/** What a grpc-js handler passes to its callback or `call.destroy()`. */
export type GrpcError = Partial<grpc.StatusObject> & Error;

/** The type URL of Nomad's RecoverableError (package hashicorp.nomad.plugins.shared.structs). */
export const recoverableErrorType = 'type.googleapis.com/hashicorp.nomad.plugins.shared.structs.RecoverableError';

/**
 * Anything thrown, as a status error. `recoverable`: when the error says it is (a crashed
 * plugin, a timeout, a device that is not ready), FailedPrecondition with the RecoverableError
 * detail, as Nomad's StartTask expects.
 */
export function grpcError(err: unknown, options: { recoverable?: boolean } = {}): GrpcError {
  const data = toErrorData(err);
  const message = `${data.code}: ${data.message}`;
  if (options.recoverable && data.recoverable) {
    const metadata = new grpc.Metadata();
    metadata.set('grpc-status-details-bin', statusDetails(grpc.status.FAILED_PRECONDITION, message));
    return Object.assign(new Error(message), { code: grpc.status.FAILED_PRECONDITION, details: message, metadata });
  }
  const code = err instanceof TaskhostError ? (codeOf[data.code] ?? grpc.status.INTERNAL) : grpc.status.INTERNAL;
  return Object.assign(new Error(message), { code, details: message });
}

/** A status error with this code and message. */
export function statusError(code: grpc.status, message: string): GrpcError {
  return Object.assign(new Error(message), { code, details: message });
}

/**
 * google.rpc.Status{code, message, details: [Any{RecoverableError{recoverable: true}}]} in
 * protobuf encoding. Written out by hand: three tiny messages, and no protobuf runtime of our
 * own to load just for them.
 */
export function statusDetails(code: number, message: string): Buffer {
  const recoverable = Buffer.from([0x08, 0x01]); // field 1, varint, true
  const any = Buffer.concat([field(1, Buffer.from(recoverableErrorType)), field(2, recoverable)]);
  return Buffer.concat([Buffer.from([0x08]), varint(code), field(2, Buffer.from(message)), field(3, any)]);
}

/** A length-delimited field. */
function field(number: number, bytes: Buffer): Buffer {
  return Buffer.concat([varint((number << 3) | 2), varint(bytes.length), bytes]);
}

function varint(value: number): Buffer {
  const out: number[] = [];
  let v = value;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}
