/**
 * Where the host keeps the handles of live tasks, so a task survives a restart of its driver
 * (memory is enough) or of the host itself (files). Files are written atomically and fsynced: a
 * crash in the middle of a write leaves the previous handle, never half of one, and a new
 * handle put() has resolved survives a power cut.
 *
 * Besides the drivers' own handles, the store holds intent handles (intentHandle): written before
 * a driver is asked to start a task, so a host that dies while the start is in flight can still
 * ask the driver about it (recoverTask with `driverState: null`, see docs/writing-a-driver.md).
 */
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { TaskConfig, TaskHandle } from '../shared/driver.js';

/**
 * The handle the host stores before it calls startTask: the task's config and nothing of the
 * driver's (`version: 0`, `driverState: null`). Recovered after a crash, it has the driver find
 * the task from its config alone, or throw TaskNotFoundError when the start never got that far.
 */
export function intentHandle(config: TaskConfig): TaskHandle {
  return { version: 0, config, state: 'unknown', driverState: null };
}

/** Whether a handle is an intent handle (the host's, not a driver's). */
export function isIntentHandle(handle: TaskHandle): boolean {
  return handle.driverState === null;
}

export interface HandleStore {
  put(handle: TaskHandle): Promise<void>;
  delete(taskId: string): Promise<void>;
  list(): Promise<TaskHandle[]>;
}

export class MemoryHandleStore implements HandleStore {
  readonly #handles = new Map<string, TaskHandle>();

  async put(handle: TaskHandle): Promise<void> {
    this.#handles.set(handle.config.id, structuredClone(handle));
  }
  async delete(taskId: string): Promise<void> {
    this.#handles.delete(taskId);
  }
  async list(): Promise<TaskHandle[]> {
    return [...this.#handles.values()].map((h) => structuredClone(h));
  }
}

/** One JSON file per task under `dir`. */
export class FileHandleStore implements HandleStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async put(handle: TaskHandle): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const file = this.#file(handle.config.id);
    const temp = `${file}.${process.pid}.tmp`;
    const out = await open(temp, 'w');
    try {
      await out.writeFile(JSON.stringify(handle, null, 2));
      await out.sync();
    } finally {
      await out.close();
    }
    const replacing = existsSync(file);
    await rename(temp, file);
    // A new file's name is only durable once the directory is synced. A replaced one (the
    // driver's handle over the intent) needs no sync: a power cut leaves one or the other
    // whole, and either finds the task.
    if (replacing) return;
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  async delete(taskId: string): Promise<void> {
    await rm(this.#file(taskId), { force: true });
  }

  /** Every stored handle; a file that cannot be read or parsed is skipped, not fatal. */
  async list(): Promise<TaskHandle[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const handles: TaskHandle[] = [];
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      try {
        handles.push(JSON.parse(await readFile(path.join(this.dir, name), 'utf8')) as TaskHandle);
      } catch {
        // a torn or foreign file: the atomic rename means it is not one of ours
      }
    }
    return handles;
  }

  #file(taskId: string): string {
    return path.join(this.dir, `${encodeURIComponent(taskId)}.json`);
  }
}
