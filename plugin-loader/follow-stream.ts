/**
 * Keeping a plugin's stream open for as long as its owner runs: the loop the driver and device
 * managers share for fingerprints, task events and device stats. It waits for the plugin,
 * re-opens the stream with backoff when it ends or fails, waits out a failed plugin (its breaker
 * may let it run again) and ends when the owner's signal aborts. It never rejects.
 */
import { CancelledError, PluginCrashedError, PluginError, PluginFailedError, PluginLoadError, TaskhostError } from '../shared/errors.js';
import { pause } from '../shared/pause.js';
import { backoff } from './backoff.js';
import type { PluginInstance } from './plugin-instance.js';
import { untilState } from './plugin-waits.js';

export interface FollowStreamOptions<T> {
  instance: PluginInstance;
  /** Methods the stream needs: a plugin missing one is reported once (a PluginLoadError) and not followed. */
  requires: readonly string[];
  /** Opens the stream; called again after every end, failure or restart. */
  open: (signal: AbortSignal) => AsyncIterable<T>;
  onItem: (item: T) => void | Promise<void>;
  /**
   * Hears every failure but a crash (the loader reports those) and a cancellation: the plugin
   * failed (PluginFailedError, or its state is `failed`), lacks a method (PluginLoadError), or
   * the stream itself failed.
   */
  onError?: (error: TaskhostError) => void;
  /** The owner's shutdown. */
  signal: AbortSignal;
  /** First and maximum delay before the stream is re-opened. */
  backoffMs: readonly [number, number];
}

export async function followStream<T>(options: FollowStreamOptions<T>): Promise<void> {
  const { instance, signal, onError } = options;
  let attempt = 0;
  while (!signal.aborted) {
    try {
      await instance.ready(signal);
      const missing = options.requires.filter((m) => !instance.implements(m));
      if (missing.length) {
        onError?.(new PluginLoadError(`${instance.status().type} plugin "${instance.name}" does not implement ${missing.join(', ')}`));
        return;
      }
      for await (const item of options.open(signal)) {
        attempt = 0;
        await options.onItem(item);
      }
    } catch (err) {
      if (signal.aborted || err instanceof CancelledError || instance.state === 'stopped') return;
      const error = err instanceof TaskhostError ? err : new PluginError(String(err), { cause: err });
      if (error instanceof PluginFailedError || instance.state === 'failed') {
        onError?.(error);
        await untilState(instance, 'running', signal);
        continue;
      }
      if (!(error instanceof PluginCrashedError)) onError?.(error);
    }
    await pause(backoff(options.backoffMs[0], options.backoffMs[1], attempt++), signal);
  }
}
