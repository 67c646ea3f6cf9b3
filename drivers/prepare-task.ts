/**
 * From a task spec (what a person writes) to a TaskConfig (what a driver receives): the spec
 * and the driver config validated with their JSON paths, the task's directories made, the
 * environment built by shared/env, and `${...}` in the driver config interpolated.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ContainerReservation } from '../shared/device.js';
import { TaskSpec, type DriverCapabilities, type TaskConfig } from '../shared/driver.js';
import { parseDuration } from '../shared/duration.js';
import { buildTaskEnv, interpolateDeep, variables } from '../shared/env.js';
import { InvalidConfigError } from '../shared/errors.js';
import { compileSchema, parseWith, type JsonSchema } from '../shared/schema.js';

const validateSpec = compileSchema<TaskSpec>(TaskSpec);

/** Validates a task spec document; errors name their JSON path. */
export function parseTaskSpec(data: unknown, source = 'task spec'): TaskSpec {
  return parseWith(validateSpec, data, source);
}

/** Reads and validates a task spec file. */
export async function loadTaskSpec(file: string): Promise<TaskSpec> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const message = `cannot read ${file}: ${(err as Error).message}`;
    throw new InvalidConfigError(message, { details: { errors: [{ path: '', message }] } });
  }
  try {
    return parseTaskSpec(JSON.parse(text), file);
  } catch (err) {
    if (err instanceof SyntaxError) {
      const message = `not valid JSON: ${err.message}`;
      throw new InvalidConfigError(`${file} is ${message}`, { details: { errors: [{ path: '', message }] } });
    }
    throw err;
  }
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
  allocId?: string;
  node?: { attributes?: Record<string, string>; meta?: Record<string, string> };
  hostEnv?: Record<string, string | undefined>;
  hostEnvAllow?: readonly string[];
  /** The task's devices (DeviceManager.reserve): its envs become the env's device layer. */
  reservation?: ContainerReservation;
}

/** Builds the TaskConfig for a spec and creates its directories and log files. */
export async function prepareTask(options: PrepareOptions): Promise<TaskConfig> {
  const { spec, capabilities } = options;
  const allocId = options.allocId ?? randomUUID();
  const id = `${allocId}/${spec.name}/${randomBytes(4).toString('hex')}`;
  const allocRoot = path.join(options.dataDir, 'allocs', allocId);
  const host = {
    allocDir: path.join(allocRoot, 'alloc'),
    taskDir: path.join(allocRoot, spec.name, 'local'),
    secretsDir: path.join(allocRoot, spec.name, 'secrets'),
  };
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
  const logs = path.join(host.allocDir, 'logs');
  await Promise.all([host.taskDir, host.secretsDir, logs].map((d) => mkdir(d, { recursive: true, mode: 0o750 })));
  const stdoutPath = path.join(logs, `${spec.name}.stdout`);
  const stderrPath = path.join(logs, `${spec.name}.stderr`);
  await Promise.all([writeFile(stdoutPath, '', { flag: 'a' }), writeFile(stderrPath, '', { flag: 'a' })]);
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
