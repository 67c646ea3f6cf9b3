/** The example-file plugin's view of its directory: every regular file is a device. */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

export interface FileDevice {
  /** The file's name. */
  id: string;
  /** Its absolute path. */
  file: string;
  size: number;
  mtimeMs: number;
  /** Permission bits. */
  mode: number;
  /** A world-writable file is unhealthy: any user on the host could change the "device". */
  healthy: boolean;
}

/** The regular files of `dir` (symlinks followed), by name; throws when `dir` cannot be read. */
export async function scanFiles(dir: string): Promise<FileDevice[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new Error(`cannot read the device directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const devices: FileDevice[] = [];
  for (const name of names.sort()) {
    const file = path.join(dir, name);
    const info = await stat(file).catch(() => undefined); // gone since readdir, or a dangling link
    if (!info?.isFile()) continue;
    const mode = info.mode & 0o7777;
    devices.push({ id: name, file, size: info.size, mtimeMs: info.mtimeMs, mode, healthy: (mode & 0o002) === 0 });
  }
  return devices;
}
