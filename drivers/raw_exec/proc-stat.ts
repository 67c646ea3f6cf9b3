/**
 * The fields of /proc/<pid>/stat the raw_exec driver needs (proc(5)). Linux only: the driver
 * fingerprints as undetected where /proc is missing.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** Clock ticks per second of the stat times: USER_HZ, fixed at 100 in the Linux ABI. */
export const clockTicks = 100;

export interface ProcStat {
  pid: number;
  /** One letter: R running, S sleeping, D disk wait, Z zombie, T stopped, ... */
  state: string;
  pgrp: number;
  /** CPU time in clock ticks: the process's own, and that of its reaped children. */
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
  /** When the process started, in clock ticks since boot: with the pid, it names one process. */
  startTime: number;
  /** The waitpid() status of a zombie (Linux 3.5+), undefined on older kernels. */
  exitCode: number | undefined;
}

/** Parses the text of a /proc/<pid>/stat file. */
export function parseProcStat(text: string): ProcStat {
  // The command name (field 2) is in parentheses and may itself hold spaces and ')':
  // only what follows the last ')' splits cleanly. rest[0] is field 3.
  const close = text.lastIndexOf(')');
  const rest = text
    .slice(close + 2)
    .trim()
    .split(' ');
  const field = (n: number) => Number(rest[n - 3]);
  return {
    pid: Number(text.slice(0, text.indexOf(' '))),
    state: rest[0] ?? '?',
    pgrp: field(5),
    utime: field(14),
    stime: field(15),
    cutime: field(16),
    cstime: field(17),
    startTime: field(22),
    exitCode: rest.length >= 50 ? field(52) : undefined,
  };
}

/** The stat of a live or zombie process, or undefined once it is gone. */
export function readProcStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch (err) {
    return gone(err);
  }
}

/** Like readProcStat, without blocking the event loop: for walks over every process. */
export async function readProcStatAsync(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch (err) {
    return gone(err);
  }
}

/** A process that exits while its file is read gives ENOENT or ESRCH; anything else is a real error. */
function gone(err: unknown): undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ESRCH') return undefined;
  throw err;
}
