/**
 * Runs a command in a task's context (its working directory and environment) and captures its
 * output: what execTask does, e.g. for health-check scripts.
 */
import { spawn } from 'node:child_process';
import { signalExit, type ExecResult, type ExitResult } from '../../shared/driver.js';
import { CancelledError } from '../../shared/errors.js';
import { killGroup } from './task-process.js';
import { OutputTail } from '../../shared/output-tail.js';

export interface ExecOptions {
  cwd: string;
  env: Record<string, string>;
  /** Kill the command after this long; 0 means no limit. */
  timeoutMs: number;
  /** Aborting kills the command and rejects with CancelledError. */
  signal?: AbortSignal | undefined;
  /** Bytes kept of each of stdout and stderr (the last ones). */
  maxBytes?: number;
}

/** `command[0]` with the rest as its arguments; a command that cannot be started exits 127 (126: not executable), as in a shell. */
export function execCommand(command: [string, ...string[]], options: ExecOptions): Promise<ExecResult> {
  const [file, ...args] = command;
  const maxBytes = options.maxBytes ?? 64 * 1024;
  const stdout = new OutputTail(maxBytes);
  const stderr = new OutputTail(maxBytes);
  // Its own process group, so a timeout kills whatever the command started too.
  const child = spawn(file, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  return new Promise((resolve, reject) => {
    let spawnError: NodeJS.ErrnoException | undefined;
    let timedOut = false;
    const kill = () => {
      if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
    };
    const timer =
      options.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            kill();
          }, options.timeoutMs)
        : undefined;
    options.signal?.addEventListener('abort', kill, { once: true });
    child.once('error', (err) => (spawnError = err));
    // Background processes the command leaves behind would hold its pipes open: the exec is
    // over when the command itself exits.
    child.once('exit', kill);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', kill);
      if (options.signal?.aborted) return reject(new CancelledError(`exec of "${file}" was cancelled`));
      let exitResult: ExitResult;
      if (spawnError) {
        stderr.push(Buffer.from(`cannot run "${file}": ${spawnError.message}\n`));
        exitResult = { exitCode: spawnError.code === 'EACCES' ? 126 : 127, signal: null, oomKilled: false };
      } else if (timedOut) {
        exitResult = { ...signalExit('SIGKILL'), err: `"${file}" did not finish within ${options.timeoutMs}ms and was killed` };
      } else {
        exitResult = signal === null ? { exitCode: code ?? -1, signal: null, oomKilled: false } : signalExit(signal);
      }
      resolve({ stdout: stdout.toString(), stderr: stderr.toString(), exitResult });
    });
  });
}
