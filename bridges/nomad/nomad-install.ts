/**
 * `taskhost nomad install <plugin_dir> <plugin>...`: a launcher per plugin in Nomad's plugin_dir,
 * named after the plugin, so `plugin "<name>" { ... }` in Nomad's agent config finds it.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { PluginNotFoundError } from '../../shared/errors.js';
import { closest } from '../../shared/schema.js';
import type { AgentConfig } from '../../plugin-loader/agent-config.js';
import { PluginLoader } from '../../plugin-loader/loader.js';

export interface NomadInstallOptions {
  /** Nomad's plugin_dir. */
  dir: string;
  plugins: string[];
  config: AgentConfig;
  /** The agent config file the launchers pass on (made absolute), if any. */
  configFile?: string;
  /** A --plugin-dir the launchers pass on (made absolute), if any. */
  pluginDir?: string;
  logger: Logger;
  /** The node binary and taskhost's CLI script the launchers run; default this node and this taskhost. */
  node?: string;
  cli?: string;
  /** Options for node before the script (`--max-old-space-size=...`; the tests' `--import tsx`). */
  nodeArgs?: string[];
}

export interface InstalledLauncher {
  plugin: string;
  type: string;
  path: string;
}

/** Writes the launchers (after checking that every plugin is found); returns what it wrote. */
export async function nomadInstall(options: NomadInstallOptions): Promise<InstalledLauncher[]> {
  const loader = new PluginLoader({ config: options.config, logger: options.logger, only: { names: [] } });
  const discovery = await loader.discover().finally(() => loader.close());
  const found = new Map(discovery.plugins.map((p) => [p.name, p]));
  for (const name of options.plugins) {
    if (found.has(name)) continue;
    const skipped = discovery.skipped.find((s) => s.name === name);
    const guess = closest(name, [...found.keys()]);
    throw new PluginNotFoundError(
      skipped
        ? `plugin "${name}" was found in ${skipped.dir} but skipped: ${skipped.reason}`
        : `no plugin named "${name}"${guess ? ` (did you mean "${guess}"?)` : ''}; found: ${[...found.keys()].join(', ') || 'none'} (plugin dir: ${options.config.pluginDir})`,
    );
  }
  const dir = path.resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const written: InstalledLauncher[] = [];
  for (const name of options.plugins) {
    const file = path.join(dir, name);
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, launcherScript(name, options), { mode: 0o755 });
    await chmod(tmp, 0o755);
    await rename(tmp, file);
    written.push({ plugin: name, type: found.get(name)!.type, path: file });
  }
  return written;
}

/** The launcher: a shell script that execs taskhost's CLI by absolute paths, whatever Nomad's PATH and cwd. */
export function launcherScript(
  plugin: string,
  options: Pick<NomadInstallOptions, 'configFile' | 'pluginDir' | 'node' | 'cli' | 'nodeArgs'>,
): string {
  const args = [options.node ?? process.execPath, ...(options.nodeArgs ?? []), options.cli ?? taskhostCli()];
  if (options.configFile) args.push('--config', path.resolve(options.configFile));
  if (options.pluginDir) args.push('--plugin-dir', path.resolve(options.pluginDir));
  args.push('nomad', 'serve', plugin);
  return [
    '#!/bin/sh',
    `# Written by "taskhost nomad install": Nomad starts taskhost's plugin "${plugin}" through this file.`,
    `# Nomad's agent config enables it with: plugin "${plugin}" { config { ... } }`,
    `exec ${args.map(shellQuote).join(' ')} "$@"`,
    '',
  ].join('\n');
}

/** bin/taskhost.js of the taskhost this module belongs to (from the sources or from dist/). */
export function taskhostCli(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'bin', 'taskhost.js');
    if (existsSync(candidate)) return candidate;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find bin/taskhost.js above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
