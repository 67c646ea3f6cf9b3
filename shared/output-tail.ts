/** Keeps the last `max` bytes written: where a failing command's error message usually is. */
export class OutputTail {
  readonly #max: number;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(max: number) {
    this.#max = max;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    while (this.#chunks.length > 1 && this.#size - this.#chunks[0]!.length >= this.#max) this.#size -= this.#chunks.shift()!.length;
  }

  /** A minimal writable for APIs that want a stream to write into (demultiplexers). */
  sink(): NodeJS.WritableStream {
    return { write: (chunk: Buffer) => (this.push(chunk), true) } as unknown as NodeJS.WritableStream;
  }

  toString(): string {
    const all = Buffer.concat(this.#chunks);
    return all.subarray(Math.max(0, all.length - this.#max)).toString('utf8');
  }
}
