/** AB BA order: run `a` then `b` on even rounds and `b` then `a` on odd ones, so neither arm always goes first. */
export async function alternate(round: number, a: () => Promise<void>, b: () => Promise<void>): Promise<void> {
  const [first, second] = round % 2 === 0 ? [a, b] : [b, a];
  await first();
  await second();
}
