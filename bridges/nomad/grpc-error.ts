/** taskhost errors as gRPC status errors, with the code a gRPC client branches on. */
import * as grpc from '@grpc/grpc-js';
import { TaskhostError } from '../../shared/errors.js';

const codes: Record<string, grpc.status> = {
  INVALID_CONFIG: grpc.status.INVALID_ARGUMENT,
  INVALID_SCHEMA: grpc.status.FAILED_PRECONDITION,
  TASK_NOT_FOUND: grpc.status.NOT_FOUND,
  PLUGIN_NOT_FOUND: grpc.status.NOT_FOUND,
  TASK_EXISTS: grpc.status.ALREADY_EXISTS,
  TASK_RUNNING: grpc.status.FAILED_PRECONDITION,
  TASK_NOT_RUNNING: grpc.status.FAILED_PRECONDITION,
  NOT_IMPLEMENTED: grpc.status.UNIMPLEMENTED,
  CANCELLED: grpc.status.CANCELLED,
  TIMEOUT: grpc.status.DEADLINE_EXCEEDED,
  PLUGIN_CRASHED: grpc.status.UNAVAILABLE,
  PLUGIN_FAILED: grpc.status.UNAVAILABLE,
  PLUGIN_SHUTDOWN: grpc.status.UNAVAILABLE,
  PLUGIN_LOAD_FAILED: grpc.status.FAILED_PRECONDITION,
};

/** The status error for `err`: its taskhost code decides the gRPC code, its message is the details. */
export function grpcError(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof TaskhostError) return { code: codes[err.code] ?? grpc.status.UNKNOWN, details: err.message };
  return { code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) };
}

/** A unary handler from an async function: its result is the answer, what it throws the status error. */
export function unary<Req, Res>(
  handler: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => handler(call.request, call))
      .then(
        (response) => callback(null, response),
        (err: unknown) => callback(grpcError(err)),
      );
  };
}
