/**
 * Registry credentials the way `docker pull` finds them: a docker config.json (`credHelpers`,
 * `credsStore`, `auths`) and docker-credential-* helpers, matched by registry host, so that
 * `https://index.docker.io/v1/` in a config file is the key for images on docker.io.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { InvalidConfigError, PluginError, TimeoutError } from '../../shared/errors.js';
import { DOCKER_HUB } from '../../shared/image-ref.js';

/** Where the Docker plugin's config says to look for credentials (after Nomad's `auth` block). */
export interface RegistryAuthConfig {
  /** A docker config.json; read on every pull, so edits apply without a restart. */
  config?: string;
  /** A credential helper name: "pass" runs `docker-credential-pass get`. Asked after the config file. */
  helper?: string;
}

/** What the engine takes as X-Registry-Auth for one pull (dockerode's `authconfig`). */
export type RegistryAuth = { username: string; password: string; serveraddress: string } | { identitytoken: string; serveraddress: string };

/** Finds credentials for a registry host ("docker.io", "127.0.0.1:5001"); undefined for none. */
export type RegistryAuthResolver = (registry: string, signal?: AbortSignal) => Promise<RegistryAuth | undefined>;

/** The key docker config files and credential helpers use for Docker Hub. */
const HUB_SERVER = 'https://index.docker.io/v1/';
const hubHosts = new Set([DOCKER_HUB, 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
/** The message every docker-credential-helpers store prints when it has nothing for a server. */
const helperNotFound = 'credentials not found in native keychain';
const helperName = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** A resolver over a docker config file and/or a credential helper, in the order `docker pull` uses. */
export function registryAuthResolver(config: RegistryAuthConfig, options: { helperTimeoutMs?: number } = {}): RegistryAuthResolver {
  const helperTimeoutMs = options.helperTimeoutMs ?? 10_000;
  if (config.helper !== undefined) checkHelperName(config.helper, 'auth.helper');
  return async (registry, signal) => {
    const host = registryHost(registry);
    const server = host === DOCKER_HUB ? HUB_SERVER : host;
    if (config.config !== undefined) {
      const file = await readDockerConfig(config.config);
      // As in the docker CLI: a registry's own helper, then the default store, then inline auths.
      const helper = findByHost(file.credHelpers, host) ?? file.credsStore;
      if (helper !== undefined) {
        checkHelperName(helper, `${config.config}: credHelpers/credsStore`);
        const found = await runHelper(helper, server, host, helperTimeoutMs, signal);
        if (found) return found;
      }
      const entry = findByHost(file.auths, host);
      const found = entry && fromConfigEntry(entry, server, config.config, host);
      if (found) return found;
    }
    if (config.helper !== undefined) return runHelper(config.helper, server, host, helperTimeoutMs, signal);
    return undefined;
  };
}

/** "https://index.docker.io/v1/" → "docker.io", "http://127.0.0.1:5001/v2/" → "127.0.0.1:5001". */
export function registryHost(keyOrHost: string): string {
  const host = keyOrHost
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .split('/')[0]!
    .toLowerCase();
  return hubHosts.has(host) ? DOCKER_HUB : host;
}

async function readDockerConfig(file: string): Promise<DockerConfigFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidConfigError(`auth.config: cannot read the docker config file ${file}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new InvalidConfigError(`auth.config: ${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidConfigError(`auth.config: ${file} must hold a JSON object (a docker config.json)`);
  }
  return parsed as DockerConfigFile;
}

/** The entry whose key names this host; an exact key wins over one that only normalises alike. */
function findByHost<T>(entries: Record<string, T> | undefined, host: string): T | undefined {
  if (!entries) return undefined;
  if (Object.hasOwn(entries, host)) return entries[host];
  const key = Object.keys(entries).find((k) => registryHost(k) === host);
  return key === undefined ? undefined : entries[key];
}

function fromConfigEntry(
  entry: NonNullable<DockerConfigFile['auths']>[string],
  serveraddress: string,
  file: string,
  host: string,
): RegistryAuth | undefined {
  if (entry.identitytoken) return { identitytoken: entry.identitytoken, serveraddress };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) {
      throw new InvalidConfigError(`auth.config: in ${file}, auths["${host}"].auth must be base64 of "user:password"`);
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), serveraddress };
  }
  if (entry.username) return { username: entry.username, password: entry.password ?? '', serveraddress };
  return undefined;
}

function checkHelperName(name: string, where: string): void {
  if (!helperName.test(name)) {
    throw new InvalidConfigError(`${where}: "${name}" is not a credential helper name (it runs docker-credential-<name>)`);
  }
}

/** Runs `docker-credential-<helper> get` with the server on stdin; undefined when it has nothing. */
async function runHelper(
  helper: string,
  server: string,
  host: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<RegistryAuth | undefined> {
  const program = `docker-credential-${helper}`;
  const deadline = AbortSignal.timeout(timeoutMs);
  const { code, stdout, stderr, error } = await new Promise<{ code: number | null; stdout: string; stderr: string; error?: Error }>(
    (resolve) => {
      const child = spawn(program, ['get'], {
        stdio: ['pipe', 'pipe', 'pipe'],
        signal: signal ? AbortSignal.any([signal, deadline]) : deadline,
      });
      let stdout = '';
      let stderr = '';
      let error: Error | undefined;
      child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      child.on('error', (err) => (error ??= err));
      child.stdin.on('error', () => {}); // a helper that exits without reading stdin is not our failure
      child.on('close', (code) => resolve(error ? { code, stdout, stderr, error } : { code, stdout, stderr }));
      child.stdin.end(server);
    },
  );
  if (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new PluginError(`the credential helper ${program} was not found on PATH (asked for ${host})`, { cause: error });
    }
    if (deadline.aborted)
      throw new TimeoutError(`the credential helper ${program} did not answer within ${timeoutMs} ms (asked for ${host})`);
    throw signal?.aborted ? signal.reason : new PluginError(`the credential helper ${program} failed: ${error.message}`, { cause: error });
  }
  if (code !== 0) {
    if (stdout.includes(helperNotFound)) return undefined;
    const said = (stderr.trim() || stdout.trim()).slice(0, 500);
    throw new PluginError(`the credential helper ${program} failed for ${host} (exit code ${code})${said ? `: ${said}` : ''}`);
  }
  let answer: { Username?: unknown; Secret?: unknown };
  try {
    answer = JSON.parse(stdout) as typeof answer;
  } catch {
    throw new PluginError(`the credential helper ${program} printed something that is not JSON for ${host}: ${stdout.slice(0, 200)}`);
  }
  if (typeof answer.Secret !== 'string' || answer.Secret === '') return undefined;
  // "<token>" as the user name marks an identity token (docker-credential-helpers convention).
  if (answer.Username === '<token>') return { identitytoken: answer.Secret, serveraddress: server };
  return { username: typeof answer.Username === 'string' ? answer.Username : '', password: answer.Secret, serveraddress: server };
}
