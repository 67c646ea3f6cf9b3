/**
 * Follows a file as it grows (like `tail -f`), handing each new chunk to `onData`, until the
 * signal aborts; then reads what is left, so nothing written before the stop is lost. Polling
 * is used on purpose: it works the same on every file system and for files other processes write.
 */
import { open } from 'node:fs/promises';
import { pause } from '../shared/pause.js';

export async function followFile(file: string, onData: (chunk: Buffer) => void, signal: AbortSignal, intervalMs = 50): Promise<void> {
  const handle = await open(file, 'r');
  const buffer = Buffer.alloc(64 * 1024);
  let offset = 0;
  const drain = async () => {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      if (bytesRead === 0) return;
      offset += bytesRead;
      onData(Buffer.from(buffer.subarray(0, bytesRead)));
    }
  };
  try {
    while (!signal.aborted) {
      await drain();
      await pause(intervalMs, signal);
    }
    await drain();
  } finally {
    await handle.close();
  }
}
