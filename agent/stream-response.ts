/**
 * A streamed response (logs, events): fastify is told the handler answers by itself, the head
 * goes out once, and each write waits while the socket's buffer is full, so a slow reader slows
 * the agent's reads of the file or the store instead of growing the agent's memory.
 */
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';

/** Takes the response from fastify and sends the head; errors from here on go into the stream. */
export function startStream(reply: FastifyReply, headers: Record<string, string>): ServerResponse {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'cache-control': 'no-store', ...headers });
  res.flushHeaders();
  return res;
}

/** Writes `chunk`; resolves once the socket takes more (or the caller is gone). */
export async function writeChunk(res: ServerResponse, chunk: string | Uint8Array, gone: AbortSignal): Promise<void> {
  if (res.write(chunk) || gone.aborted || res.destroyed) return;
  await once(res, 'drain', { signal: gone }).catch(() => undefined);
}
