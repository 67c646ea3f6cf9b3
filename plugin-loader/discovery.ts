/**
 * Finds plugins: the built-in folders and every folder of the plugin directory whose
 * package.json has a `taskhost` manifest (design.md section 3). Discovery only reads files;
 * a broken or incompatible plugin becomes a `skipped` entry with its reason, never an exception.
 */
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import semver from 'semver';
import { hostApiVersions, PluginManifest, type PluginType } from '../shared/plugin.js';
import { compileSchema, formatIssues } from '../shared/schema.js';

/** Where a plugin came from: shipped with taskhost, the plugin directory, or named by path. */
export type PluginSource = 'builtin' | 'plugin-dir' | 'path';

export interface PluginCandidate {
  name: string;
  type: PluginType;
  /** The package.json version. */
  version: string;
  manifest: PluginManifest;
  /** The API version chosen for it: the highest both sides speak. */
  apiVersion: string;
  dir: string;
  /** file: URL of the entry module. */
  entry: string;
  source: PluginSource;
}

export interface SkippedPlugin {
  /** The manifest's name when it could be read, else the folder name. */
  name: string;
  dir: string;
  source: PluginSource;
  code: 'INVALID_MANIFEST' | 'API_VERSION_MISMATCH' | 'SHADOWED' | 'BROKEN_LINK';
  reason: string;
}

export interface Discovery {
  plugins: PluginCandidate[];
  skipped: SkippedPlugin[];
  /** Set when the plugin directory does not exist (not an error: there are just no plugins there). */
  pluginDirMissing?: boolean;
}

const validateManifest = compileSchema<PluginManifest>(PluginManifest);
const builtinRoot = fileURLToPath(new URL('..', import.meta.url));

/** Folders of the plugins that ship with taskhost (loaded through the same workers as any plugin). */
export const builtinPluginDirs: readonly string[] = [
  'drivers/docker',
  'drivers/mock',
  'drivers/raw_exec',
  'devices/example-file',
  'devices/nvidia',
].map((d) => path.join(builtinRoot, d));

/** Highest API version both sides speak, or undefined. Versions are "major.minor". */
export function negotiateApiVersion(host: readonly string[], plugin: readonly string[]): string | undefined {
  const key = (v: string) => v.split('.').map(Number) as [number, number];
  const byNewest = (a: string, b: string) => {
    const [am, an] = key(a);
    const [bm, bn] = key(b);
    return bm - am || bn - an;
  };
  const theirs = new Set(plugin);
  return [...host].sort(byNewest).find((v) => theirs.has(v));
}

export interface DiscoverOptions {
  pluginDir: string;
  builtinDirs?: readonly string[] | undefined;
  /** Plugin folders named one by one (e.g. by `taskhost conformance PATH`). */
  extraDirs?: readonly string[] | undefined;
  /**
   * Built-ins that a plugin of the plugin directory with the same name may replace (the agent
   * config's `plugins.<name>.replaceBuiltin`); any other such plugin is skipped, saying so.
   */
  replaceBuiltins?: readonly string[] | undefined;
}

export async function discover(options: DiscoverOptions): Promise<Discovery> {
  const found: PluginCandidate[] = [];
  const skipped: SkippedPlugin[] = [];
  const read = async (dir: string, source: PluginSource) => {
    const result = await readPlugin(dir, source);
    if (result === undefined) return;
    if ('reason' in result) skipped.push(result);
    else found.push(result);
  };
  for (const dir of options.builtinDirs ?? builtinPluginDirs) await read(dir, 'builtin');
  const discovery: Discovery = { plugins: [], skipped };
  const folders = await pluginFolders(options.pluginDir, skipped);
  if (folders === undefined) discovery.pluginDirMissing = true;
  for (const dir of folders ?? []) await read(dir, 'plugin-dir');
  for (const dir of options.extraDirs ?? []) await read(dir, 'path');
  discovery.plugins = pickWinners(found, skipped, new Set(options.replaceBuiltins ?? []));
  return discovery;
}

/**
 * Sub-folders of the plugin directory, one level of `@scope/` included; undefined if it is
 * missing. A symlink to a folder counts as that folder (npm link makes them); a broken one is
 * reported in `skipped`, so a plugin that vanished with its target is never silently gone.
 */
async function pluginFolders(root: string, skipped: SkippedPlugin[]): Promise<string[] | undefined> {
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const out: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name.startsWith('.')) continue;
    const dir = path.join(root, e.name);
    if (e.isSymbolicLink()) {
      const target = await linkTarget(dir);
      if (typeof target !== 'string') {
        skipped.push({ name: e.name, dir, source: 'plugin-dir', code: 'BROKEN_LINK', reason: target.reason });
        continue;
      }
      if (!target) continue; // a link to a file: not a plugin folder, as a file is not
    } else if (!e.isDirectory()) continue;
    if (e.name.startsWith('@')) out.push(...((await pluginFolders(dir, skipped)) ?? []));
    else out.push(dir);
  }
  return out;
}

/** `dir` for a symlink to a folder, '' for one to anything else, or why it leads nowhere. */
async function linkTarget(link: string): Promise<string | { reason: string }> {
  try {
    return (await stat(link)).isDirectory() ? link : '';
  } catch (err) {
    const to = await readlink(link).catch(() => '?');
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'which does not exist' : code === 'ELOOP' ? 'which is a loop of links' : `which cannot be read (${code})`;
    return { reason: `symlink ${link} points to ${to}, ${why}: fix or remove the link` };
  }
}

async function readPlugin(dir: string, source: PluginSource): Promise<PluginCandidate | SkippedPlugin | undefined> {
  const folder = path.basename(dir);
  const skip = (code: SkippedPlugin['code'], reason: string, name = folder): SkippedPlugin => ({
    name,
    dir,
    source,
    code,
    reason,
  });
  let text: string;
  try {
    text = await readFile(path.join(dir, 'package.json'), 'utf8');
  } catch {
    return undefined; // not a plugin: no manifest
  }
  let pkg: { name?: unknown; version?: unknown; main?: unknown; taskhost?: unknown };
  try {
    pkg = JSON.parse(text) as typeof pkg;
  } catch (err) {
    return skip('INVALID_MANIFEST', `package.json is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof pkg !== 'object' || pkg === null || pkg.taskhost === undefined) return undefined;
  const checked = validateManifest(pkg.taskhost);
  const name = typeof (pkg.taskhost as { name?: unknown })?.name === 'string' ? (pkg.taskhost as { name: string }).name : folder;
  if (!checked.ok) {
    const issues = checked.issues.map((i) => ({ ...i, path: `/taskhost${i.path}` }));
    return skip('INVALID_MANIFEST', `package.json manifest is invalid: ${formatIssues(issues).join('; ')}`, name);
  }
  const manifest = checked.value;
  const version = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  if (!semver.valid(version)) return skip('INVALID_MANIFEST', `package.json version "${version}" is not semver`, name);
  const apiVersion = negotiateApiVersion(hostApiVersions, manifest.apiVersions);
  if (apiVersion === undefined) {
    return skip(
      'API_VERSION_MISMATCH',
      `speaks plugin API ${manifest.apiVersions.join(', ')}; this host speaks ${hostApiVersions.join(', ')}`,
      name,
    );
  }
  const main = typeof pkg.main === 'string' ? pkg.main : 'index.js';
  const entry = await entryFile(dir, main, source === 'builtin');
  if (entry === undefined) return skip('INVALID_MANIFEST', `entry module "${main}" (package.json "main") does not exist`, name);
  return {
    name: manifest.name,
    type: manifest.type,
    version,
    manifest,
    apiVersion,
    dir,
    entry: pathToFileURL(entry).href,
    source,
  };
}

/** The entry file; built-ins run from their TypeScript sources when taskhost itself does. */
async function entryFile(dir: string, main: string, allowTs: boolean): Promise<string | undefined> {
  const candidates = [path.resolve(dir, main)];
  if (allowTs && main.endsWith('.js')) candidates.push(path.resolve(dir, main.replace(/\.js$/, '.ts')));
  for (const file of candidates) {
    try {
      if ((await stat(file)).isFile()) return file;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

/**
 * One plugin per name. A plugin-dir plugin replaces a built-in of the same name only when the
 * agent config asks (`replaceable`), whatever the versions: a folder dropped into the plugin
 * directory must not silently take over `raw_exec`. Between plugin-dir plugins the higher
 * version wins; a folder named by path always wins (it is the one the person asked for).
 */
function pickWinners(found: PluginCandidate[], skipped: SkippedPlugin[], replaceable: ReadonlySet<string>): PluginCandidate[] {
  const byName = new Map<string, PluginCandidate>();
  for (const c of found) {
    const current = byName.get(c.name);
    if (!current) {
      byName.set(c.name, c);
      continue;
    }
    const overBuiltin = current.source === 'builtin' && c.source === 'plugin-dir';
    const replaces =
      c.source === 'path' ||
      (overBuiltin ? replaceable.has(c.name) : c.source === current.source && semver.compare(c.version, current.version) > 0);
    const [winner, loser] = replaces ? [c, current] : [current, c];
    byName.set(c.name, winner);
    const reason = overBuiltin
      ? replaces
        ? `replaced by ${winner.dir} (version ${winner.version}, plugin-dir), as plugins.${c.name}.replaceBuiltin asks`
        : `a built-in plugin is named "${c.name}" too, and a plugin-dir plugin replaces a built-in only when asked: set plugins.${c.name}.replaceBuiltin to true in the agent config`
      : `another plugin named "${winner.name}" is used instead: ${winner.dir} (version ${winner.version}, ${winner.source})`;
    skipped.push({ name: loser.name, dir: loser.dir, source: loser.source, code: 'SHADOWED', reason });
  }
  return [...byName.values()];
}
