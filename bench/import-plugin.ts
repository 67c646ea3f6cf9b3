/**
 * Imports a plugin module the way the host's worker does (default export: the plugin object, or
 * a function returning it), for the arms that serve the plugin without taskhost.
 */
export type PluginMethods = Record<string, unknown>;

export async function importPlugin(entry: string): Promise<PluginMethods> {
  const mod = (await import(entry)) as { default?: unknown };
  let exported = mod.default;
  if (typeof exported === 'function') exported = await (exported as () => unknown)();
  if (typeof exported !== 'object' || exported === null) throw new Error(`${entry} does not export a plugin object`);
  return exported as PluginMethods;
}

/** Calls a plugin method by name, as the host does (sync or async methods alike). */
export async function invoke(plugin: PluginMethods, method: string, args: readonly unknown[]): Promise<unknown> {
  const fn = plugin[method];
  if (typeof fn !== 'function') throw new Error(`the plugin does not implement ${method}()`);
  return await (fn as (...a: unknown[]) => unknown).call(plugin, ...args);
}

/** Names of the plugin's methods. */
export function methodNames(plugin: PluginMethods): string[] {
  return Object.keys(plugin).filter((key) => typeof plugin[key] === 'function');
}
