/**
 * A container's stdout and stderr, appended to the task's log files. Containers run without a
 * TTY, so the Engine sends frames: an 8-byte header (byte 0 the stream, bytes 4-7 the length,
 * big-endian) and the payload. A follow stream is demultiplexed by docker-modem, which never ends
 * its targets, so the files are ended here; a one-off fetch is a Buffer and is parsed here.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type Docker from 'dockerode';
import { shortCall } from './docker-client.js';
import { isAbort, isNotFound } from './docker-errors.js';
import { pause } from '../../shared/pause.js';

export interface LogTarget {
  stdoutPath: string;
  stderrPath: string;
}

export interface LogFrame {
  stream: 'stdout' | 'stderr';
  data: Buffer;
}

/** Splits a multiplexed log Buffer into frames; a trailing partial frame is dropped. */
export function parseLogFrames(buffer: Buffer): LogFrame[] {
  const frames: LogFrame[] = [];
  let at = 0;
  while (at + 8 <= buffer.length) {
    const kind = buffer[at];
    const size = buffer.readUInt32BE(at + 4);
    if (at + 8 + size > buffer.length) break;
    // Stream 0 is stdin, which the Engine only echoes for attached TTYs: count it as stdout.
    frames.push({ stream: kind === 2 ? 'stderr' : 'stdout', data: buffer.subarray(at + 8, at + 8 + size) });
    at += 8 + size;
  }
  return frames;
}

/** The `since` parameter for a moment: seconds and nanoseconds, as the Engine parses it. */
export function sinceParam(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6));
  return `${seconds}.${String(nanos).padStart(9, '0')}`;
}

/**
 * The file systems' clock is coarse: a file's mtime can be a few ms older than the moment of the
 * write, so older than the Engine's stamp on the line written. This much is added to be safe.
 */
const mtimeSlackMs = 20;

/**
 * Where an earlier driver instance stopped writing each of the task's log files: after that
 * time, per stream; undefined (from the start) for a file it never wrote to.
 */
export async function logFileTimes(config: LogTarget): Promise<{ stdout?: number; stderr?: number }> {
  const after = (file: string) =>
    stat(file).then(
      (s) => (s.size > 0 ? s.mtimeMs + mtimeSlackMs : undefined),
      () => undefined,
    );
  const [stdout, stderr] = await Promise.all([after(config.stdoutPath), after(config.stderrPath)]);
  return { ...(stdout !== undefined ? { stdout } : {}), ...(stderr !== undefined ? { stderr } : {}) };
}

export interface CopyLogsOptions {
  /** Keep following until the container stops (false: what is there now, then done). */
  follow: boolean;
  /** Only lines logged after this time (ms since the epoch), per stream. */
  since?: { stdout?: number | undefined; stderr?: number | undefined } | undefined;
  signal: AbortSignal;
}

/** Between attempts to follow again after the Engine dropped the stream. */
const retryMs = { first: 250, max: 5_000 };

/**
 * Copies the container's output into the task's files and resolves once the output is complete
 * and on disk (a follow ends when the container stops), or when the signal aborts. A follow the
 * Engine drops while the container runs (a daemon restart) is resumed from the time of the last
 * line written, so nothing is written twice. Never rejects: a log failure must not fail the
 * task; the first one is reported through `onError`, saying whether the copy carries on.
 */
export async function copyLogs(
  container: Docker.Container,
  target: LogTarget,
  options: CopyLogsOptions,
  onError: (err: unknown, resuming: boolean) => void,
): Promise<void> {
  const { signal } = options;
  const out = new LogFile(target.stdoutPath);
  const err = new LogFile(target.stderrPath);
  let since = options.since ?? {};
  let delay = retryMs.first;
  let reported = false;
  try {
    while (!signal.aborted) {
      let complete = false;
      try {
        await copyOnce(container, since, out, err, options);
        complete = true;
      } catch (e) {
        if (signal.aborted || isAbort(e) || isNotFound(e)) return;
        if (!reported) onError(e, options.follow);
        reported = true;
      }
      if (!options.follow || (complete && !(await stillRunning(container, signal)))) return;
      await pause(delay, signal);
      delay = Math.min(delay * 2, retryMs.max);
      // What the Engine stamped before our last write to a file is in that file already.
      since = { stdout: out.lastWrite ?? since.stdout, stderr: err.lastWrite ?? since.stderr };
    }
  } finally {
    await Promise.all([out.close(), err.close()]);
  }
}

/** One logs request: per stream when the two start at different times. */
async function copyOnce(
  container: Docker.Container,
  since: { stdout?: number | undefined; stderr?: number | undefined },
  out: LogFile,
  err: LogFile,
  options: CopyLogsOptions,
): Promise<void> {
  if (since.stdout === since.stderr) {
    await copy(container, { stdout: true, stderr: true, since: since.stdout }, out, err, options);
    return;
  }
  await Promise.all([
    copy(container, { stdout: true, stderr: false, since: since.stdout }, out, err, options),
    copy(container, { stdout: false, stderr: true, since: since.stderr }, out, err, options),
  ]);
}

interface Streams {
  stdout: boolean;
  stderr: boolean;
  since: number | undefined;
}

async function copy(container: Docker.Container, streams: Streams, out: LogFile, err: LogFile, options: CopyLogsOptions): Promise<void> {
  const base = {
    stdout: streams.stdout,
    stderr: streams.stderr,
    timestamps: false,
    ...(streams.since !== undefined ? { since: sinceParam(streams.since) } : {}),
    abortSignal: options.signal,
  };
  if (!options.follow) {
    const buffer = await container.logs({ ...base, follow: false });
    for (const frame of parseLogFrames(Buffer.from(buffer))) (frame.stream === 'stdout' ? out : err).write(frame.data);
    return;
  }
  const stream = (await container.logs({ ...base, follow: true })) as NodeJS.ReadableStream & { destroy(): void };
  const stop = () => stream.destroy();
  options.signal.addEventListener('abort', stop, { once: true });
  try {
    container.modem.demuxStream(stream, out.sink, err.sink);
    await finished(stream);
  } finally {
    options.signal.removeEventListener('abort', stop);
  }
}

/** Whether the container still runs; an Engine that does not answer counts as yes (try again). */
async function stillRunning(container: Docker.Container, signal: AbortSignal): Promise<boolean> {
  try {
    return (await container.inspect({ abortSignal: shortCall(signal) })).State.Running;
  } catch (e) {
    return !isNotFound(e) && !signal.aborted;
  }
}

/** A task log file opened for appending, remembering when it was last written to. */
class LogFile {
  readonly #stream: WriteStream;
  lastWrite: number | undefined;
  /** What demuxStream writes to: it only ever calls `write`. */
  readonly sink: NodeJS.WritableStream;

  constructor(file: string) {
    this.#stream = createWriteStream(file, { flags: 'a' });
    // A write error (disk full...) loses log lines, never the task.
    this.#stream.on('error', () => undefined);
    this.sink = { write: (chunk: Buffer) => this.write(chunk) } as unknown as NodeJS.WritableStream;
  }

  write(chunk: Buffer): boolean {
    this.lastWrite = Date.now();
    return this.#stream.write(chunk);
  }

  /** Ends the file and waits until its data is on disk. */
  async close(): Promise<void> {
    this.#stream.end();
    await finished(this.#stream).catch(() => undefined);
  }
}
