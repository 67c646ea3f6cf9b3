/** Exponential backoff with equal jitter: half fixed, half random, capped. Used for restarts and re-opened streams. */
export function backoff(baseMs: number, capMs: number, step: number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(step, 30));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}
