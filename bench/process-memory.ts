/**
 * A process's memory from /proc/<pid>/smaps_rollup (Linux 4.14+). Pss charges each shared page
 * to the processes mapping it in equal parts, so summing Pss over a group of processes counts
 * the node binary and shared libraries once, not once per plugin process as Rss would.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

export interface ProcessMemory {
  /** Proportional set size, bytes. */
  pss: number;
  /** Unique set size (private pages only), bytes. */
  uss: number;
  /** Resident set size, bytes. */
  rss: number;
}

export function canReadProcessMemory(): boolean {
  return existsSync('/proc/self/smaps_rollup');
}

export async function readProcessMemory(pid: number | 'self' = 'self'): Promise<ProcessMemory> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kB = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!match) throw new Error(`/proc/${pid}/smaps_rollup has no ${field} line`);
    return Number(match[1]) * 1024;
  };
  return { pss: kB('Pss'), uss: kB('Private_Clean') + kB('Private_Dirty'), rss: kB('Rss') };
}

export function addMemory(a: ProcessMemory, b: ProcessMemory): ProcessMemory {
  return { pss: a.pss + b.pss, uss: a.uss + b.uss, rss: a.rss + b.rss };
}

export function subtractMemory(a: ProcessMemory, b: ProcessMemory): ProcessMemory {
  return { pss: a.pss - b.pss, uss: a.uss - b.uss, rss: a.rss - b.rss };
}
