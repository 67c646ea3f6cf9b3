/** Percentiles and bootstrap confidence intervals, computed here to keep the method visible. */

/** The q-quantile (0..1) of ascending `sorted`, linearly interpolated between ranks. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const pos = (n - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function sortedCopy(samples: ArrayLike<number>): Float64Array {
  return Float64Array.from(samples).sort();
}

export interface Summary {
  n: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  min: number;
  max: number;
}

export function summarize(samples: ArrayLike<number>): Summary {
  const s = sortedCopy(samples);
  let sum = 0;
  for (let i = 0; i < s.length; i++) sum += s[i]!;
  return {
    n: s.length,
    mean: sum / s.length,
    p50: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    min: s[0] ?? Number.NaN,
    max: s[s.length - 1] ?? Number.NaN,
  };
}

/** A 95 % interval: [2.5th, 97.5th] percentile of the bootstrap distribution. */
export type Interval = [low: number, high: number];

/**
 * Bootstrap 95 % intervals for the ratios quantile_q(a) / quantile_q(b), one per q: both arms are
 * resampled independently, `rounds` times. Samples taken in time order are not fully independent
 * (noise comes in bursts), so read the interval as a lower bound on the real uncertainty.
 */
export function bootstrapQuantileRatios(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  qs: readonly number[],
  rounds: number,
  seed = 1,
): Interval[] {
  const random = mulberry32(seed);
  const ratios = qs.map(() => new Float64Array(rounds));
  const bufA = new Float64Array(a.length);
  const bufB = new Float64Array(b.length);
  for (let r = 0; r < rounds; r++) {
    resampleSorted(a, bufA, random);
    resampleSorted(b, bufB, random);
    qs.forEach((q, i) => (ratios[i]![r] = quantile(bufA, q) / quantile(bufB, q)));
  }
  return ratios.map((values) => {
    values.sort();
    return [quantile(values, 0.025), quantile(values, 0.975)];
  });
}

function resampleSorted(from: ArrayLike<number>, into: Float64Array, random: () => number): void {
  const n = from.length;
  for (let i = 0; i < n; i++) into[i] = from[Math.floor(random() * n)]!;
  into.sort();
}

/** Small seeded PRNG, so the same samples always give the same interval. */
function mulberry32(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let x = Math.imul(t ^ (t >>> 15), 1 | t);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
