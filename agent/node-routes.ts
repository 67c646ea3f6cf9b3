/**
 * The node's routes (design.md section 10): `GET /v1/node` (the node's attributes, each
 * driver's health and attributes, the device groups), and `GET /v1/devices` and
 * `GET /v1/devices/stats`, the documents `taskhost devices --json` and
 * `taskhost devices stats --json` print, from the agent's own managers.
 */
import { Type } from '@sinclair/typebox';
import type { DeviceManager } from '../devices/device-manager.js';
import type { DriverManager } from '../drivers/driver-manager.js';
import { defineRoute, type ApiRoute, type ApiRouteDefinition } from './server-routes.js';

const open = (description: string) => Type.Object({}, { additionalProperties: true, description });

/** `{ groups, plugins }`, as `taskhost devices --json`. */
export const DevicesBody = Type.Object(
  {
    groups: Type.Array(open('A device group (vendor, type, name, attributes) with its devices and their health.')),
    plugins: Type.Array(open("A device plugin's health: name, health, healthDescription, fingerprinted, groups, updatedAt.")),
  },
  { additionalProperties: false, description: "The node's device groups and the state of each device plugin." },
);

export const NodeBody = Type.Object(
  {
    attributes: Type.Record(Type.String(), Type.String(), {
      description: "The node's attributes: the host's (`kernel.name`, `cpu.arch`, ...) and each driver's (`driver.docker.version`, ...).",
    }),
    drivers: Type.Array(open("A driver's health: name, health, healthDescription, attributes, fingerprinted, updatedAt.")),
    devices: DevicesBody,
  },
  { additionalProperties: false, description: 'The node as the agent sees it.' },
);

const DeviceStatsBody = Type.Object(
  {
    collectedAt: Type.String({ format: 'date-time' }),
    groups: Type.Array(open("A group's latest stats: id, plugin, stats (null before the first sample), sampledAt, staleMs.")),
  },
  { additionalProperties: false, description: 'The latest stats of every device group, as `taskhost devices stats --json`.' },
);

const schemas = {
  node: { response: { 200: NodeBody } },
  devices: { response: { 200: DevicesBody } },
  deviceStats: { response: { 200: DeviceStatsBody } },
};

const definitions = {
  node: { method: 'GET', url: '/v1/node', operationId: 'getNode', summary: "The node's attributes, drivers and devices." },
  devices: { method: 'GET', url: '/v1/devices', operationId: 'listDevices', summary: 'The device groups and device plugins.' },
  deviceStats: { method: 'GET', url: '/v1/devices/stats', operationId: 'deviceStats', summary: 'The latest stats of every device group.' },
} as const;

/** The node routes without handlers, for the OpenAPI document. */
export function nodeRouteDefinitions(): ApiRouteDefinition[] {
  return (Object.keys(definitions) as (keyof typeof definitions)[]).map((name) => ({ ...definitions[name], schema: schemas[name] }));
}

/** The node routes, from the agent's driver and device managers. */
export function nodeRoutes(drivers: DriverManager, devices: DeviceManager): ApiRoute[] {
  const deviceDoc = () => ({ groups: devices.devices(), plugins: devices.health() });
  return [
    defineRoute({
      ...definitions.node,
      schema: schemas.node,
      handler: async () => ({
        attributes: drivers.nodeAttributes(),
        drivers: drivers.health().sort((a, b) => a.name.localeCompare(b.name)),
        devices: deviceDoc(),
      }),
    }),
    defineRoute({ ...definitions.devices, schema: schemas.devices, handler: async () => deviceDoc() }),
    defineRoute({ ...definitions.deviceStats, schema: schemas.deviceStats, handler: async () => devices.stats() }),
  ];
}
