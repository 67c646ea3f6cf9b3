/**
 * grpc-js handlers from async functions: a unary call from a function that resolves with the
 * reply, a server stream from one that writes into the call; each gets an AbortSignal that
 * aborts when the client cancels (or the service closes), and anything thrown becomes a gRPC
 * status error (grpcError).
 */
import type * as grpc from '@grpc/grpc-js';
import { grpcError } from './grpc-error.js';

/** A unary handler. `recoverable`: a recoverable failure carries Nomad's RecoverableError detail. */
export function unary<Req, Res>(
  closing: AbortSignal,
  work: (request: Req, signal: AbortSignal) => Promise<Res>,
  options: { recoverable?: boolean } = {},
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const signal = callSignal(call, closing);
    work(call.request, signal).then(
      (reply) => callback(null, reply),
      (err: unknown) => callback(grpcError(err, options)),
    );
  };
}

/**
 * A server-streaming handler. `work` writes messages with `write` and resolves when the stream
 * is complete; the stream ends then, or with the error it throws. A stream the client cancelled
 * or the service closed just ends.
 */
export function serverStream<Req, Res>(
  closing: AbortSignal,
  work: (request: Req, write: (message: Res) => void, signal: AbortSignal) => Promise<void>,
): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    const signal = callSignal(call, closing);
    const write = (message: Res) => {
      if (!signal.aborted && !call.destroyed) call.write(message);
    };
    work(call.request, write, signal).then(
      () => {
        if (!call.destroyed) call.end();
      },
      (err: unknown) => {
        if (call.destroyed) return;
        if (signal.aborted) call.end();
        else call.emit('error', grpcError(err));
      },
    );
  };
}

/** Aborts when the client cancels the call or the service closes. */
function callSignal(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>, closing: AbortSignal) {
  const controller = new AbortController();
  const abort = () => controller.abort();
  call.on('cancelled', abort);
  closing.addEventListener('abort', abort, { once: true });
  controller.signal.addEventListener('abort', () => closing.removeEventListener('abort', abort), { once: true });
  call.on('finish', () => closing.removeEventListener('abort', abort));
  return controller.signal;
}

/** Resolves when the signal aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
