/**
 * Where the host keeps the handles of live tasks, so a task survives a restart of its driver
 * (memory is enough) or of the host itself (files). Files are written atomically: a crash in the
 * middle of a write leaves the previous handle, never half of one.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TaskHandle } from '../shared/driver.js';

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
    await writeFile(temp, JSON.stringify(handle, null, 2));
    await rename(temp, file);
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
