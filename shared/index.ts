/** The plugin SDK (`taskhost/sdk`): everything a plugin author imports. Plugins see only this. */
export * from './errors.js';
export * from './plugin.js';
export * from './schema.js';
export * from './duration.js';
export * from './env.js';
export * from './driver.js';
export * from './method-args.js';
export * from './event-hub.js';
export * from './device.js';
export * from './image-ref.js';
export * from './pause.js';
export * from './output-tail.js';
// TypeBox, so a plugin's schemas need no dependency of their own: `Type.Object(...)` gives the
// JSON Schema its configSchema() or taskConfigSchema() returns, `Static<typeof X>` its type.
export { Type, type Static, type TSchema } from '@sinclair/typebox';
