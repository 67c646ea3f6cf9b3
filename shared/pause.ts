import { setMaxListeners } from 'node:events';

/** The longest delay one Node timer holds; a longer one would fire after 1 ms. */
const maxTimerMs = 2 ** 31 - 1;

/**
 * Resolves after `ms`, or sooner when `signal` aborts or `until` calls its `wake`. `until`
 * subscribes `wake` to something and returns how to unsubscribe. Whichever way it ends, no timer
 * or listener stays behind, so a stream that pauses between items for hours leaks nothing.
 * Waits past 2^31-1 ms are re-armed in steps, never cut short.
 */
export function pause(ms: number, signal: AbortSignal, until?: (wake: () => void) => () => void): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    // eslint-disable-next-line prefer-const -- assigned after wake, which reads it, is made
    let unsubscribe: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const wake = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', wake);
      unsubscribe?.();
      resolve();
    };
    const arm = (left: number) => {
      timer = left > maxTimerMs ? setTimeout(() => arm(left - maxTimerMs), maxTimerMs) : setTimeout(wake, left);
    };
    arm(Number.isNaN(ms) ? 0 : Math.max(0, ms));
    signal.addEventListener('abort', wake, { once: true });
    unsubscribe = until?.(wake);
  });
}

/**
 * An AbortController for a long-lived owner's shutdown, whose signal every loop, stream and
 * pause of the owner listens to. Node warns past 10 listeners on one signal (a leak, usually);
 * here the count grows with plugins and tasks by design, so the warning is switched off for it.
 */
export function closingController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}
