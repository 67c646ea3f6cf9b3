/**
 * What the Docker engine itself said, from a dockerode error: the body's `message` when the
 * modem parsed it, else the error text without docker-modem's "(HTTP code 409) conflict - " prefix.
 */
export function daemonMessage(err: unknown): string {
  const json = typeof err === 'object' && err !== null ? (err as { json?: unknown }).json : undefined;
  if (typeof json === 'object' && json !== null && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message.trim();
  }
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}
