/**
 * Fan-out of events to any number of streams, for a driver's taskEvents(): each call to
 * `subscribe` gets every event emitted after it, until its signal aborts. A subscriber that falls
 * more than `limit` events behind loses the oldest ones rather than holding memory without end.
 */
export class EventHub<T> {
  readonly #subscribers = new Set<{ queue: T[]; wake?: (() => void) | undefined }>();
  readonly #limit: number;

  constructor(limit = 1000) {
    this.#limit = limit;
  }

  emit(event: T): void {
    for (const s of this.#subscribers) {
      s.queue.push(event);
      if (s.queue.length > this.#limit) s.queue.shift();
      s.wake?.();
    }
  }

  get subscribers(): number {
    return this.#subscribers.size;
  }

  async *subscribe(signal: AbortSignal): AsyncGenerator<T> {
    const s: { queue: T[]; wake?: (() => void) | undefined } = { queue: [] };
    this.#subscribers.add(s);
    const onAbort = () => s.wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted) {
        if (s.queue.length === 0) await new Promise<void>((resolve) => (s.wake = resolve));
        s.wake = undefined;
        while (s.queue.length > 0 && !signal.aborted) yield s.queue.shift()!;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.#subscribers.delete(s);
    }
  }
}
