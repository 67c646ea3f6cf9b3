/**
 * What went wrong in a dockerode call, by HTTP status or Node error code, never by message text
 * (docker-modem rejects with plain Errors carrying `statusCode`, `json` and `reason`).
 */

interface ModemError {
  statusCode?: number;
  code?: string;
  name?: string;
}

/** The HTTP status of a failed Engine call, or undefined for a transport error. */
export function dockerStatus(err: unknown): number | undefined {
  const status = (err as ModemError | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** 404: the container (or image) does not exist. */
export function isNotFound(err: unknown): boolean {
  return dockerStatus(err) === 404;
}

/** 304 or 409 on kill/stop: the container is not running, which a stop wants anyway. */
export function isNotRunning(err: unknown): boolean {
  const status = dockerStatus(err);
  return status === 304 || status === 409;
}

/** The call was aborted through its AbortSignal. */
export function isAbort(err: unknown): boolean {
  const e = err as ModemError | null;
  return e?.name === 'AbortError' || e?.code === 'ABORT_ERR';
}

/** The Engine could not be reached (no socket, refused, reset): worth retrying later. */
export function isUnreachable(err: unknown): boolean {
  return dockerStatus(err) === undefined && !isAbort(err);
}
