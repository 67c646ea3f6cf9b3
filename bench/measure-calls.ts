/**
 * Call round trip (serial latency) and throughput (N calls in flight) of several arms, measured
 * in interleaved blocks so drift on a noisy machine (other tenants, CPU frequency, GC) lands on
 * every arm alike instead of on whichever arm happened to run during it.
 */
export interface CallArm {
  readonly key: string;
  call(): Promise<unknown>;
}

export interface LatencyOptions {
  /** Measured calls per arm. */
  calls: number;
  /** Calls per block; arms take turns block by block. */
  block: number;
  /** Calls per arm made first and discarded (JIT, connection set-up, caches). */
  warmup: number;
}

/** Per-call round trips in microseconds, by arm key, in the order they were measured. */
export async function measureLatency(arms: readonly CallArm[], options: LatencyOptions): Promise<Map<string, Float64Array>> {
  for (const arm of arms) for (let i = 0; i < options.warmup; i++) await arm.call();
  const samples = new Map(arms.map((arm) => [arm.key, new Float64Array(options.calls)]));
  const rounds = Math.ceil(options.calls / options.block);
  for (let round = 0; round < rounds; round++) {
    const from = round * options.block;
    const to = Math.min(options.calls, from + options.block);
    for (const arm of rotate(arms, round)) {
      const into = samples.get(arm.key)!;
      for (let i = from; i < to; i++) {
        const start = performance.now();
        await arm.call();
        into[i] = (performance.now() - start) * 1000;
      }
    }
  }
  return samples;
}

export interface ThroughputOptions {
  /** Calls kept in flight. */
  inFlight: number;
  /** Measured time per arm, in ms, split into blocks of `blockMs`. */
  durationMs: number;
  blockMs: number;
}

export interface Throughput {
  calls: number;
  seconds: number;
  perSecond: number;
}

export async function measureThroughput(arms: readonly CallArm[], options: ThroughputOptions): Promise<Map<string, Throughput>> {
  for (const arm of arms) await saturate(arm, options.inFlight, options.blockMs); // warm-up, discarded
  const totals = new Map(arms.map((arm) => [arm.key, { calls: 0, ms: 0 }]));
  const rounds = Math.max(1, Math.round(options.durationMs / options.blockMs));
  for (let round = 0; round < rounds; round++) {
    for (const arm of rotate(arms, round)) {
      const { calls, ms } = await saturate(arm, options.inFlight, options.blockMs);
      const total = totals.get(arm.key)!;
      total.calls += calls;
      total.ms += ms;
    }
  }
  return new Map([...totals].map(([key, { calls, ms }]) => [key, { calls, seconds: ms / 1000, perSecond: calls / (ms / 1000) }]));
}

/** `inFlight` lanes each call back to back until the deadline; time runs until the last answer. */
async function saturate(arm: CallArm, inFlight: number, ms: number): Promise<{ calls: number; ms: number }> {
  let calls = 0;
  const start = performance.now();
  const deadline = start + ms;
  const lane = async () => {
    while (performance.now() < deadline) {
      await arm.call();
      calls++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return { calls, ms: performance.now() - start };
}

/** The arms in turn order for a round: each round starts one arm later (ABCD, BCDA, ...). */
function rotate<T>(items: readonly T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}
