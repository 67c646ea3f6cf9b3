/**
 * The task routes of the agent's API (design.md section 10) over a TaskSupervisor. The schemas
 * live apart from the handlers (taskRouteDefinitions), so the OpenAPI document needs no
 * supervisor. The namespace is the `Taskhost-Namespace` header's.
 */
import { Type } from '@sinclair/typebox';
import { TaskSpec } from '../shared/driver.js';
import { Duration, parseDuration } from '../shared/duration.js';
import { LabelsUpdate } from './field-mask.js';
import { parseFilters } from './filter.js';
import { TaskId } from './names.js';
import { defineRoute, type ApiRoute, type ApiRouteDefinition, type RouteSchema } from './server-routes.js';
import { TaskRecord } from './store-records.js';
import type { TaskSupervisor } from './task-supervisor.js';

/** A task record as the API sends it (its spec kept whole). */
export const TaskRecordBody = Type.Object(
  { ...TaskRecord.properties, spec: Type.Object({}, { additionalProperties: true, description: 'The task spec as submitted.' }) },
  { description: 'A task record.' },
);

const IdParams = Type.Object({ id: TaskId({ description: 'The task id, URL-encoded (`a1%2Fweb%2F0123abcd`).' }) });

export const StopBody = Type.Object(
  {
    timeout: Type.Optional(
      Duration({ description: 'How long the task has after its kill signal before SIGKILL; default its killTimeout.' }),
    ),
    force: Type.Optional(
      Type.Boolean({
        description:
          'Go ahead while the task holds its update lock (its TASKHOST_LOCK_FILE exists): the file is removed, then the task stopped.',
      }),
    ),
  },
  { additionalProperties: false, description: 'How to stop the task; `{}` for its defaults.' },
);

export const SignalBody = Type.Object(
  { signal: Type.String({ pattern: '^SIG[A-Z0-9]+$', description: 'A signal name such as SIGHUP.' }) },
  { additionalProperties: false },
);

const DeleteQuery = Type.Object(
  {
    force: Type.Optional(
      Type.Boolean({
        description:
          'Go ahead while the task’s update lock file (its TASKHOST_LOCK_FILE) is still there: the file is removed, then the record.',
      }),
    ),
  },
  { additionalProperties: false },
);

const ListQuery = Type.Object(
  {
    filter: Type.Optional(
      Type.Union([Type.String(), Type.Array(Type.String())], {
        description: 'containerd filters (`labels.team==a,state!=exited`); several filters are OR-ed.',
      }),
    ),
  },
  { additionalProperties: false },
);

const schemas = {
  submit: { body: TaskSpec, response: { 201: TaskRecordBody } },
  list: { querystring: ListQuery, response: { 200: Type.Object({ tasks: Type.Array(TaskRecordBody) }, { description: 'The tasks.' }) } },
  get: { params: IdParams, response: { 200: TaskRecordBody } },
  patch: { params: IdParams, body: LabelsUpdate, response: { 200: TaskRecordBody } },
  wait: { params: IdParams, response: { 200: TaskRecordBody } },
  stop: { params: IdParams, body: StopBody, response: { 202: TaskRecordBody } },
  signal: { params: IdParams, body: SignalBody, response: { 202: TaskRecordBody } },
  delete: { params: IdParams, querystring: DeleteQuery, response: { 204: Type.Null({ description: 'Deleted.' }) } },
} satisfies Record<string, RouteSchema>;

type Name = keyof typeof schemas;

const definitions: { [N in Name]: Omit<ApiRouteDefinition<(typeof schemas)[N]>, 'schema'> } = {
  submit: { method: 'POST', url: '/v1/tasks', operationId: 'submitTask', summary: 'Stores the task pending, then starts it.' },
  list: { method: 'GET', url: '/v1/tasks', operationId: 'listTasks', summary: "The namespace's tasks, filtered." },
  get: { method: 'GET', url: '/v1/tasks/:id', operationId: 'getTask', summary: 'The task record.' },
  patch: { method: 'PATCH', url: '/v1/tasks/:id', operationId: 'updateTask', summary: "Updates the task's labels (field masks)." },
  wait: { method: 'GET', url: '/v1/tasks/:id/wait', operationId: 'waitTask', summary: 'Waits until the task exited, failed or was lost.' },
  stop: {
    method: 'POST',
    url: '/v1/tasks/:id/stop',
    operationId: 'stopTask',
    summary: 'Asks the driver to stop the running task; 423 while it holds its update lock, unless `force`.',
  },
  signal: { method: 'POST', url: '/v1/tasks/:id/signal', operationId: 'signalTask', summary: 'Sends a signal to the running task.' },
  delete: {
    method: 'DELETE',
    url: '/v1/tasks/:id',
    operationId: 'deleteTask',
    summary: "Deletes a completed task's record; 423 while its update lock file is there, unless `?force=true`.",
  },
};

/** The task routes without handlers, for the OpenAPI document. */
export function taskRouteDefinitions(): ApiRouteDefinition[] {
  return (Object.keys(definitions) as Name[]).map((name) => ({ ...definitions[name], schema: schemas[name] }) as ApiRouteDefinition);
}

/** The task routes, served by `supervisor`. */
export function taskRoutes(supervisor: TaskSupervisor): ApiRoute[] {
  return [
    defineRoute({
      ...definitions.submit,
      schema: schemas.submit,
      handler: async (request, reply) => {
        const record = await supervisor.submit(request.namespace, request.body);
        reply.code(201);
        return record;
      },
    }),
    defineRoute({
      ...definitions.list,
      schema: schemas.list,
      handler: async (request) => {
        const given = request.query.filter;
        const filters = given === undefined ? [] : Array.isArray(given) ? given : [given];
        const keep = parseFilters(filters, { path: '/query/filter' });
        return { tasks: supervisor.list(request.namespace, keep) };
      },
    }),
    defineRoute({
      ...definitions.get,
      schema: schemas.get,
      handler: async (request) => supervisor.get(request.namespace, request.params.id),
    }),
    defineRoute({
      ...definitions.patch,
      schema: schemas.patch,
      handler: async (request) => supervisor.updateLabels(request.namespace, request.params.id, request.body),
    }),
    defineRoute({
      ...definitions.wait,
      schema: schemas.wait,
      handler: async (request) => supervisor.wait(request.namespace, request.params.id, request.gone),
    }),
    defineRoute({
      ...definitions.stop,
      schema: schemas.stop,
      handler: async (request, reply) => {
        const { timeout, force } = request.body;
        await supervisor.stop(request.namespace, request.params.id, {
          ...(timeout === undefined ? {} : { timeoutMs: parseDuration(timeout) }),
          ...(force === undefined ? {} : { force }),
        });
        reply.code(202);
        return supervisor.get(request.namespace, request.params.id);
      },
    }),
    defineRoute({
      ...definitions.signal,
      schema: schemas.signal,
      handler: async (request, reply) => {
        await supervisor.signal(request.namespace, request.params.id, request.body.signal);
        reply.code(202);
        return supervisor.get(request.namespace, request.params.id);
      },
    }),
    defineRoute({
      ...definitions.delete,
      schema: schemas.delete,
      handler: async (request, reply) => {
        await supervisor.delete(request.namespace, request.params.id, { force: request.query.force === true });
        reply.code(204);
        return null;
      },
    }),
  ];
}
