/**
 * How errors leave the agent's API: every error code of shared/errors.ts has one HTTP status,
 * and the body is always `{ error: { code, message, details? } }`. Bad input is a 4xx, never a
 * 5xx; a plugin that failed is a 502 (it is the agent's upstream), a plugin that may come back a 503.
 */
import { Type, type Static } from '@sinclair/typebox';
import { errorCodes, TaskhostError } from '../shared/errors.js';

/** The body of every error response. */
export const ErrorBody = Type.Object(
  {
    error: Type.Object(
      {
        code: Type.String({ description: 'A stable code of docs/error-codes.md.' }),
        message: Type.String({ description: 'What is wrong and what to do next.' }),
        details: Type.Optional(
          Type.Record(Type.String(), Type.Unknown(), {
            description: 'Data about the error; for invalid input `errors: [{ path, message }]`, each path a JSON Pointer.',
          }),
        ),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, description: 'An error.' },
);
export type ErrorBody = Static<typeof ErrorBody>;

/** The HTTP status of each error code. Codes not listed (and errors of no code) are 500. */
export const httpStatusByCode: Readonly<Record<string, number>> = Object.freeze({
  INVALID_CONFIG: 400,
  UNAUTHORIZED: 401,
  TASK_NOT_FOUND: 404,
  PLUGIN_NOT_FOUND: 404,
  UNKNOWN_DEVICE: 404,
  ROUTE_NOT_FOUND: 404,
  TASK_EXISTS: 409,
  TASK_RUNNING: 409,
  TASK_NOT_RUNNING: 409,
  AGENT_RUNNING: 409,
  DATA_DIR_LOCKED: 409,
  // Other tasks hold the devices asked for: a conflict with them, not a sick node.
  NO_FREE_DEVICE: 409,
  // The events asked for were dropped from the bounded history (or are not there yet): the client
  // must list again rather than resume.
  EVENT_INDEX_UNAVAILABLE: 410,
  TASK_LOCKED: 423,
  TASKHOST_ERROR: 500,
  // A store the agent refuses to open stops it at start; over HTTP it could only be the server's fault.
  STORE_INVALID: 500,
  NOT_IMPLEMENTED: 501,
  PLUGIN_ERROR: 502,
  PLUGIN_FAILED: 502,
  PLUGIN_LOAD_FAILED: 502,
  PLUGIN_CONTRACT: 502,
  INVALID_MANIFEST: 502,
  INVALID_SCHEMA: 502,
  API_VERSION_MISMATCH: 502,
  PLUGIN_CRASHED: 503,
  PLUGIN_SHUTDOWN: 503,
  DEVICE_UNHEALTHY: 503,
  // Raised by clients of the agent only (no agent answered); an agent never sends it.
  AGENT_UNREACHABLE: 503,
  CANCELLED: 503,
  TIMEOUT: 504,
});

/** An error ready to send: its status, its body, and headers such as Retry-After. */
export interface HttpError {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
}

/**
 * The response for anything thrown. A taskhost error keeps its code, message and details; any
 * other error is a 500 with code TASKHOST_ERROR whose message says the agent failed (its own
 * message is kept: the API is local and the caller is the node's operator). `status` overrides
 * the code's status (413 for a body too large is still INVALID_CONFIG).
 */
export function toHttpError(err: unknown, status?: number): HttpError {
  const headers: Record<string, string> = {};
  if (!(err instanceof TaskhostError)) {
    const message = `the agent failed: ${err instanceof Error ? err.message : String(err)}`;
    return { status: 500, body: { error: { code: TaskhostError.code, message } }, headers };
  }
  const body: ErrorBody = { error: { code: err.code, message: err.message } };
  if (err.details !== undefined) body.error.details = err.details;
  if (err.retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(err.retryAfterMs / 1000)));
  return { status: status ?? httpStatusFor(err.code), body, headers };
}

/** The status for an error code: its row of httpStatusByCode, or 500. */
export function httpStatusFor(code: string): number {
  return Object.hasOwn(httpStatusByCode, code) ? httpStatusByCode[code]! : 500;
}

/** The codes httpStatusByCode has no row for (none, a test checks): each new code needs one. */
export function unmappedErrorCodes(): string[] {
  return [...errorCodes.keys()].filter((code) => !Object.hasOwn(httpStatusByCode, code));
}
