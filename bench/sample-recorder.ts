/**
 * What one arm of bench/devices.ts saw during its measured window: every stats message's
 * staleness (arrival minus the plugin's sample time) and, per plugin, the gaps between arrivals
 * that mean a tick was missed.
 */
export interface WindowFigures {
  /** Stats messages accepted in the window. */
  messages: number;
  /** Milliseconds from the plugin taking each sample to the host accepting it. */
  staleness: number[];
  /** Ticks the window should have held, summed over plugins. */
  expectedTicks: number;
  /** Ticks with no message: an arrival gap of k intervals (k ≥ 2, rounded) misses k - 1. */
  missedTicks: number;
  /** The longest gap between two arrivals of one plugin, in ms. */
  longestGapMs: number;
}

export class SampleRecorder {
  readonly #intervalMs: number;
  readonly #arrivals = new Map<string, number[]>();
  readonly #staleness: number[] = [];
  #open = false;
  #openedAt = 0;
  #closedAt = 0;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Starts the window (unix ms, fractional); `plugins` are the ones expected to send. */
  open(at: number, plugins: readonly string[]): void {
    for (const plugin of plugins) this.#arrivals.set(plugin, []);
    this.#openedAt = at;
    this.#open = true;
  }

  close(at: number): void {
    this.#closedAt = at;
    this.#open = false;
  }

  /** One stats message from `plugin`, sampled at `timestamp` and accepted at `receivedAt`. */
  record(plugin: string, timestamp: number, receivedAt: number): void {
    if (!this.#open) return;
    this.#arrivals.get(plugin)?.push(receivedAt);
    this.#staleness.push(receivedAt - timestamp);
  }

  figures(): WindowFigures {
    const interval = this.#intervalMs;
    let missedTicks = 0;
    let longestGapMs = 0;
    for (const times of this.#arrivals.values()) {
      // The window's edges count as arrivals' neighbours, so a plugin silent at the start or the
      // end of the window misses those ticks too. A gap of about k intervals misses k - 1.
      const edges = [this.#openedAt, ...times, this.#closedAt];
      for (let i = 1; i < edges.length; i++) {
        const gap = edges[i]! - edges[i - 1]!;
        if (i > 1 && i < edges.length - 1) longestGapMs = Math.max(longestGapMs, gap);
        missedTicks += Math.max(0, Math.round(gap / interval) - 1);
      }
    }
    const windowMs = this.#closedAt - this.#openedAt;
    return {
      messages: this.#staleness.length,
      staleness: [...this.#staleness],
      expectedTicks: Math.round(windowMs / interval) * this.#arrivals.size,
      missedTicks,
      longestGapMs,
    };
  }
}
