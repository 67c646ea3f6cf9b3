/**
 * Processes a conformance run left behind, found by what they carry in their environment: every
 * task process gets `TASKHOST_ALLOC_ID` (the run gives all its tasks one alloc id), a
 * container's processes appear in the host's /proc with it too, and whatever the plugin's
 * worker spawns inherits the run's own mark. A task that outlives its destroyTask() is a
 * process nobody will ever stop.
 */
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface MarkedProcess {
  pid: number;
  /** Its command line, shortened. */
  command: string;
}

/**
 * Running processes (not this one) whose environment holds one of `marks` (`NAME=value`);
 * undefined where there is no /proc to look in.
 */
export async function processesMarked(marks: readonly string[]): Promise<MarkedProcess[] | undefined> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return undefined;
  }
  const needles = marks.map((m) => `\0${m}\0`);
  const found = await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)
      .map(async (e): Promise<MarkedProcess | undefined> => {
        try {
          // A zombie's environment reads as empty: it has already stopped running.
          const env = `\0${await readFile(`/proc/${e}/environ`, 'latin1')}`;
          if (!needles.some((n) => env.includes(n))) return undefined;
          const cmdline = (await readFile(`/proc/${e}/cmdline`, 'utf8')).split('\0').filter(Boolean).join(' ');
          return { pid: Number(e), command: cmdline.length > 80 ? `${cmdline.slice(0, 77)}...` : cmdline };
        } catch {
          return undefined; // gone meanwhile, or not ours to read
        }
      }),
  );
  return found.filter((p): p is MarkedProcess => p !== undefined).sort((a, b) => a.pid - b.pid);
}

/**
 * The marked processes still running once stragglers have had `graceMs` to go (a task killed by
 * destroyTask() a moment ago may not have exited yet); undefined where there is no /proc.
 */
export async function leftovers(marks: readonly string[], graceMs = 2_000): Promise<MarkedProcess[] | undefined> {
  const deadline = performance.now() + graceMs;
  for (;;) {
    const left = await processesMarked(marks);
    if (!left || left.length === 0 || performance.now() >= deadline) return left;
    await sleep(100);
  }
}

/** SIGKILLs every marked process, then waits up to `graceMs` for them to go; returns those still running. */
export async function killMarked(marks: readonly string[], graceMs = 5_000): Promise<MarkedProcess[]> {
  const deadline = performance.now() + graceMs;
  for (;;) {
    const left = (await processesMarked(marks)) ?? [];
    if (left.length === 0 || performance.now() >= deadline) return left;
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sleep(100);
  }
}

/** "pid 4242 (sleep 600), pid 4250 (sh -c ...)". */
export function describeProcesses(list: readonly MarkedProcess[]): string {
  return list.map((p) => `pid ${p.pid} (${p.command || '?'})`).join(', ');
}

/**
 * Looks for processes carrying the run's marks and kills them. `undefined`: none was left;
 * `'no /proc'`: there is nowhere to look; otherwise what to tell the author, built as
 * `<processes><whose> were still running after <after>, and <what became of them>: <fix>`.
 */
export async function leftoverProblem(
  marks: readonly string[],
  text: { whose: string; after: string; fix: string },
): Promise<string | 'no /proc' | undefined> {
  const left = await leftovers(marks);
  if (!left) return 'no /proc';
  if (left.length === 0) return undefined;
  const still = await killMarked(marks);
  const were = left.length === 1 ? 'was' : 'were';
  const fate = still.length ? `could not all be killed (${describeProcesses(still)})` : `${were} killed`;
  return `${describeProcesses(left)}${text.whose} ${were} still running after ${text.after}, and ${fate}: ${text.fix}`;
}
