/**
 * execTask for containers: a command run inside the task's container (e.g. a health check), its
 * output kept in bounded buffers and its exit code read back from the Engine.
 */
import { finished } from 'node:stream/promises';
import type Docker from 'dockerode';
import { signalExit, type ExecResult, type ExitResult } from '../../shared/driver.js';
import { CancelledError } from '../../shared/errors.js';
import { shortCall } from './docker-client.js';
import { OutputTail } from '../../shared/output-tail.js';

/** Bytes kept of each of stdout and stderr: the last ones, where errors usually are. */
export const execOutputLimit = 64 * 1024;

export interface ContainerExecOptions {
  /** Give up after this long; 0 means no limit. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Whether the Engine runs on this host, so a command that overran can be killed by its pid. */
  localEngine: boolean;
}

export async function execInContainer(container: Docker.Container, command: string[], options: ContainerExecOptions): Promise<ExecResult> {
  const exec = await container.exec({ Cmd: command, AttachStdout: true, AttachStderr: true, abortSignal: shortCall(options.signal) });
  const stream = await exec.start({ hijack: true, stdin: false });
  const stdout = new OutputTail(execOutputLimit);
  const stderr = new OutputTail(execOutputLimit);
  container.modem.demuxStream(stream, stdout.sink(), stderr.sink());

  let timedOut = false;
  const ended = finished(stream).catch(() => undefined);
  const timer =
    options.timeoutMs > 0
      ? setTimeout(() => {
          timedOut = true;
          stream.destroy();
        }, options.timeoutMs)
      : undefined;
  const onAbort = () => stream.destroy();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await ended;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
  if (options.signal?.aborted) {
    await killExec(exec, options.localEngine);
    throw new CancelledError(`exec of "${command[0]}" was cancelled`);
  }
  let exitResult: ExitResult;
  if (timedOut) {
    const killed = await killExec(exec, options.localEngine);
    exitResult = killed
      ? { ...signalExit('SIGKILL'), err: `"${command[0]}" did not finish within ${options.timeoutMs}ms and was killed` }
      : {
          exitCode: -1,
          signal: null,
          oomKilled: false,
          err: `"${command[0]}" did not finish within ${options.timeoutMs}ms; it may still be running in the container`,
        };
  } else {
    exitResult = { exitCode: await exitCodeOf(exec), signal: null, oomKilled: false };
  }
  return { stdout: stdout.toString(), stderr: stderr.toString(), exitResult };
}

/**
 * The exec's exit code. The output can end a moment before the Engine has recorded the exit, so
 * an exec still marked running is asked again, briefly.
 */
async function exitCodeOf(exec: Docker.Exec): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const info = await exec.inspect({ abortSignal: shortCall() });
    if ((!info.Running && typeof info.ExitCode === 'number') || attempt === 40) return info.ExitCode ?? -1;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The Engine has no call to stop an exec; where it runs on this host the command's pid (which it
 * reports in the host's pid namespace) can be killed directly. Returns whether it was.
 */
async function killExec(exec: Docker.Exec, localEngine: boolean): Promise<boolean> {
  if (!localEngine) return false;
  try {
    const info = (await exec.inspect({ abortSignal: shortCall() })) as { Running?: boolean; Pid?: number };
    if (!info.Running || !info.Pid) return false;
    process.kill(info.Pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}
