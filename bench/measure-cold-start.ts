/**
 * Plugin cold start to first answer, two arms alternating in ABBA order so that whatever the
 * previous start left behind (a dying thread or process, garbage) is paid by both arms alike.
 */

/** One cold start: resolves with the milliseconds to the first answer, after tearing down. */
export type ColdStart = () => Promise<number>;

export interface ColdStartOptions {
  /** Measured starts per arm. */
  runs: number;
  /** Starts per arm made first and discarded (disk cache, lazy module compilation). */
  warmup: number;
}

export async function measureColdStarts(
  arms: Readonly<Record<'ours' | 'peer', ColdStart>>,
  options: ColdStartOptions,
): Promise<{ ours: number[]; peer: number[] }> {
  for (let i = 0; i < options.warmup; i++) {
    await arms.ours();
    await arms.peer();
  }
  const times = { ours: [] as number[], peer: [] as number[] };
  for (let i = 0; i < options.runs; i++) {
    const order = i % 2 === 0 ? (['ours', 'peer'] as const) : (['peer', 'ours'] as const);
    for (const key of order) times[key].push(await arms[key]());
  }
  return times;
}
