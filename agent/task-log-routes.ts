/**
 * `GET /v1/tasks/{id}/logs?type=stdout&follow=true&offset=N` (design.md section 10): a task's
 * output file as bytes, from a byte offset. Without `follow` it is what the file holds now;
 * with it, the stream goes on as the task writes and ends once the task has completed and its
 * file was read to the end. The agent reads the file the driver writes
 * (`<dataDir>/allocs/<allocId>/alloc/logs/<name>.stdout`): no helper process per task.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import { taskHostPaths } from '../drivers/prepare-task.js';
import { pause } from '../shared/pause.js';
import { TaskId } from './names.js';
import { defineRoute, type ApiRoute, type ApiRouteDefinition } from './server-routes.js';
import type { TaskRecord } from './store-records.js';
import { startStream, writeChunk } from './stream-response.js';
import { isTerminal, type TaskSupervisor } from './task-supervisor.js';

const LogsQuery = Type.Object(
  {
    type: Type.Optional(Type.Union([Type.Literal('stdout'), Type.Literal('stderr')], { description: 'Which stream; default stdout.' })),
    follow: Type.Optional(Type.Boolean({ description: 'Go on as the task writes, until it has completed.' })),
    offset: Type.Optional(Type.Integer({ minimum: 0, description: 'The first byte to send; default 0.' })),
  },
  { additionalProperties: false },
);

const schema = {
  params: Type.Object({ id: TaskId({ description: 'The task id, URL-encoded.' }) }),
  querystring: LogsQuery,
  response: {},
};

const definition = {
  method: 'GET',
  url: '/v1/tasks/:id/logs',
  operationId: 'taskLogs',
  summary: "The task's output as bytes; with follow=true, until the task has completed.",
  stream: { contentType: 'application/octet-stream', description: "The task's output, from the offset." },
} as const;

export interface TaskLogRouteOptions {
  /** How often a followed file is read again while nothing new came (default 250 ms). */
  pollMs?: number;
  /** Where a file that could not be read is told. */
  logger?: Logger;
}

/** The log routes without handlers, for the OpenAPI document. */
export function taskLogRouteDefinitions(): ApiRouteDefinition[] {
  return [{ ...definition, schema }];
}

/** The log routes of the tasks `supervisor` keeps, whose files are under `dataDir`. */
export function taskLogRoutes(supervisor: TaskSupervisor, dataDir: string, options: TaskLogRouteOptions = {}): ApiRoute[] {
  const pollMs = options.pollMs ?? 250;
  return [
    defineRoute({
      ...definition,
      schema,
      handler: async (request, reply) => {
        const { namespace, gone } = request;
        const { id } = request.params;
        const record = supervisor.get(namespace, id);
        const paths = taskHostPaths(dataDir, record.id);
        const file = request.query.type === 'stderr' ? paths.stderrPath : paths.stdoutPath;
        const follow = request.query.follow === true;
        const res = startStream(reply, { 'content-type': 'application/octet-stream' });
        // Wakes a follower as soon as the task settles, so its last bytes go out without a poll's delay.
        const settled = (wake: () => void) => {
          const onChange = (r: TaskRecord) => {
            if (r.namespace === namespace && r.id === id && isTerminal(r.state)) wake();
          };
          supervisor.on('changed', onChange);
          return () => supervisor.off('changed', onChange);
        };
        let handle: FileHandle | undefined;
        let offset = request.query.offset ?? 0;
        try {
          for (;;) {
            // The state first, then the read: what was written before the exit is all sent.
            const done = !follow || completed(supervisor, namespace, id);
            handle ??= await openIfThere(file);
            if (handle) {
              // A fresh buffer each time: the socket may still hold the last one when write returns.
              const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(64 * 1024), 0, 64 * 1024, offset);
              if (bytesRead > 0) {
                offset += bytesRead;
                await writeChunk(res, buffer.subarray(0, bytesRead), gone);
                continue;
              }
            }
            if (done || gone.aborted) break;
            await pause(pollMs, gone, settled);
          }
        } catch (err) {
          // The head is sent: a file that cannot be read ends the stream early, and the log says why.
          options.logger?.warn({ err, namespace, taskId: id, file }, 'reading the task output failed');
        } finally {
          await handle?.close();
          res.end();
        }
      },
    }),
  ];
}

/** Whether the task is exited, failed or lost (or its record was deleted meanwhile). */
function completed(supervisor: TaskSupervisor, namespace: string, id: string): boolean {
  try {
    return isTerminal(supervisor.get(namespace, id).state);
  } catch {
    return true;
  }
}

/** The file, or undefined while it does not exist yet (a task that has not started). */
async function openIfThere(file: string): Promise<FileHandle | undefined> {
  try {
    return await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
