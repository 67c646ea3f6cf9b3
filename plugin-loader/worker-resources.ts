/**
 * The active resources of the thread it runs in (timers, sockets, child processes, ...), counted
 * by kind, so a plugin that leaves a setInterval running after destroyTask() is seen long before
 * the leak becomes an out-of-memory crash. process.getActiveResourcesInfo() is per thread in a
 * worker, but lists only what keeps the loop alive: an unref'd timer is invisible to it, so
 * timers can also be followed through async_hooks from creation to destruction.
 */
import { createHook, type AsyncHook } from 'node:async_hooks';

interface Timer {
  hasRef(): boolean;
}

export class WorkerResources {
  readonly #timers = new Map<number, Timer>();
  #hook: AsyncHook | undefined;

  /** Whether unref'd timers are counted (see trackTimers). */
  get timersTracked(): boolean {
    return this.#hook !== undefined;
  }

  /**
   * Follows every timer created from now on, so unref'd ones count too. async_hooks slow every
   * promise down a little: only for the conformance suite.
   */
  trackTimers(): void {
    this.#hook ??= createHook({
      init: (id, type, _trigger, resource) => {
        if (type === 'Timeout') this.#timers.set(id, resource as Timer);
      },
      destroy: (id) => {
        this.#timers.delete(id);
      },
    }).enable();
  }

  /** The thread's active resources by kind; `Timeout` includes unref'd timers when tracked. */
  count(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
    let unref = 0;
    for (const timer of this.#timers.values()) {
      // A referenced timer is already in getActiveResourcesInfo(); a destroyed one is on its way out.
      if (!timer.hasRef() && !(timer as { _destroyed?: boolean })._destroyed) unref++;
    }
    if (unref > 0) counts.Timeout = (counts.Timeout ?? 0) + unref;
    return counts;
  }
}
