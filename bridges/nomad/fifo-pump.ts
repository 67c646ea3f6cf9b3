/**
 * Copies what a task writes to its output file into the FIFO that Nomad's log collector
 * (logmon) reads. taskhost drivers write regular files (raw_exec hands the file to the child,
 * docker copies the container's logs into it, a plugin may append to it or read its tail for an
 * error message), so the bridge gives the driver a file of its own and follows it.
 *
 * The FIFO is opened with O_NONBLOCK: a plain open for writing blocks (a libuv thread, or a
 * plugin's worker) until a reader exists, and would stall the plugin when logmon is slow or gone.
 * Without a reader the open fails with ENXIO and is tried again later; a reader that goes away
 * (EPIPE) is waited for the same way. The bytes copied so far are counted in `<file>.offset`,
 * so a fresh plugin process after a crash resumes where the old one stopped (at most the last
 * chunk is sent twice), and nothing is lost while nobody reads.
 */
import { constants, closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import net from 'node:net';
import { pause } from '../../shared/pause.js';

export interface FifoPumpOptions {
  /** The regular file the driver writes. */
  file: string;
  /** The FIFO Nomad reads. */
  fifo: string;
  /** How often the file is checked for new bytes, and a missing reader looked for again. */
  pollMs?: number;
  /** After `finish()`: how long the file must stay unchanged before the FIFO is closed. */
  settleMs?: number;
}

export class FifoPump {
  readonly #file: string;
  readonly #fifo: string;
  readonly #offsetFile: string;
  readonly #pollMs: number;
  readonly #settleMs: number;
  readonly #stop = new AbortController();
  #finishing = false;
  #done: Promise<void> | undefined;

  constructor(options: FifoPumpOptions) {
    this.#file = options.file;
    this.#fifo = options.fifo;
    this.#offsetFile = `${options.file}.offset`;
    this.#pollMs = options.pollMs ?? 100;
    this.#settleMs = options.settleMs ?? 1_000;
  }

  /** Starts copying (from the offset a previous process recorded, if any). Idempotent. */
  start(): void {
    this.#done ??= this.#run().catch(() => undefined);
  }

  /** The task has exited: copy what is left, then close the FIFO (its reader sees EOF). */
  finish(): Promise<void> {
    this.#finishing = true;
    this.start();
    return this.#done!;
  }

  /** Stops now (the plugin shuts down, or the task is destroyed); the offset stays recorded. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#done;
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let offset = this.#recordedOffset();
    let source: FileHandle | undefined;
    let sink: net.Socket | undefined;
    let quietSince = Date.now();
    const buffer = Buffer.alloc(64 * 1024);
    try {
      while (!signal.aborted) {
        source ??= await open(this.#file, 'r').catch(() => undefined);
        const { bytesRead } = source ? await source.read(buffer, 0, buffer.length, offset) : { bytesRead: 0 };
        if (bytesRead === 0) {
          if (this.#finishing && Date.now() - quietSince >= this.#settleMs) return;
          await pause(this.#pollMs, signal);
          continue;
        }
        quietSince = Date.now();
        sink ??= await this.#openFifo(signal);
        if (!sink) return;
        try {
          await write(sink, buffer.subarray(0, bytesRead));
        } catch {
          // The reader went away: wait for the next one and send the chunk again.
          sink.destroy();
          sink = undefined;
          continue;
        }
        offset += bytesRead;
        writeFileSync(this.#offsetFile, String(offset));
      }
    } finally {
      await source?.close().catch(() => undefined);
      if (sink) await end(sink);
    }
  }

  #recordedOffset(): number {
    try {
      const offset = Number(readFileSync(this.#offsetFile, 'utf8'));
      return Number.isSafeInteger(offset) && offset >= 0 ? offset : 0;
    } catch {
      return 0;
    }
  }

  /** The FIFO open for writing once a reader has it open; undefined when stopped first. */
  async #openFifo(signal: AbortSignal): Promise<net.Socket | undefined> {
    while (!signal.aborted) {
      let fd: number;
      try {
        fd = openSync(this.#fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch (err) {
        // ENXIO: no reader yet. ENOENT: not made yet. Either may change.
        if (!['ENXIO', 'ENOENT'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
        await pause(this.#pollMs, signal);
        continue;
      }
      try {
        // A pipe handle: libuv waits for room instead of failing with EAGAIN.
        const socket = new net.Socket({ fd, readable: false, writable: true });
        socket.on('error', () => undefined);
        return socket;
      } catch (err) {
        closeSync(fd);
        throw err;
      }
    }
    return undefined;
  }
}

function write(socket: net.Socket, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return reject(new Error('FIFO closed'));
    // A copy: the read buffer is reused for the next chunk while this one may still be queued.
    socket.write(Buffer.from(chunk), (err) => (err ? reject(err) : resolve()));
  });
}

function end(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.end(() => resolve());
    socket.once('close', () => resolve());
    socket.once('error', () => resolve());
  });
}
