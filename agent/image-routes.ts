/**
 * `GET /v1/images` (design.md section 10): the namespace's image records, as ImageRecords keeps
 * them. The schema lives apart from the handler, so the OpenAPI document needs no agent.
 */
import { Type } from '@sinclair/typebox';
import type { ImageRecords } from './image-records.js';
import { defineRoute, type ApiRoute, type ApiRouteDefinition } from './server-routes.js';
import type { ImageRecord } from './store-records.js';

const Timestamp = (description: string) => Type.String({ format: 'date-time', description });

/** One image as the API sends it. */
export const ImageBody = Type.Object(
  {
    ref: Type.String({ description: 'The record key: `name:tag@digest` (no `@digest` when the engine knows none for this name).' }),
    name: Type.String({ description: 'The image as Docker shows it: `busybox:1.36`.' }),
    id: Type.String({ description: "The engine's image id, `sha256:...`." }),
    digest: Type.Optional(Type.String({ description: 'The repository digest, when the engine has one for this name.' })),
    sizeBytes: Type.Integer({ minimum: 0, description: "The image's size on the engine." }),
    users: Type.Array(Type.String(), { description: 'The ids of the tasks that use it now.' }),
    lastUsedAt: Type.Optional(Timestamp('When a task last started or stopped using it.')),
    removeAfter: Type.Optional(Timestamp("When it is collected, unused (the docker plugin's `gc.imageDelay` after its last use).")),
  },
  { additionalProperties: false, description: 'An image record.' },
);

const schema = {
  response: { 200: Type.Object({ images: Type.Array(ImageBody) }, { additionalProperties: false, description: 'The images.' }) },
};

const definition = {
  method: 'GET',
  url: '/v1/images',
  operationId: 'listImages',
  summary: "The namespace's images: those its docker tasks ran, with their users.",
} as const;

/** The image routes without handlers, for the OpenAPI document. */
export function imageRouteDefinitions(): ApiRouteDefinition[] {
  return [{ ...definition, schema }];
}

/** The image routes, served from `images`. */
export function imageRoutes(images: ImageRecords): ApiRoute[] {
  return [
    defineRoute({
      ...definition,
      schema,
      handler: async (request) => ({ images: images.list(request.namespace).map(imageBody) }),
    }),
  ];
}

function imageBody(record: ImageRecord) {
  const { ref, name, id, digest, sizeBytes, users, lastUsedAt, removeAfter } = record;
  return {
    ref,
    name,
    id,
    ...(digest === undefined ? {} : { digest }),
    sizeBytes,
    users,
    ...(lastUsedAt === undefined ? {} : { lastUsedAt }),
    ...(removeAfter === undefined ? {} : { removeAfter }),
  };
}
