/**
 * The peer of the driver benchmark: what a program does to run a task without taskhost. The
 * spawn options are raw_exec's own (its own process group, output appended to two files whose
 * descriptors are closed once the child has them), so the difference between the arms is what
 * the host adds, not a cheaper way of spawning.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface SpawnTaskOptions {
  command: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
  stdoutPath: string;
  stderrPath: string;
}

/** Milliseconds: `spawn` until spawn() returned (fds opened and closed), `exit` from then to 'exit'. */
export interface SpawnTaskTimes {
  spawn: number;
  exit: number;
  total: number;
}

/** Runs the command to its exit; rejects if it cannot start or does not exit with code 0. */
export async function spawnTask(options: SpawnTaskOptions): Promise<SpawnTaskTimes> {
  const start = performance.now();
  const fds: number[] = [];
  let child: ChildProcess;
  try {
    fds.push(openSync(options.stdoutPath, 'a'));
    fds.push(openSync(options.stderrPath, 'a'));
    child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['ignore', fds[0], fds[1]],
    });
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  const spawned = performance.now();
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c, s) => resolve([c, s]));
  });
  const exited = performance.now();
  if (code !== 0) throw new Error(`${options.command} exited with ${signal ?? `code ${code}`}, expected code 0`);
  return { spawn: spawned - start, exit: exited - spawned, total: exited - start };
}
