import { setMaxListeners } from 'node:events';

/**
 * Resolves after `ms`, or sooner when `signal` aborts or `until` calls its `wake`. `until`
 * subscribes `wake` to something and returns how to unsubscribe. Whichever way it ends, no timer
 * or listener stays behind, so a stream that pauses between items for hours leaks nothing.
 */
export function pause(ms: number, signal: AbortSignal, until?: (wake: () => void) => () => void): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    // eslint-disable-next-line prefer-const -- assigned after wake, which reads it, is made
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
