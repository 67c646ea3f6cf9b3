/**
 * The one task environment builder every driver uses (design.md section 7).
 *
 * Precedence, lowest first; a later layer replaces a name set by an earlier one, so each name
 * ends up with exactly one value:
 *   1. host      the agent's own environment, only the names allowed by `hostEnvAllow`
 *   2. image     the image's own env (container drivers)
 *   3. runtime   TASKHOST_* variables describing the task
 *   4. task      the task spec's `env`, its values interpolated against layers 1-3 and node data
 *   5. device    env from device reservations (a task cannot override its device assignment)
 *
 * Interpolation: `${NAME}` is a variable of the environment, `${node.attr.KEY}` a node attribute,
 * `${meta.KEY}` (or `${node.meta.KEY}`) node meta. A reference to something unknown stays as
 * written. Names are sanitised: any character outside [A-Za-z0-9_.] becomes `_`, and a leading
 * digit gets a `_` in front; two names of one layer that sanitise to the same name are an error.
 */
import path from 'node:path';
import { InvalidConfigError, type SchemaIssue } from './errors.js';

export type EnvSource = 'host' | 'image' | 'runtime' | 'task' | 'device';

export interface TaskEnvInput {
  task: {
    id: string;
    name: string;
    allocId: string;
    jobName: string;
    groupName: string;
    driver: string;
  };
  /** Paths as the task sees them (host paths, or /alloc, /local, /secrets inside a container). */
  dirs: { allocDir: string; taskDir: string; secretsDir: string };
  resources?: { cpuShares?: number | undefined; memoryMB?: number | undefined } | undefined;
  node?: { attributes?: Record<string, string>; meta?: Record<string, string> } | undefined;
  /** The agent's environment (usually process.env); nothing of it passes unless allowed. */
  hostEnv?: Record<string, string | undefined> | undefined;
  /** Host variable names to pass through; `PREFIX_*` allows a prefix. */
  hostEnvAllow?: readonly string[] | undefined;
  /** The image's env, as `{K: V}` or Docker's `["K=V"]`. */
  imageEnv?: Record<string, string> | readonly string[] | undefined;
  /** The task spec's env (values may contain `${...}`). */
  taskEnv?: Record<string, string> | undefined;
  /** Env from device reservations. */
  deviceEnv?: Record<string, string> | undefined;
}

export interface TaskEnv {
  /** The final environment: one value per name. */
  env: Record<string, string>;
  /** Which layer each name's value came from. */
  sources: Record<string, EnvSource>;
  /** The env contributed by device reservations (drivers may treat it specially). */
  deviceEnv: Record<string, string>;
}

/** Builds a task's environment. Throws InvalidConfigError when names collide after sanitising. */
export function buildTaskEnv(input: TaskEnvInput): TaskEnv {
  const env: Record<string, string> = {};
  const sources: Record<string, EnvSource> = {};
  const issues: SchemaIssue[] = [];
  const apply = (layer: Record<string, string>, source: EnvSource, at: string) => {
    for (const [name, value] of Object.entries(sanitizeNames(layer, at, issues))) {
      env[name] = value;
      sources[name] = source;
    }
  };

  apply(allowedHostEnv(input.hostEnv ?? {}, input.hostEnvAllow ?? []), 'host', '/hostEnv');
  apply(parseEnvList(input.imageEnv ?? {}), 'image', '/imageEnv');
  apply(runtimeEnv(input), 'runtime', '/runtime');
  const lookup = variables(env, input.node);
  const taskEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.taskEnv ?? {})) taskEnv[name] = interpolate(value, lookup);
  apply(taskEnv, 'task', '/env');
  const deviceEnv = sanitizeNames(input.deviceEnv ?? {}, '/deviceEnv', issues);
  apply(deviceEnv, 'device', '/deviceEnv');

  if (issues.length) {
    throw new InvalidConfigError(`task environment is invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, {
      details: { errors: issues },
    });
  }
  return { env, sources, deviceEnv };
}

/** The TASKHOST_* variables of a task. Limits are set only when the task has them. */
export function runtimeEnv(input: Pick<TaskEnvInput, 'task' | 'dirs' | 'resources'>): Record<string, string> {
  const { task, dirs, resources } = input;
  const env: Record<string, string> = {
    TASKHOST_TASK_ID: task.id,
    TASKHOST_TASK_NAME: task.name,
    TASKHOST_ALLOC_ID: task.allocId,
    TASKHOST_JOB_NAME: task.jobName,
    TASKHOST_GROUP_NAME: task.groupName,
    TASKHOST_DRIVER: task.driver,
    TASKHOST_ALLOC_DIR: dirs.allocDir,
    TASKHOST_TASK_DIR: dirs.taskDir,
    TASKHOST_SECRETS_DIR: dirs.secretsDir,
    TASKHOST_LOCK_FILE: taskLockFile(dirs.allocDir, task.name),
  };
  if (resources?.cpuShares) env.TASKHOST_CPU_LIMIT = String(resources.cpuShares);
  if (resources?.memoryMB) env.TASKHOST_MEMORY_LIMIT = String(resources.memoryMB);
  return env;
}

/**
 * A task's update lock file (balena's update lock, design.md section 10): `<allocDir>/<task
 * name>.lock`. While it exists the agent refuses to stop or delete the task unless forced. The
 * same rule gives the path as the task sees it (`/alloc/web.lock` in a container) and the host's.
 */
export function taskLockFile(allocDir: string, taskName: string): string {
  return path.posix.join(allocDir, `${taskName}.lock`);
}

/** A lookup for interpolation: env names, then `node.attr.*`, `node.meta.*` and `meta.*`. */
export function variables(
  env: Record<string, string>,
  node?: { attributes?: Record<string, string>; meta?: Record<string, string> },
): (name: string) => string | undefined {
  return (name) => {
    if (Object.hasOwn(env, name)) return env[name];
    const attr = /^node\.attr\.(.+)$/.exec(name);
    if (attr) return own(node?.attributes, attr[1]!);
    const meta = /^(?:node\.)?meta\.(.+)$/.exec(name);
    if (meta) return own(node?.meta, meta[1]!);
    return undefined;
  };
}

const reference = /\$\{([A-Za-z0-9_.-]+)\}/g;

/** Replaces each `${name}` the lookup knows; leaves unknown references exactly as written. */
export function interpolate(text: string, lookup: (name: string) => string | undefined): string {
  return text.replace(reference, (whole, name: string) => lookup(name) ?? whole);
}

/** Interpolates every string inside a driver config (objects and arrays, keys untouched). */
export function interpolateDeep<T>(value: T, lookup: (name: string) => string | undefined): T {
  if (typeof value === 'string') return interpolate(value, lookup) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => interpolateDeep(v, lookup)) as T;
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateDeep(v, lookup)])) as T;
  }
  return value;
}

/** `NAME` as a valid env var name: characters outside [A-Za-z0-9_.] become `_`. */
export function sanitizeEnvName(name: string): string {
  const clean = name.replace(/[^A-Za-z0-9_.]/g, '_');
  return /^[0-9]/.test(clean) ? `_${clean}` : clean || '_';
}

/** A sorted `K=V` list with each name once, as exec and Docker want it. */
export function toEnvList(env: Record<string, string>): string[] {
  return Object.keys(env)
    .sort()
    .map((k) => `${k}=${env[k]}`);
}

/** Docker-style `["K=V", "FLAG"]` to `{K: V}`; a name listed twice keeps its last value. */
export function parseEnvList(list: Record<string, string> | readonly string[]): Record<string, string> {
  if (!Array.isArray(list)) return { ...(list as Record<string, string>) };
  const out: Record<string, string> = {};
  for (const item of list as readonly string[]) {
    const eq = item.indexOf('=');
    if (eq === -1) out[item] = '';
    else out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function allowedHostEnv(host: Record<string, string | undefined>, allow: readonly string[]): Record<string, string> {
  const exact = new Set(allow.filter((a) => !a.endsWith('*')));
  const prefixes = allow.filter((a) => a.endsWith('*')).map((a) => a.slice(0, -1));
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(host)) {
    if (value === undefined) continue;
    if (exact.has(name) || prefixes.some((p) => name.startsWith(p))) out[name] = value;
  }
  return out;
}

function sanitizeNames(layer: Record<string, string>, at: string, issues: SchemaIssue[]): Record<string, string> {
  const out: Record<string, string> = {};
  const origin: Record<string, string> = {};
  for (const [name, value] of Object.entries(layer)) {
    const clean = sanitizeEnvName(name);
    if (Object.hasOwn(origin, clean) && origin[clean] !== name) {
      issues.push({
        path: `${at}/${name}`,
        message: `"${name}" and "${origin[clean]}" both become the variable ${clean}; rename one`,
      });
      continue;
    }
    origin[clean] = name;
    out[clean] = String(value);
  }
  return out;
}

function own(record: Record<string, string> | undefined, key: string): string | undefined {
  return record && Object.hasOwn(record, key) ? record[key] : undefined;
}
