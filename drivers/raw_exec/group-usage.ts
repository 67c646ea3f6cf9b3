/**
 * Resource usage of a whole process group, read from /proc. raw_exec has no cgroup to ask, so it
 * walks every process and keeps those whose process group is the task's, as Nomad's executor does.
 */
import { readdir, readFile } from 'node:fs/promises';
import { clockTicks, readProcStatAsync, type ProcStat } from './proc-stat.js';

export interface GroupUsage {
  /** Live processes in the group (zombies excluded). */
  processes: number;
  /** CPU time in ms, user and system, of the group's processes and the children they reaped. */
  userMs: number;
  systemMs: number;
  rssBytes: number;
}

/** Sums usage over every process whose process group is `pgid`. */
export async function groupUsage(pgid: number): Promise<GroupUsage> {
  const members = await groupMembers(pgid);
  const rss = await Promise.all(members.filter((m) => m.state !== 'Z').map((m) => rssBytes(m.pid)));
  // Reaped children's times move into their parent's cutime/cstime, so counting those keeps the
  // total from dropping when a short-lived child of the task exits.
  const ticksToMs = 1000 / clockTicks;
  return {
    processes: rss.length,
    userMs: members.reduce((sum, m) => sum + m.utime + m.cutime, 0) * ticksToMs,
    systemMs: members.reduce((sum, m) => sum + m.stime + m.cstime, 0) * ticksToMs,
    rssBytes: rss.reduce((sum, r) => sum + r, 0),
  };
}

/** Every process (zombies included) whose process group is `pgid`. */
export async function groupMembers(pgid: number): Promise<ProcStat[]> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
  const stats = await Promise.all(pids.map((pid) => readProcStatAsync(pid)));
  return stats.filter((s): s is ProcStat => s !== undefined && s.pgrp === pgid);
}

/** VmRSS of a process in bytes; 0 if it has none (a kernel thread) or is gone. */
async function rssBytes(pid: number): Promise<number> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/status`, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return 0;
    throw err;
  }
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(text)?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}
