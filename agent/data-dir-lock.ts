/**
 * One agent per data dir: `<dataDir>/agent.lock` holds the owner's pid, host and process start
 * time. A lock whose process is gone (killed with kill -9, say) is stale and taken over; pid
 * reuse is caught by the start time (Linux) and by the pid being our own.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { DataDirLockedError } from '../shared/errors.js';

/** What the lock file holds. */
export interface LockHolder {
  pid: number;
  hostname: string;
  /** The process's start time in clock ticks since boot (`/proc/<pid>/stat`), where known. */
  startTime?: string;
  acquiredAt: string;
}

/** A held lock; `release()` is idempotent. */
export interface DataDirLock {
  readonly path: string;
  readonly holder: LockHolder;
  release(): void;
}

const heldHere = new Set<string>();

/**
 * Takes `<dataDir>/agent.lock`, or throws DataDirLockedError naming the pid (and host) that holds
 * it. Creates dataDir if missing.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const file = path.join(path.resolve(dataDir), 'agent.lock');
  if (heldHere.has(file)) throw locked(file, self(), 'this process already holds it');
  const me = self();
  // Exclusive create makes taking a free lock atomic. Taking over a stale one is guarded by a
  // second exclusive file, so two agents starting at once after a crash cannot both remove it.
  for (let attempt = 0; attempt < 50; attempt++) {
    if (tryCreate(file, me)) return held(file, me);
    const holder = readHolder(file);
    if (holder === undefined) continue; // removed (or half written) under us: look again
    if (isAlive(holder)) throw locked(file, holder);
    takeOver(file, holder, me);
  }
  throw locked(file, readHolder(file) ?? me, 'it changed hands too often while this agent tried to take it');
}

function held(file: string, me: LockHolder): DataDirLock {
  heldHere.add(file);
  let released = false;
  return {
    path: file,
    holder: me,
    release() {
      if (released) return;
      released = true;
      heldHere.delete(file);
      // Remove only our own lock: a lock some other agent took meanwhile stays.
      const now = readHolder(file);
      if (now && sameHolder(now, me)) unlinkIfPresent(file);
    },
  };
}

function takeOver(file: string, stale: LockHolder, me: LockHolder): void {
  const guard = `${file}.takeover`;
  if (!tryCreate(guard, me)) {
    const other = readHolder(guard);
    // A guard left by an agent killed in the middle of a takeover is itself stale.
    if (other && !isAlive(other)) unlinkIfPresent(guard);
    return;
  }
  try {
    const now = readHolder(file);
    if (now && sameHolder(now, stale)) unlinkIfPresent(file);
  } finally {
    unlinkIfPresent(guard);
  }
}

/** Creates `file` whole or not at all: written aside, then hard-linked into place (EEXIST if taken). */
function tryCreate(file: string, holder: LockHolder): boolean {
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(aside, JSON.stringify(holder) + '\n', { flag: 'wx', mode: 0o600 });
  try {
    linkSync(aside, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkIfPresent(aside);
  }
}

function readHolder(file: string): LockHolder | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const data = JSON.parse(text) as Partial<LockHolder>;
    if (typeof data.pid === 'number' && typeof data.hostname === 'string') return data as LockHolder;
  } catch {
    // fall through: unreadable content
  }
  // Locks are linked into place whole, so this is not one of ours being written: nobody holds it.
  return { pid: 0, hostname: hostname(), acquiredAt: '' };
}

/** Whether the holder may still be running. A lock from another host is assumed held. */
function isAlive(holder: LockHolder): boolean {
  if (holder.hostname !== hostname()) return true;
  if (!Number.isInteger(holder.pid) || holder.pid <= 0) return false;
  // Our own pid in a lock we do not hold is a previous agent's (pid 1 in a restarted container).
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: it exists, under another user.
  }
  const started = startTime(holder.pid);
  return holder.startTime === undefined || started === undefined || started === holder.startTime;
}

function self(): LockHolder {
  const me: LockHolder = { pid: process.pid, hostname: hostname(), acquiredAt: new Date().toISOString() };
  const started = startTime(process.pid);
  if (started !== undefined) me.startTime = started;
  return me;
}

/** Field 22 of /proc/<pid>/stat: when the process started, which a reused pid does not share. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function sameHolder(a: LockHolder, b: LockHolder): boolean {
  return a.pid === b.pid && a.hostname === b.hostname && a.startTime === b.startTime && a.acquiredAt === b.acquiredAt;
}

function unlinkIfPresent(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function locked(file: string, holder: LockHolder, why?: string): DataDirLockedError {
  const where = holder.hostname === hostname() ? '' : ` on host ${holder.hostname}`;
  const reason = why ?? `another agent is running with this data dir`;
  return new DataDirLockedError(
    `data dir ${path.dirname(file)} is locked by pid ${holder.pid}${where} (${reason}): stop that agent, or start this one with another dataDir`,
    { details: { path: file, pid: holder.pid, hostname: holder.hostname } },
  );
}
