/**
 * From a task spec (what a person writes) to a TaskConfig (what a driver receives), in two steps:
 * buildTaskConfig (pure: the spec and the driver config validated with their JSON paths, the
 * environment built by shared/env, `${...}` in the driver config interpolated) and
 * createTaskDirs (the task's directories and log files); prepareTask does both.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FilledContainerReservation } from '../shared/device.js';
import { Name, signalNumber, TaskSpec, type DriverCapabilities, type TaskConfig } from '../shared/driver.js';
import { parseDuration } from '../shared/duration.js';
import { buildTaskEnv, interpolateDeep, variables } from '../shared/env.js';
import { guardInput, readJsonFile } from '../shared/input-guard.js';
import { InvalidConfigError, type SchemaIssue } from '../shared/errors.js';
import { compileSchema, formatIssues, parseWith, type JsonSchema } from '../shared/schema.js';

const validateSpec = compileSchema<TaskSpec>(TaskSpec);

/** Validates a task spec document (bounded in depth, see guardInput); errors name their JSON path. */
export function parseTaskSpec(data: unknown, source = 'task spec'): TaskSpec {
  guardInput(data, source);
  return parseWith(validateSpec, data, source);
}

/** Reads (at most inputLimits.maxFileBytes) and validates a task spec file. */
export async function loadTaskSpec(file: string): Promise<TaskSpec> {
  return parseTaskSpec(await readJsonFile(file), file);
}

/** Validates a driver config against the driver's schema; paths start at `/config`. */
export function parseDriverConfig(driver: string, schema: JsonSchema, config: unknown): Record<string, unknown> {
  const validator = compileSchema<Record<string, unknown>>(schema, `taskConfigSchema() of driver "${driver}"`);
  return parseWith(validator, config, `config for driver "${driver}"`, '/config');
}

export interface PrepareOptions {
  spec: TaskSpec;
  /** The driver's task config schema and capabilities. */
  schema: JsonSchema;
  capabilities: DriverCapabilities;
  /** The agent's data directory: tasks live under `<dataDir>/allocs/<allocId>/`. */
  dataDir: string;
  /** A name (see namePattern), default a random UUID: it names a directory under `<dataDir>/allocs`. */
  allocId?: string;
  node?: { attributes?: Record<string, string>; meta?: Record<string, string> };
  hostEnv?: Record<string, string | undefined>;
  hostEnvAllow?: readonly string[];
  /** The task's devices (DeviceManager.reserve): its envs become the env's device layer. */
  reservation?: FilledContainerReservation;
}

const validateName = compileSchema<string>(Name());

/** The alloc dir on the host of the tasks of `allocId`: `<dataDir>/allocs/<allocId>/alloc` (a container's `/alloc`). */
export function hostAllocDir(dataDir: string, allocId: string): string {
  return path.join(dataDir, 'allocs', allocId, 'alloc');
}

/**
 * Where a task's directories and output files are on the host, from its id
 * (`<allocId>/<name>/<suffix>`, as buildTaskConfig makes it): under `<dataDir>/allocs/<allocId>/`,
 * the alloc dir its alloc's tasks share (`alloc/`, with `logs/<name>.stdout` and `.stderr`),
 * and the task's own `<name>/local` and `<name>/secrets`.
 */
export function taskHostPaths(
  dataDir: string,
  taskId: string,
): { allocDir: string; taskDir: string; secretsDir: string; stdoutPath: string; stderrPath: string } {
  const [allocId = '', name = ''] = taskId.split('/');
  const allocRoot = path.join(dataDir, 'allocs', allocId);
  const allocDir = hostAllocDir(dataDir, allocId);
  const logs = path.join(allocDir, 'logs');
  return {
    allocDir,
    taskDir: path.join(allocRoot, name, 'local'),
    secretsDir: path.join(allocRoot, name, 'secrets'),
    stdoutPath: path.join(logs, `${name}.stdout`),
    stderrPath: path.join(logs, `${name}.stderr`),
  };
}

/**
 * Builds the TaskConfig for a spec: the spec checked again (so a hand-made one cannot name a
 * directory outside the data directory), the driver config validated, the environment built and
 * `${...}` interpolated, the task's paths chosen. Pure: nothing is made on disk, so `validate`
 * can build a task it will never run.
 */
export function buildTaskConfig(options: PrepareOptions): TaskConfig {
  const spec = parseTaskSpec(options.spec);
  const { capabilities } = options;
  const issues: SchemaIssue[] = [];
  const allocId = options.allocId ?? randomUUID();
  const checkedAlloc = validateName(allocId);
  if (!checkedAlloc.ok)
    issues.push(...checkedAlloc.issues.map((i) => ({ path: '/allocId', message: `allocId ${JSON.stringify(allocId)} ${i.message}` })));
  if (spec.killSignal !== undefined && signalNumber(spec.killSignal) === undefined) {
    issues.push({ path: '/killSignal', message: `unknown signal "${spec.killSignal}": use a name such as SIGTERM, SIGINT or SIGQUIT` });
  }
  if (issues.length) {
    throw new InvalidConfigError(`task "${spec.name}" cannot be prepared: ${formatIssues(issues).join('; ')}`, {
      details: { errors: issues },
    });
  }
  const id = `${allocId}/${spec.name}/${randomBytes(4).toString('hex')}`;
  const { stdoutPath, stderrPath, ...host } = taskHostPaths(options.dataDir, id);
  // A task that has its own file system sees its directories where the driver mounts them.
  const seen = capabilities.fsIsolation === 'none' ? host : { allocDir: '/alloc', taskDir: '/local', secretsDir: '/secrets' };
  const config = parseDriverConfig(spec.driver, options.schema, spec.config);
  const identity = {
    id,
    name: spec.name,
    allocId,
    jobName: spec.job ?? spec.name,
    groupName: spec.group ?? spec.name,
    driver: spec.driver,
  };
  const { env, deviceEnv } = buildTaskEnv({
    task: identity,
    dirs: seen,
    resources: spec.resources,
    node: options.node,
    // A task with its own file system (a container) gets its image's env, never the agent's.
    hostEnv: capabilities.fsIsolation === 'none' ? options.hostEnv : undefined,
    hostEnvAllow: options.hostEnvAllow,
    taskEnv: spec.env,
    deviceEnv: options.reservation?.envs,
  });
  const task: TaskConfig = {
    ...identity,
    config: interpolateDeep(config, variables(env, options.node)),
    env,
    deviceEnv,
    resources: { ...spec.resources },
    devices: (options.reservation?.devices ?? []).map((d) => ({ ...d })),
    mounts: (options.reservation?.mounts ?? []).map((m) => ({ ...m })),
    killTimeoutMs: parseDuration(spec.killTimeout),
    ...host,
    stdoutPath,
    stderrPath,
  };
  if (spec.user) task.user = spec.user;
  if (spec.killSignal) task.killSignal = spec.killSignal;
  return task;
}

/** Makes a built task's directories and its (empty, or kept) log files. */
export async function createTaskDirs(task: TaskConfig): Promise<void> {
  const logs = [path.dirname(task.stdoutPath), path.dirname(task.stderrPath)];
  await Promise.all([task.taskDir, task.secretsDir, ...logs].map((d) => mkdir(d, { recursive: true, mode: 0o750 })));
  await Promise.all([writeFile(task.stdoutPath, '', { flag: 'a' }), writeFile(task.stderrPath, '', { flag: 'a' })]);
}

/** Builds the TaskConfig for a spec (buildTaskConfig) and creates its directories and log files. */
export async function prepareTask(options: PrepareOptions): Promise<TaskConfig> {
  const task = buildTaskConfig(options);
  await createTaskDirs(task);
  return task;
}
