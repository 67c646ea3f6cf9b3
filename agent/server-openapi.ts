/**
 * The OpenAPI 3.1 document of the agent's API, generated from the routes' TypeBox schemas, so
 * the description cannot drift from what the server validates. docs/openapi.json is a copy
 * (`npm run openapi` writes it; a test fails when it is stale).
 */
import { eventRouteDefinitions } from './event-routes.js';
import { ErrorBody } from './http-errors.js';
import { imageRouteDefinitions } from './image-routes.js';
import { nodeRouteDefinitions } from './node-routes.js';
import { builtinRoutes, type ApiRouteDefinition } from './server-routes.js';
import { taskLogRouteDefinitions } from './task-log-routes.js';
import { taskRouteDefinitions } from './task-routes.js';

type Json = Record<string, unknown>;

/** The routes the agent serves: the built-in ones, then those of tasks, logs, events, images and the node. */
export function agentRouteDefinitions(): ApiRouteDefinition[] {
  return [
    ...builtinRoutes,
    ...taskRouteDefinitions(),
    ...taskLogRouteDefinitions(),
    ...eventRouteDefinitions(),
    ...imageRouteDefinitions(),
    ...nodeRouteDefinitions(),
  ];
}

/** The OpenAPI document for a set of routes (the agent's by default). */
export function openApiDocument(routes: readonly ApiRouteDefinition[] = agentRouteDefinitions()): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of routes) {
    const url = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    (paths[url] ??= {})[route.method.toLowerCase()] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'taskhost agent API',
      version: '1',
      description:
        "The node agent's HTTP/1.1 JSON API, on the unix socket <dataDir>/agent.sock (no auth, mode 0600) and optionally on loopback TCP (Authorization: Bearer <token>). See docs/agent-api.md.",
    },
    paths,
    components: {
      schemas: { ErrorBody: plain(ErrorBody) },
      responses: {
        Error: { description: 'An error: docs/error-codes.md lists the codes.', content: json({ $ref: '#/components/schemas/ErrorBody' }) },
      },
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'Only on the loopback TCP listener; the token is in <dataDir>/agent.token.',
        },
      },
    },
  };
}

function operation(route: ApiRouteDefinition): Json {
  const op: Json = { operationId: route.operationId, summary: route.summary };
  const parameters = [
    ...parametersOf(route.schema.params, 'path'),
    ...parametersOf(route.schema.querystring, 'query'),
    ...parametersOf(route.schema.headers, 'header'),
  ];
  if (parameters.length) op.parameters = parameters;
  if (route.schema.body) op.requestBody = { required: true, content: json(plain(route.schema.body)) };
  const responses: Json = {};
  for (const [status, schema] of Object.entries(route.schema.response)) {
    responses[status] = {
      description: (schema as { description?: string }).description ?? `status ${status}`,
      content: json(plain(schema)),
    };
  }
  if (route.stream) {
    const { contentType, description, item } = route.stream;
    responses['200'] = {
      description: description ?? (item ? 'A stream: one JSON document a line.' : 'A stream of bytes.'),
      content: { [contentType]: { schema: item ? plain(item) : { type: 'string', format: 'binary' } } },
    };
  }
  responses.default = { $ref: '#/components/responses/Error' };
  op.responses = responses;
  return op;
}

function parametersOf(schema: object | undefined, where: 'path' | 'query' | 'header'): Json[] {
  if (!schema) return [];
  const { properties = {}, required = [] } = schema as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(properties).map(([name, s]) => {
    const parameter: Json = { name, in: where, required: where === 'path' || required.includes(name), schema: plain(s) };
    if (typeof s.description === 'string') parameter.description = s.description;
    return parameter;
  });
}

function json(schema: unknown): Json {
  return { 'application/json': { schema } };
}

/** A schema as JSON (TypeBox's symbol keys and our `errorMessage` keyword left out). */
function plain(schema: unknown): Json {
  return JSON.parse(JSON.stringify(schema, (key, value: unknown) => (key === 'errorMessage' ? undefined : value))) as Json;
}
