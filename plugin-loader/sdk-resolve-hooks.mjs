// Module resolve hooks of every plugin worker (registered by worker.mjs with node:module's
// register()): they make `taskhost/sdk` resolve to the host's own SDK entry, so a plugin needs
// no copy of taskhost in its node_modules, and its error classes are the host's.
//
// Which module may import `taskhost/sdk` is decided by the nearest package.json above it:
// - `taskhost` in its peerDependencies (or, as a plugin that installed its own copy would have
//   it, in dependencies or optionalDependencies): the host's SDK, always, even when the plugin
//   has a node_modules/taskhost of its own;
// - no such declaration: the import fails with an error that says how to declare it.
// Plain `taskhost` (the host library, not for plugins) resolves as Node would; where it cannot,
// the error points at `taskhost/sdk`. Modules of the host's own package are left alone.
// Plain JavaScript, as worker.mjs is: the hooks run before any TypeScript loader can help.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Set by initialize(): the file: URL of the SDK entry, the host's package.json, its version. */
let sdk = '';
let hostManifest = '';
let range = '^0.1.0';

export function initialize(data) {
  sdk = data.sdk;
  hostManifest = data.hostManifest;
  const [major, minor] = String(data.version ?? '').split('.');
  if (major !== undefined && minor !== undefined) range = major === '0' ? `^0.${minor}.0` : `^${major}.0.0`;
}

/** Folder -> the nearest package.json at or above it, parsed (null: none up to the root). */
const manifests = new Map();

function nearestManifest(dir) {
  if (manifests.has(dir)) return manifests.get(dir);
  let found;
  const file = path.join(dir, 'package.json');
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    text = undefined;
  }
  if (text !== undefined) {
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = {};
    }
    found = { file, json: typeof json === 'object' && json !== null ? json : {} };
  } else {
    const up = path.dirname(dir);
    found = up === dir ? null : nearestManifest(up);
  }
  manifests.set(dir, found);
  return found;
}

const declares = (json, field) => typeof json[field] === 'object' && json[field] !== null && 'taskhost' in json[field];
const declaresAny = (json) =>
  declares(json, 'peerDependencies') || declares(json, 'dependencies') || declares(json, 'optionalDependencies');

/** Whether the package.json nearest to `file` (a path) lets it import `taskhost/sdk`. */
export function declaresTaskhost(file) {
  return declaresAny(nearestManifest(path.dirname(file))?.json ?? {});
}

export async function resolve(specifier, context, nextResolve) {
  if (specifier !== 'taskhost/sdk' && specifier !== 'taskhost') return nextResolve(specifier, context);
  const parent = context.parentURL?.startsWith('file:') ? fileURLToPath(context.parentURL) : undefined;
  const manifest = parent === undefined ? null : nearestManifest(path.dirname(parent));
  if (parent === undefined || manifest?.file === hostManifest) return nextResolve(specifier, context);
  if (specifier === 'taskhost') {
    try {
      return await nextResolve(specifier, context);
    } catch (err) {
      if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
      throw new Error(
        `${parent} imports 'taskhost', the host library, which plugins do not get: import the plugin SDK from 'taskhost/sdk' instead`,
        { cause: err },
      );
    }
  }
  const json = manifest?.json ?? {};
  if (declaresAny(json)) {
    // Through the rest of the chain, so that from sources tsx resolves (and then loads) the .ts entry.
    return nextResolve(sdk, context);
  }
  const where = manifest ? manifest.file : `a package.json next to ${parent}`;
  const message =
    `${parent} imports 'taskhost/sdk', but ${where} does not declare taskhost as a peer dependency; ` +
    `add "peerDependencies": { "taskhost": "${range}" } to it (the host provides the SDK: no node_modules needed)`;
  throw Object.assign(new Error(message), { code: 'ERR_TASKHOST_SDK_NOT_DECLARED' });
}
