/**
 * CPU time of this process (every thread: its worker threads too) and of other processes, so an
 * arm in one process with threads and an arm spread over child processes are charged alike.
 */
import { readFile } from 'node:fs/promises';

/** Linux's USER_HZ: /proc reports CPU time in these ticks, 100 per second on every common build. */
const ticksPerSecond = 100;

/** CPU milliseconds (user + system) this process has used, all threads together. */
export function ownCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/** CPU milliseconds (user + system) process `pid` has used, from /proc/<pid>/stat (10 ms steps). */
export async function processCpuMs(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
  const ticks = Number(fields[11]) + Number(fields[12]);
  if (!Number.isFinite(ticks)) throw new Error(`cannot read CPU time from /proc/${pid}/stat`);
  return (ticks * 1000) / ticksPerSecond;
}
