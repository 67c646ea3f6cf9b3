/**
 * `GET /v1/events` (design.md section 10): the store's events as NDJSON, one
 * `{ index, topic, type, key, payload }` a line, from after an index, then each new one as it
 * is committed, for as long as the caller reads. A caller that lost its connection, or whose
 * agent restarted, resumes with `?index=<the last index it saw>` and misses nothing the history
 * still holds; an index the history no longer holds is `410` before the stream starts, or an
 * error line at its end when a reader fell that far behind. While nothing happens a `{}` line
 * every `heartbeatMs` tells a reader the stream is alive.
 */
import { Type } from '@sinclair/typebox';
import { toHttpError } from './http-errors.js';
import { defineRoute, type ApiRoute, type ApiRouteDefinition } from './server-routes.js';
import type { AgentStore } from './store.js';
import type { StoreEvent } from './store-records.js';
import { startStream, writeChunk } from './stream-response.js';

/** The topics of the agent's events. `devices` are the node's, sent to every namespace. */
export const eventTopics = ['tasks', 'images', 'reservations', 'devices'] as const;

const Topic = Type.Union(
  eventTopics.map((t) => Type.Literal(t)),
  { description: 'A topic: `tasks`, `images`, `reservations` or `devices`.' },
);

const EventsQuery = Type.Object(
  {
    index: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'Send the events after this index (the last one the caller saw); without it, every event the history still holds.',
      }),
    ),
    topic: Type.Optional(Type.Union([Topic, Type.Array(Topic)], { description: 'Only these topics (several: any of them).' })),
  },
  { additionalProperties: false },
);

/** One line of the stream. */
export const EventLine = Type.Object(
  {
    index: Type.Integer({ minimum: 1, description: 'Strictly increasing across the agent’s life, restarts included.' }),
    topic: Type.String({ description: 'tasks, images, reservations or devices.' }),
    type: Type.String({ description: 'created, updated or deleted for records; changed or health for devices.' }),
    key: Type.String({ description: '`<namespace>/<id>` of the record; the plugin or `node` for devices.' }),
    payload: Type.Unknown({ description: 'The record as written (a deleted one: as it was), or the device state.' }),
  },
  { description: 'An event. A line `{}` is a heartbeat; a line `{ error }` ends the stream (see docs/agent-api.md).' },
);

const schema = { querystring: EventsQuery, response: {} };

const definition = {
  method: 'GET',
  url: '/v1/events',
  operationId: 'streamEvents',
  summary: 'The events after an index as NDJSON, then each new one; resumable from the last index seen.',
  stream: { contentType: 'application/x-ndjson', item: EventLine },
} as const;

export interface EventRouteOptions {
  /** How long the stream may be silent before a `{}` line (default 10 s). */
  heartbeatMs?: number;
}

/** The event routes without handlers, for the OpenAPI document. */
export function eventRouteDefinitions(): ApiRouteDefinition[] {
  return [{ ...definition, schema }];
}

/** The event routes, served from `store`. */
export function eventRoutes(store: AgentStore, options: EventRouteOptions = {}): ApiRoute[] {
  const heartbeatMs = options.heartbeatMs ?? 10_000;
  return [
    defineRoute({
      ...definition,
      schema,
      handler: async (request, reply) => {
        const { namespace, gone } = request;
        const after = request.query.index ?? store.oldestEventIndex - 1;
        // An index the history cannot serve is a 410 while a status can still be sent.
        store.eventsSince(after, { limit: 1 });
        const given = request.query.topic;
        const topics = new Set<string>(given === undefined ? eventTopics : Array.isArray(given) ? given : [given]);
        const wanted = (event: StoreEvent) =>
          topics.has(event.topic) && (event.topic === 'devices' || event.key.startsWith(`${namespace}/`));
        const res = startStream(reply, { 'content-type': 'application/x-ndjson', 'taskhost-last-index': String(store.lastEventIndex) });
        let wrote = Date.now();
        const heartbeat = setInterval(() => {
          if (Date.now() - wrote < heartbeatMs) return;
          wrote = Date.now();
          res.write('{}\n');
        }, heartbeatMs);
        try {
          for await (const event of store.watchEvents(after, { signal: gone })) {
            if (!wanted(event)) continue;
            wrote = Date.now();
            await writeChunk(res, JSON.stringify(event) + '\n', gone);
          }
        } catch (err) {
          // A reader that fell out of the history (or a store that failed) hears why, then the end.
          if (!gone.aborted) res.write(JSON.stringify(toHttpError(err).body) + '\n');
        } finally {
          clearInterval(heartbeat);
          res.end();
        }
      },
    }),
  ];
}
