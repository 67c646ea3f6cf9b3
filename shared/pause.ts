/**
 * Resolves after `ms`, or sooner when `signal` aborts or `until` calls its `wake`. `until`
 * subscribes `wake` to something and returns how to unsubscribe. Whichever way it ends, no timer
 * or listener stays behind, so a stream that pauses between items for hours leaks nothing.
 */
export function pause(
  ms: number,
  signal: AbortSignal,
  until?: (wake: () => void) => () => void,
): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    let unsubscribe: (() => void) | undefined;
    const wake = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', wake);
      unsubscribe?.();
      resolve();
    };
    const timer = setTimeout(wake, Math.max(0, ms));
    signal.addEventListener('abort', wake, { once: true });
    unsubscribe = until?.(wake);
  });
}
