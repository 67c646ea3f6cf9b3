/**
 * Nomad's TaskConfig and TaskHandle (hashicorp.nomad.plugins.drivers.proto, as proto-loader
 * gives them: snake_case, int64 as strings, enums as names) and their taskhost counterparts.
 *
 * The task's output: Nomad's stdout_path and stderr_path are FIFOs, so the driver gets regular
 * files of its own, `<alloc_dir>/<task>/.taskhost/<id suffix>.stdout` (beside the task's
 * `local/` and `secrets/`, never mounted into a container), which FifoPump copies into them.
 */
import path from 'node:path';
import type { DriverCapabilities, TaskConfig, TaskHandle } from '../../shared/driver.js';
import { InvalidConfigError } from '../../shared/errors.js';

/** A google.protobuf.Duration or Timestamp as proto-loader reads one. */
export interface ProtoTime {
  seconds: string | number;
  nanos: number;
}

export interface NomadTaskConfig {
  id: string;
  name: string;
  msgpack_driver_config: Buffer;
  env: Record<string, string>;
  device_env: Record<string, string>;
  resources: {
    allocated_resources: { cpu: { cpu_shares: string } | null; memory: { memory_mb: string } | null } | null;
    linux_resources: { cpu_shares: string; memory_limit_bytes: string } | null;
  } | null;
  mounts: { task_path: string; host_path: string; readonly: boolean }[];
  devices: { task_path: string; host_path: string; cgroup_permissions: string }[];
  user: string;
  alloc_dir: string;
  stdout_path: string;
  stderr_path: string;
  task_group_name: string;
  job_name: string;
  alloc_id: string;
  job_id: string;
  namespace: string;
  node_name: string;
  node_id: string;
}

export interface NomadTaskHandle {
  version: number;
  config: NomadTaskConfig | null;
  state: 'UNKNOWN' | 'RUNNING' | 'EXITED';
  driver_state: Buffer;
}

/** Milliseconds of a Duration; `fallback` when it is absent. */
export function durationMs(duration: ProtoTime | null | undefined, fallback: number): number {
  if (!duration) return fallback;
  return Number(duration.seconds) * 1000 + Math.round(duration.nanos / 1e6);
}

/** A Timestamp for unix milliseconds. */
export function timestamp(ms: number): { seconds: string; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  return { seconds: String(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/** The files the driver writes the task's output to (see the header). */
export function outputFiles(allocDir: string, name: string, id: string): { stdoutPath: string; stderrPath: string; dir: string } {
  const dir = path.join(allocDir, name, '.taskhost');
  const suffix = id.split('/').at(-1) ?? 'task';
  return { dir, stdoutPath: path.join(dir, `${suffix}.stdout`), stderrPath: path.join(dir, `${suffix}.stderr`) };
}

const positive = (value: string | undefined): number | undefined => {
  const n = Number(value ?? 0);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
};

/**
 * The taskhost TaskConfig for Nomad's: identity, Nomad's env (it is complete: Nomad built it)
 * plus the TASKHOST_* names a taskhost plugin may read, resources, mounts, devices and dirs.
 * `config` is the decoded, validated driver config.
 */
export function taskConfigFromNomad(
  task: NomadTaskConfig,
  options: { driver: string; config: Record<string, unknown>; capabilities: DriverCapabilities },
): TaskConfig {
  const missing = (['id', 'name', 'alloc_dir'] as const).filter((key) => !task[key]);
  if (missing.length) {
    throw new InvalidConfigError(`TaskConfig is missing ${missing.join(', ')}: Nomad always sets them`, {
      details: { errors: missing.map((key) => ({ path: `/${key}`, message: 'must be set' })) },
    });
  }
  const [allocFromId = ''] = task.id.split('/');
  const allocId = task.alloc_id || allocFromId;
  const host = {
    allocDir: path.join(task.alloc_dir, 'alloc'),
    taskDir: path.join(task.alloc_dir, task.name, 'local'),
    secretsDir: path.join(task.alloc_dir, task.name, 'secrets'),
  };
  const seen = options.capabilities.fsIsolation === 'none' ? host : { allocDir: '/alloc', taskDir: '/local', secretsDir: '/secrets' };
  const allocated = task.resources?.allocated_resources;
  const resources: TaskConfig['resources'] = {};
  const cpuShares = positive(allocated?.cpu?.cpu_shares) ?? positive(task.resources?.linux_resources?.cpu_shares);
  const memoryMB = positive(allocated?.memory?.memory_mb);
  if (cpuShares !== undefined) resources.cpuShares = cpuShares;
  if (memoryMB !== undefined) resources.memoryMB = memoryMB;
  const files = outputFiles(task.alloc_dir, task.name, task.id);
  const identity = {
    TASKHOST_TASK_ID: task.id,
    TASKHOST_TASK_NAME: task.name,
    TASKHOST_ALLOC_ID: allocId,
    TASKHOST_JOB_NAME: task.job_name,
    TASKHOST_GROUP_NAME: task.task_group_name,
    TASKHOST_ALLOC_DIR: seen.allocDir,
    TASKHOST_TASK_DIR: seen.taskDir,
    TASKHOST_SECRETS_DIR: seen.secretsDir,
    TASKHOST_DRIVER: options.driver,
  };
  const config: TaskConfig = {
    id: task.id,
    name: task.name,
    allocId,
    jobName: task.job_name || task.name,
    groupName: task.task_group_name || task.name,
    driver: options.driver,
    config: options.config,
    env: { ...identity, ...task.env },
    deviceEnv: { ...task.device_env },
    resources,
    devices: task.devices.map((d) => ({
      hostPath: d.host_path,
      taskPath: d.task_path || d.host_path,
      permissions: d.cgroup_permissions || 'rw',
    })),
    mounts: task.mounts.map((m) => ({ hostPath: m.host_path, taskPath: m.task_path, readOnly: m.readonly })),
    // Nomad gives the timeout with each StopTask.
    killTimeoutMs: 5_000,
    ...host,
    stdoutPath: files.stdoutPath,
    stderrPath: files.stderrPath,
  };
  if (task.user) config.user = task.user;
  return config;
}

/** The handle Nomad keeps: its own TaskConfig back, and the taskhost handle as JSON in driver_state. */
export function nomadHandle(task: NomadTaskConfig, handle: TaskHandle): NomadTaskHandle {
  return {
    // Nomad reserves version 0.
    version: Math.max(1, handle.version),
    config: task,
    state: handle.state === 'exited' ? 'EXITED' : handle.state === 'running' ? 'RUNNING' : 'UNKNOWN',
    driver_state: Buffer.from(JSON.stringify(handle)),
  };
}

/** The taskhost handle in a Nomad handle's driver_state; InvalidConfigError when there is none. */
export function taskhostHandle(handle: NomadTaskHandle | null | undefined): TaskHandle {
  const id = handle?.config?.id;
  if (!handle || !id) {
    throw new InvalidConfigError('RecoverTask needs handle.config.id: pass the TaskHandle that StartTask returned', {
      details: { errors: [{ path: '/handle/config/id', message: 'must be set' }] },
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(handle.driver_state).toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const ok = typeof parsed === 'object' && parsed !== null && (parsed as TaskHandle).config?.id === id;
  if (!ok) {
    throw new InvalidConfigError(
      `handle.driver_state of task ${id} is not the taskhost handle StartTask returned: pass the TaskHandle as Nomad stored it`,
      { details: { errors: [{ path: '/handle/driver_state', message: 'must be the JSON handle from StartTask' }] } },
    );
  }
  return parsed as TaskHandle;
}
