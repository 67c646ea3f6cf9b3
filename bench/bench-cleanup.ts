/**
 * Everything the agent benchmark starts, so that it can all be taken down again: at the end of a
 * run, after an error, and on Ctrl-C. An agent stopped by a signal leaves its tasks running (as it
 * should), so stopping the agents is not enough: containers are found by the run's label and
 * removed, raw_exec tasks are found by their working directory (inside the run's folder) and
 * killed with their process group, and the run's folder is removed last.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { readdir, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Dockerode from 'dockerode';

/** The label every container of a run carries: `taskhost-bench.run=<runId>`. */
export const runLabelKey = 'taskhost-bench.run';

export class BenchCleanup {
  readonly runId: string;
  /** The run's folder: every data dir, log file and config of the run is inside it. */
  readonly root: string;
  readonly docker = new Dockerode();
  readonly #children = new Set<ChildProcess>();
  #done: Promise<void> | undefined;

  constructor() {
    this.root = mkdtempSync(path.join(os.tmpdir(), 'taskhost-bench-agent-'));
    this.runId = path.basename(this.root).replace(/^taskhost-bench-agent-/, '');
  }

  get label(): string {
    return `${runLabelKey}=${this.runId}`;
  }

  /** A child process to SIGKILL at cleanup, unless it has exited by then. */
  track(child: ChildProcess): ChildProcess {
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Removes the run's containers (by label, running or not). Returns how many there were. */
  async removeContainers(): Promise<number> {
    const found = await this.docker.listContainers({ all: true, filters: { label: [this.label] } });
    await Promise.all(
      found.map((c) =>
        this.docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
    return found.length;
  }

  /** Kills (SIGKILL, the whole process group) every process whose working directory is inside `dir`. */
  async killProcessesUnder(dir = this.root): Promise<number> {
    const pids = await processesUnder(dir);
    for (const pid of pids) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
    }
    return pids.length;
  }

  /** Takes everything down; safe to call more than once (later calls wait for the first). */
  run(): Promise<void> {
    this.#done ??= (async () => {
      for (const child of this.#children) child.kill('SIGKILL');
      await Promise.all(
        [...this.#children].map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve(0) : c.once('exit', resolve)))),
      );
      // Twice: a create the killed agent had sent may land just after the first listing.
      for (const pause of [0, 1_000]) {
        await sleep(pause);
        await this.removeContainers().catch((err: unknown) => process.stderr.write(`[bench:agent] cleanup: containers: ${String(err)}\n`));
      }
      await this.killProcessesUnder();
      await rm(this.root, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
    })();
    return this.#done;
  }

  /** On SIGINT or SIGTERM: clean up, then exit 130 (143). */
  installSignalHandlers(): void {
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      process.once(signal, () => {
        process.stderr.write(`[bench:agent] ${signal}: removing the run's containers, processes and files\n`);
        void this.run().finally(() => process.exit(code));
      });
    }
  }
}

/** Pids of the processes (of this user: others' cwd is unreadable) whose working directory is inside `dir`. */
export async function processesUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  const prefix = dir.endsWith(path.sep) ? dir : dir + path.sep;
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cwd = await readlink(`/proc/${name}/cwd`).catch(() => undefined);
    if (cwd !== undefined && (cwd === dir || cwd.startsWith(prefix))) pids.push(Number(name));
  }
  return pids;
}
