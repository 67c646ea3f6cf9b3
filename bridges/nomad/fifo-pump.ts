/**
 * Copies what a task writes to its output file into the FIFO that Nomad's log collector
 * (logmon) reads. taskhost drivers write regular files (raw_exec hands the file to the child,
 * docker copies the container's logs into it, a plugin may append to it or read its tail for an
 * error message), so the bridge gives the driver a file of its own and follows it.
 *
 * The copy runs in a small process of its own, `tail -c +1 -F <file>` with its stdout on the
 * FIFO, detached from the plugin (its own session, no stdio of the plugin's), for the reasons
 * Nomad keeps its executors and docker log copiers out of the driver process:
 * - logmon reads a FIFO once, to EOF: had the plugin process held the write end, the plugin's
 *   restart (Nomad's Shutdown at an agent restart, or a crash) would end the task's logs;
 * - opening a FIFO for writing blocks until a reader comes, which here blocks only the helper's
 *   shell, never a thread of the plugin;
 * - a reader that is slow or gone makes the helper wait (the file keeps everything meanwhile).
 * The helper's pid is kept in `<file>.pump` so a fresh plugin process adopts it (after checking
 * that the pid is still this helper, never an unrelated process that reused the number), and
 * ends it once the task has exited and its file has stopped growing: then logmon sees EOF.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { pause } from '../../shared/pause.js';

export interface FifoPumpOptions {
  /** The regular file the driver writes. */
  file: string;
  /** The FIFO Nomad reads. */
  fifo: string;
  /** How often the file is checked for growth after the task exited. */
  pollMs?: number;
  /** After `finish()`: how long the file must stay unchanged before the copy is ended. */
  settleMs?: number;
}

export class FifoPump {
  readonly #file: string;
  readonly #fifo: string;
  readonly #pidFile: string;
  readonly #pollMs: number;
  readonly #settleMs: number;
  readonly #stop = new AbortController();
  #pid: number | undefined;
  #finished: Promise<void> | undefined;

  constructor(options: FifoPumpOptions) {
    this.#file = options.file;
    this.#fifo = options.fifo;
    this.#pidFile = `${options.file}.pump`;
    this.#pollMs = options.pollMs ?? 100;
    this.#settleMs = options.settleMs ?? 1_000;
  }

  /** Starts the copy, or adopts the one a previous plugin process started. Idempotent. */
  start(): void {
    if (this.#pid !== undefined) return;
    const running = this.#recordedPid();
    if (running !== undefined) {
      this.#pid = running;
      return;
    }
    // A helper that died while the task ran took its position with it: go on from the file's end
    // rather than send the whole log again.
    const from = this.#hasRecord() ? size(this.#file) + 1 : 1;
    const child = spawn(
      'sh',
      ['-c', 'exec tail -c "+$3" -F "$1" 2>/dev/null > "$2"', 'taskhost-fifo-pump', this.#file, this.#fifo, String(from)],
      {
        detached: true,
        stdio: 'ignore',
      },
    );
    child.on('error', () => undefined);
    child.unref();
    if (child.pid === undefined) return;
    this.#pid = child.pid;
    writeFileSync(this.#pidFile, String(child.pid));
  }

  /** The task has exited: once its file has stopped growing, ends the copy (logmon sees EOF). */
  finish(): Promise<void> {
    this.start();
    this.#finished ??= this.#finish();
    return this.#finished;
  }

  /** Stops watching; the copy itself goes on (a fresh plugin process adopts it). */
  close(): void {
    this.#stop.abort();
  }

  /** Ends the copy now and forgets it (the task is destroyed). */
  kill(): void {
    this.#stop.abort();
    this.#end();
    rmSync(this.#pidFile, { force: true });
  }

  async #finish(): Promise<void> {
    const signal = this.#stop.signal;
    let last = size(this.#file);
    let quietSince = Date.now();
    while (!signal.aborted && Date.now() - quietSince < this.#settleMs) {
      await pause(this.#pollMs, signal);
      const now = size(this.#file);
      if (now !== last) quietSince = Date.now();
      last = now;
    }
    // A last poll of tail's own (it checks about once a second without inotify).
    if (!signal.aborted) await pause(this.#pollMs, signal);
    if (!signal.aborted) this.#end();
  }

  #end(): void {
    const pid = this.#pid ?? this.#recordedPid();
    if (pid !== undefined && this.#isOurs(pid)) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  }

  #hasRecord(): boolean {
    try {
      statSync(this.#pidFile);
      return true;
    } catch {
      return false;
    }
  }

  /** The recorded helper's pid, if that process is still this file's helper. */
  #recordedPid(): number | undefined {
    let pid: number;
    try {
      pid = Number(readFileSync(this.#pidFile, 'utf8'));
    } catch {
      return undefined;
    }
    return Number.isSafeInteger(pid) && pid > 0 && this.#isOurs(pid) ? pid : undefined;
  }

  /** Whether `pid` runs `tail ... <our file>` (a reused pid runs something else). */
  #isOurs(pid: number): boolean {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return args.includes(this.#file) && args.some((a) => a === 'tail' || a.endsWith('/tail') || a === 'taskhost-fifo-pump');
    } catch {
      return false;
    }
  }
}

function size(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
