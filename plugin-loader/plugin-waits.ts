/**
 * Waits the plugin managers' stream loops are made of. Neither rejects: a loop checks its own
 * signal after waking, so a shutdown is one `abort()` and never an unhandled rejection.
 */
import type { PluginInstance, PluginState } from './plugin-instance.js';

export { pause } from '../shared/pause.js';

/** Resolves when the plugin next enters `state`, or when `signal` aborts. */
export function untilState(instance: PluginInstance, state: PluginState, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      instance.off('state', onState);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const onState = (s: PluginState) => s === state && done();
    instance.on('state', onState);
    signal.addEventListener('abort', done, { once: true });
  });
}
