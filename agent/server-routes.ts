/**
 * How the agent's API routes are written: a method, a fastify path, TypeBox schemas for what
 * comes in and goes out, and a handler that gets the validated parts and the request's namespace.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** The schemas of a route: each part of the request it validates, and each response by status. */
export interface RouteSchema {
  params?: TSchema;
  querystring?: TSchema;
  headers?: TSchema;
  body?: TSchema;
  response: Record<number, TSchema>;
}

type StaticOf<T> = T extends TSchema ? Static<T> : undefined;

/** What a handler gets: the validated parts, the namespace (`Taskhost-Namespace`) and fastify's request. */
export interface ApiRequest<S extends RouteSchema = RouteSchema> {
  params: StaticOf<S['params']>;
  query: StaticOf<S['querystring']>;
  body: StaticOf<S['body']>;
  namespace: string;
  raw: FastifyRequest;
  /**
   * Aborts when the caller hangs up or the server closes: a handler that waits or streams
   * (wait, logs, events) stops on it, so closing the agent never waits for a client.
   */
  gone: AbortSignal;
}

/** A route without its handler: what the OpenAPI document is made of. */
export interface ApiRouteDefinition<S extends RouteSchema = RouteSchema> {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A fastify path: `/v1/tasks/:id`. */
  url: string;
  operationId: string;
  summary: string;
  schema: S;
  /** A streamed `200` (logs, events): its content type and, for NDJSON, the schema of one line. */
  stream?: { contentType: string; description?: string; item?: TSchema };
}

/** A route of the agent's API. The handler's value is the response body (status: reply.code()). */
export interface ApiRoute<S extends RouteSchema = RouteSchema> extends ApiRouteDefinition<S> {
  handler(request: ApiRequest<S>, reply: FastifyReply): Promise<unknown>;
}

/** A route, typed from its schemas. */
export function defineRoute<S extends RouteSchema>(route: ApiRoute<S>): ApiRoute {
  return route as unknown as ApiRoute;
}

/** `GET /v1/health`'s body. */
export const HealthBody = Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false, description: 'The agent answers.' });

/** The routes every agent serves; createApiServer adds their handlers. */
export const builtinRoutes: readonly ApiRouteDefinition[] = Object.freeze([
  {
    method: 'GET',
    url: '/v1/health',
    operationId: 'health',
    summary: 'Whether the agent answers.',
    schema: { response: { 200: HealthBody } },
  },
  {
    method: 'GET',
    url: '/v1/openapi.json',
    operationId: 'openapi',
    summary: 'This document: the OpenAPI 3.1 description of the API.',
    schema: { response: { 200: Type.Object({}, { additionalProperties: true, description: 'An OpenAPI 3.1 document.' }) } },
  },
]);
