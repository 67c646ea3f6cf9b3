/**
 * POST /containers/{id}/wait, made so that a dropped connection is an error. dockerode's own
 * wait() reads the body with no error handler once the headers have arrived, so when the Engine
 * restarts mid-wait that promise never settles and the exit would never be seen. Here the body
 * is read as a stream, and a stream that closes before its end rejects.
 */
import { text } from 'node:stream/consumers';
import type Docker from 'dockerode';

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

/** Resolves with the Engine's answer once the condition is met; never times out by itself. */
export function waitContainer(
  container: Docker.Container,
  condition: WaitCondition,
  signal: AbortSignal,
): Promise<{ StatusCode?: number }> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError());
    container.modem.dial(
      {
        path: `/containers/${container.id}/wait?`,
        method: 'POST',
        isStream: true,
        abortSignal: signal,
        statusCodes: { 200: true, 400: 'bad parameter', 404: 'no such container', 500: 'server error' },
        options: { condition },
      },
      (err: unknown, res: unknown) => {
        if (err) return reject(err);
        const body = res as NodeJS.ReadableStream & { destroy(error?: Error): void };
        const onAbort = () => body.destroy(abortError());
        signal.addEventListener('abort', onAbort, { once: true });
        text(body).then(
          (answer) => {
            signal.removeEventListener('abort', onAbort);
            try {
              resolve(JSON.parse(answer) as { StatusCode?: number });
            } catch {
              reject(new Error(`the Engine's answer to a wait is not JSON: ${answer.slice(0, 200)}`));
            }
          },
          (error: unknown) => {
            signal.removeEventListener('abort', onAbort);
            reject(signal.aborted ? abortError() : error);
          },
        );
      },
    );
  });
}

function abortError(): Error {
  return Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}
