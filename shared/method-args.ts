/**
 * The call contract in one table: how many arguments each plugin method declares before its
 * AbortSignal. The worker pads a call's arguments with undefined up to that count (and drops
 * any beyond it), then appends the signal, so `stopTask(id, timeoutMs)` reaches the plugin as
 * `stopTask(id, timeoutMs, undefined, signal)`. The types below tie each count to the method's
 * signature in DriverPlugin and DevicePlugin: a table that drifts from them does not compile.
 * Type-only imports, so the worker can use this table without loading TypeBox or ajv.
 */
import type { DevicePlugin } from './device.js';
import type { DriverPlugin } from './driver.js';
import type { PluginType } from './plugin.js';

/** The declared arguments of a method: its parameters less a trailing AbortSignal. */
type Declared<F> = F extends (...args: infer A) => unknown ? (A extends [...infer Rest, AbortSignal] ? Rest : A) : never;

/** Each method of a plugin type and the number of arguments it declares. */
type Arities<P> = { readonly [K in keyof P]-?: Declared<NonNullable<P[K]>>['length'] };

/** The arity of every method of the driver and device contracts (base methods included). */
export const methodArity = {
  driver: {
    info: 0,
    configSchema: 0,
    setConfig: 1,
    init: 0,
    shutdown: 0,
    taskConfigSchema: 0,
    capabilities: 0,
    fingerprint: 0,
    startTask: 1,
    waitTask: 1,
    stopTask: 3,
    destroyTask: 2,
    inspectTask: 1,
    recoverTask: 1,
    taskStats: 2,
    taskEvents: 0,
    signalTask: 2,
    execTask: 3,
    validateTask: 1,
  },
  device: {
    info: 0,
    configSchema: 0,
    setConfig: 1,
    init: 0,
    shutdown: 0,
    fingerprint: 0,
    reserve: 1,
    stats: 1,
  },
} as const satisfies { driver: Arities<DriverPlugin>; device: Arities<DevicePlugin> };

/** How many arguments `method` of a `type` plugin declares; undefined for a method outside the contract. */
export function arityOf(type: PluginType, method: string): number | undefined {
  const table: Readonly<Record<string, number>> = methodArity[type];
  return Object.hasOwn(table, method) ? table[method] : undefined;
}

/**
 * The arguments a plugin method receives: `args` padded with undefined (or cut) to the
 * method's arity, then `signal`. A method outside the contract gets `args` as sent, then `signal`.
 */
export function callArguments(type: PluginType, method: string, args: readonly unknown[], signal: AbortSignal): unknown[] {
  const arity = arityOf(type, method);
  if (arity === undefined) return [...args, signal];
  const declared = args.slice(0, arity);
  while (declared.length < arity) declared.push(undefined);
  return [...declared, signal];
}
