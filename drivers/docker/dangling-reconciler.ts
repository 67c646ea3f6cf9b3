/**
 * Finds the driver's dangling containers: ones that carry its ownership labels (this agent's
 * included) but belong to no task it tracks, e.g. created by a call whose answer was lost, or left by a task the host has
 * forgotten. Ownership is decided by the labels alone, never guessed, and a container younger
 * than the grace period is left alone: its task may still be starting or about to be recovered.
 */
import type Docker from 'dockerode';
import { shortCall } from './docker-client.js';
import { isNotFound } from './docker-errors.js';
import { taskLabels } from './container-spec.js';

export interface DanglingContainer {
  id: string;
  name: string;
  taskId: string;
  /** ISO time the container was created. */
  createdAt: string;
}

export interface ReconcileResult {
  /** Containers removed. */
  removed: DanglingContainer[];
  /** In dry-run mode: the containers that would have been removed (nothing was). */
  wouldRemove: DanglingContainer[];
}

export interface ReconcileOptions {
  /** The agent's data directory: only containers of this agent are considered. */
  agentDir: string;
  /** Whether the driver tracks (or is starting) the task with this id. */
  isTracked: (taskId: string) => boolean;
  graceMs: number;
  dryRun: boolean;
  /** The current time, ms since the epoch. */
  now: number;
  signal?: AbortSignal | undefined;
}

export async function findDangling(docker: Docker, options: ReconcileOptions): Promise<DanglingContainer[]> {
  const listed = await docker.listContainers({
    all: true,
    filters: { label: [`${taskLabels.managed}=true`, `${taskLabels.driver}=docker`, `${taskLabels.agent}=${options.agentDir}`] },
    abortSignal: shortCall(options.signal),
  } as Docker.ContainerListOptions);
  const dangling: DanglingContainer[] = [];
  for (const c of listed) {
    // Checked again here: some Engines have ignored label filters.
    const labels = c.Labels ?? {};
    const taskId = labels[taskLabels.taskId];
    const ours =
      labels[taskLabels.managed] === 'true' && labels[taskLabels.driver] === 'docker' && labels[taskLabels.agent] === options.agentDir;
    if (!ours || !taskId) continue;
    if (options.isTracked(taskId)) continue;
    // The list gives whole seconds, rounded down: counted from the end of that second, a
    // container can only look younger than it is, never old enough too early.
    const createdMs = (c.Created + 1) * 1000;
    if (options.now - createdMs < options.graceMs) continue;
    dangling.push({ id: c.Id, name: (c.Names[0] ?? c.Id).replace(/^\//, ''), taskId, createdAt: new Date(c.Created * 1000).toISOString() });
  }
  return dangling;
}

/** Removes the dangling containers (or, in dry-run mode, only lists them). */
export async function reconcileDangling(docker: Docker, options: ReconcileOptions): Promise<ReconcileResult> {
  const dangling = await findDangling(docker, options);
  if (options.dryRun) return { removed: [], wouldRemove: dangling };
  const removed: DanglingContainer[] = [];
  for (const c of dangling) {
    try {
      await docker
        .getContainer(c.id)
        .remove({ force: true, v: true, abortSignal: shortCall(options.signal) } as Docker.ContainerRemoveOptions);
      removed.push(c);
    } catch (err) {
      // Gone already: someone else cleaned it up.
      if (!isNotFound(err)) throw err;
    }
  }
  return { removed, wouldRemove: [] };
}
