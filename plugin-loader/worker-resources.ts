/**
 * The active resources of the thread it runs in (timers, sockets, child processes, ...), so a
 * plugin that leaves a setInterval running after destroyTask() is seen long before the leak
 * becomes an out-of-memory crash. process.getActiveResourcesInfo() is per thread in a worker,
 * but lists only what keeps the loop alive: an unref'd timer is invisible to it, and a count
 * cannot tell a leaked interval from a request timeout about to fire. So, for the conformance
 * suite, timers can also be followed one by one through async_hooks, each with the plugin call
 * that created it (AsyncLocalStorage carries the call through promises and timer callbacks, so
 * a polling loop that re-arms itself keeps the name of the call that started it).
 */
import { AsyncLocalStorage, createHook, type AsyncHook } from 'node:async_hooks';
import type { PendingTimer } from './protocol.js';

/** The Timeout fields this reads: public hasRef(), and fields Node has kept since its first releases. */
interface Timeout {
  hasRef(): boolean;
  _destroyed?: boolean;
  /** The interval of a setInterval, null for a setTimeout. */
  _repeat?: number | null;
  /** The delay in ms. */
  _idleTimeout?: number;
}

interface Followed {
  timer: Timeout;
  origin: string;
  createdAt: number;
}

/** More pending timers than any plugin needs: the list stops there. */
const maxListed = 1_000;

export class WorkerResources {
  readonly #timers = new Map<number, Followed>();
  readonly #origin = new AsyncLocalStorage<string>();
  #hook: AsyncHook | undefined;

  /** Whether timers are followed (see trackTimers). */
  get timersTracked(): boolean {
    return this.#hook !== undefined;
  }

  /**
   * Follows every timer created from now on. async_hooks slow every promise down a little:
   * only for the conformance suite.
   */
  trackTimers(): void {
    this.#hook ??= createHook({
      init: (id, type, _trigger, resource) => {
        if (type !== 'Timeout') return;
        this.#timers.set(id, { timer: resource as Timeout, origin: this.#origin.getStore() ?? '', createdAt: performance.now() });
      },
      destroy: (id) => {
        this.#timers.delete(id);
      },
    }).enable();
  }

  /** Runs `fn` as the plugin call `origin`: the timers it creates, now or later, carry that name. */
  run<T>(origin: string, fn: () => T): T {
    return this.#hook ? this.#origin.run(origin, fn) : fn();
  }

  /** The thread's active resources by kind (only referenced timers among them). */
  count(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
    return counts;
  }

  /** The followed timers still pending, oldest first; empty unless trackTimers() was called. */
  timers(): PendingTimer[] {
    const now = performance.now();
    const list: PendingTimer[] = [];
    for (const { timer, origin, createdAt } of this.#timers.values()) {
      if (timer._destroyed) continue; // cleared or fired: its destroy hook is on its way
      const repeats = timer._repeat !== null && timer._repeat !== undefined;
      list.push({ origin, repeats, delayMs: timer._idleTimeout ?? 0, ageMs: Math.round(now - createdAt), ref: timer.hasRef() });
      if (list.length === maxListed) break;
    }
    return list;
  }
}
