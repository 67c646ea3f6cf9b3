/**
 * Host-side checks of what a freshly loaded plugin says about itself, so the worker needs no
 * schema library: required methods, a valid info() that agrees with the manifest (type, name and
 * API versions), a schema that is an object or null.
 */
import { PluginLoadError } from '../shared/errors.js';
import { PluginInfo, requiredMethods, type PluginManifest } from '../shared/plugin.js';
import { compileSchema, formatIssues } from '../shared/schema.js';
import type { LoadResult } from './protocol.js';

const validateInfo = compileSchema<PluginInfo>(PluginInfo);

/** Returns the load result with `configSchema` normalised to null, or throws PluginLoadError. */
export function verifyPlugin(manifest: PluginManifest, loaded: LoadResult): LoadResult {
  const missing = requiredMethods[manifest.type].filter((m) => !loaded.methods.includes(m));
  if (missing.length) {
    throw new PluginLoadError(`${manifest.type} plugin "${manifest.name}" does not implement ${missing.join(', ')}`);
  }
  const checked = validateInfo(loaded.info);
  if (!checked.ok) throw new PluginLoadError(`info() returned an invalid value: ${formatIssues(checked.issues).join('; ')}`);
  const info = checked.value;
  if (info.name !== manifest.name || info.type !== manifest.type) {
    throw new PluginLoadError(`info() says ${info.type} "${info.name}" but package.json says ${manifest.type} "${manifest.name}"`);
  }
  // The host negotiates from the manifest before the plugin is loaded: both must say the same.
  if (!sameVersions(info.apiVersions, manifest.apiVersions)) {
    throw new PluginLoadError(
      `info() says apiVersions ${JSON.stringify(info.apiVersions)} but package.json says ${JSON.stringify(manifest.apiVersions)}: list the same API versions in both (the host picks one from package.json before it loads the plugin)`,
    );
  }
  const schema = loaded.configSchema ?? null;
  if (schema !== null && (typeof schema !== 'object' || Array.isArray(schema))) {
    throw new PluginLoadError(
      `configSchema() must return a JSON Schema object or null, got ${Array.isArray(schema) ? 'an array' : typeof schema}`,
    );
  }
  return { ...loaded, info, configSchema: schema };
}

/** The same versions, in any order. */
function sameVersions(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((v) => set.has(v));
}
