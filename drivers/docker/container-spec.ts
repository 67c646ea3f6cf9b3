/**
 * From a task to the Engine's container create request: command, environment, labels, limits,
 * mounts and security settings, after the plugin config's policy (volumes, privileged, caps) has
 * been applied. Pure, so every rule can be tested without an Engine.
 */
import path from 'node:path';
import type Docker from 'dockerode';
import type { TaskConfig } from '../../shared/driver.js';
import { parseEnvList, toEnvList } from '../../shared/env.js';
import { InvalidConfigError, type SchemaIssue } from '../../shared/errors.js';
import { labelPrefix, type DockerConfig, type DockerTaskConfig } from './docker-config.js';

/** The labels that mark a container as the driver's own; the reconciler trusts nothing else. */
export const taskLabels = {
  taskId: `${labelPrefix}task_id`,
  allocId: `${labelPrefix}alloc_id`,
  taskName: `${labelPrefix}task_name`,
  driver: `${labelPrefix}driver`,
  managed: `${labelPrefix}managed`,
  /** The agent's data directory: agents sharing one Engine never reap each other's containers. */
  agent: `${labelPrefix}agent`,
} as const;

/** Where a task finds its directories inside the container (prepare-task tells it so in its env). */
export const taskDirsInContainer = { allocDir: '/alloc', taskDir: '/local', secretsDir: '/secrets' } as const;

export interface ContainerSpecInput {
  task: TaskConfig;
  config: DockerTaskConfig;
  plugin: DockerConfig;
  /** The reference to create the container with (as `docker ps` should show it). */
  image: string;
  /** The image's own env, `K=V`. */
  imageEnv: readonly string[];
  /** The agent's data directory, when known. */
  agentDir?: string | undefined;
}

/** The create request for a task; throws InvalidConfigError naming each path the policy refuses. */
export function containerSpec(input: ContainerSpecInput): Docker.ContainerCreateOptions {
  const { task, config, plugin } = input;
  checkPolicy(config, plugin);
  const hostConfig: Docker.HostConfig = {
    NetworkMode: config.networkMode,
    Mounts: mounts(task, config),
    // Privileged stays explicit so a daemon default can never turn it on.
    Privileged: config.privileged === true,
  };
  if (config.volumes?.length) hostConfig.Binds = config.volumes.map((v) => resolveVolume(v, task.taskDir));
  if (task.resources.memoryMB !== undefined) {
    hostConfig.Memory = task.resources.memoryMB * 1024 * 1024;
    // Without this the container may use as much swap again, and a task over its limit slows
    // down instead of being OOM-killed and reported as such.
    hostConfig.MemorySwap = hostConfig.Memory;
  }
  if (task.resources.cpuShares !== undefined) hostConfig.CpuShares = task.resources.cpuShares;
  if (config.capAdd?.length) hostConfig.CapAdd = config.capAdd.map(capName);
  if (config.capDrop?.length) hostConfig.CapDrop = config.capDrop.map(capName);
  if (task.devices.length) {
    hostConfig.Devices = task.devices.map((d) => ({
      PathOnHost: d.hostPath,
      PathInContainer: d.taskPath,
      CgroupPermissions: d.permissions,
    }));
  }

  const spec: Docker.ContainerCreateOptions = {
    name: containerName(task),
    Image: input.image,
    Env: toEnvList(containerEnv(input.imageEnv, task.env, config.env)),
    Labels: containerLabels(task, config, plugin, input.agentDir),
    // The daemon uses these when it stops the container itself (e.g. on its own restart), so
    // they match what stopTask does.
    StopTimeout: Math.max(0, Math.ceil(task.killTimeoutMs / 1000)),
    HostConfig: hostConfig,
  };
  const cmd = config.command !== undefined ? [config.command, ...(config.args ?? [])] : config.args;
  if (cmd?.length) spec.Cmd = cmd;
  if (config.entrypoint) spec.Entrypoint = config.entrypoint;
  if (config.workDir) spec.WorkingDir = config.workDir;
  const user = config.user ?? task.user;
  if (user) spec.User = user;
  const stopSignal = config.stopSignal ?? task.killSignal;
  if (stopSignal) spec.StopSignal = stopSignal;
  return spec;
}

/**
 * The container's env: the image's env under the task's, then the task config's `env` on top;
 * each name once, with the value of the highest layer.
 */
export function containerEnv(
  imageEnv: readonly string[],
  taskEnv: Record<string, string>,
  configEnv: Record<string, string> = {},
): Record<string, string> {
  return { ...parseEnvList(imageEnv), ...taskEnv, ...configEnv };
}

/** `<task name>-<the id's random suffix>`, in the characters Docker allows in a name. */
export function containerName(task: Pick<TaskConfig, 'id' | 'name'>): string {
  const suffix = task.id.slice(task.id.lastIndexOf('/') + 1);
  const name = task.name.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return `${name || 'task'}-${suffix}`;
}

export function containerLabels(
  task: TaskConfig,
  config: DockerTaskConfig,
  plugin: DockerConfig,
  agentDir?: string,
): Record<string, string> {
  return {
    ...plugin.extraLabels,
    ...config.labels,
    // Last, so nothing can forge or drop the labels that decide ownership.
    [taskLabels.taskId]: task.id,
    [taskLabels.allocId]: task.allocId,
    [taskLabels.taskName]: task.name,
    [taskLabels.driver]: 'docker',
    [taskLabels.managed]: 'true',
    ...(agentDir ? { [taskLabels.agent]: agentDir } : {}),
  };
}

/** "net_admin" and "CAP_NET_ADMIN" are both NET_ADMIN, as Docker reads them. */
export function capName(cap: string): string {
  return cap.toUpperCase().replace(/^CAP_/, '');
}

/** What the plugin config allows (volumes, privileged, capabilities, labels); throws InvalidConfigError naming each path it refuses. */
export function checkPolicy(config: DockerTaskConfig, plugin: DockerConfig): void {
  const issues: SchemaIssue[] = [];
  const refuse = (where: string, message: string) => issues.push({ path: `/config${where}`, message });
  if (!plugin.volumes.enabled) {
    const why = 'host paths can only be mounted when the docker plugin config sets volumes.enabled';
    config.volumes?.forEach((v, i) => refuse(`/volumes/${i}`, `cannot mount "${v}": ${why}`));
    config.mounts?.forEach((m, i) => refuse(`/mounts/${i}`, `cannot mount ${m.source} at ${m.target}: ${why}`));
  }
  if (config.privileged && !plugin.allowPrivileged) {
    refuse('/privileged', 'privileged containers are not allowed: the docker plugin config must set allowPrivileged');
  }
  const allowed = new Set(plugin.allowCaps.map(capName));
  config.capAdd?.forEach((cap, i) => {
    if (!allowed.has(capName(cap))) {
      refuse(
        `/capAdd/${i}`,
        `capability ${capName(cap)} is not allowed: add it to allowCaps in the docker plugin config (allowed: ${[...allowed].join(', ')})`,
      );
    }
  });
  for (const key of Object.keys(config.labels ?? {})) {
    if (key.startsWith(labelPrefix)) refuse(`/labels/${key}`, `labels under "${labelPrefix}" are set by taskhost itself`);
  }
  if (issues.length) {
    throw new InvalidConfigError(`docker task config is refused: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, {
      details: { errors: issues },
    });
  }
}

/** The task's own directories, the host's mounts (devices), then the ones its config asks for. */
function mounts(task: TaskConfig, config: DockerTaskConfig): Docker.MountConfig {
  const bind = (source: string, target: string, readOnly: boolean) =>
    ({ Type: 'bind', Source: source, Target: target, ReadOnly: readOnly }) as const;
  return [
    bind(task.allocDir, taskDirsInContainer.allocDir, false),
    bind(task.taskDir, taskDirsInContainer.taskDir, false),
    bind(task.secretsDir, taskDirsInContainer.secretsDir, false),
    ...task.mounts.map((m) => bind(m.hostPath, m.taskPath, m.readOnly)),
    ...(config.mounts ?? []).map((m) => bind(path.resolve(task.taskDir, m.source), m.target, m.readOnly)),
  ];
}

/** A relative host path is relative to the task directory, as for `mounts`. */
function resolveVolume(volume: string, taskDir: string): string {
  const [host, ...rest] = volume.split(':');
  return [path.resolve(taskDir, host!), ...rest].join(':');
}
