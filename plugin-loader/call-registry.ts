/**
 * The worker's record of the calls and streams in a plugin's hands, from the moment they arrive
 * until the plugin settles them. The host stops waiting for a cancelled call at once, so only
 * the worker can tell a plugin that honours its AbortSignal from one that ignores it.
 */
import { CancelledError } from '../shared/errors.js';
import type { InFlight } from './protocol.js';

interface Running {
  kind: 'call' | 'stream';
  method: string;
  controller: AbortController;
  /** performance.now() when the host cancelled it. */
  cancelledAt?: number;
}

export class CallRegistry {
  readonly #running = new Map<number, Running>();
  /**
   * Cancels that arrived before their call: a cancel comes over the session port, the call
   * over piscina's, and the two are not ordered. Call and stream ids grow with every request
   * the host sends, so a cancel for an id above the highest seen is for one still on its way;
   * below it, for one that has settled.
   */
  readonly #early = new Set<number>();
  #highestId = 0;

  /** The error for a call the host cancelled before it arrived (the plugin never sees it), or undefined. */
  cancelledBeforeStart(id: number, method: string): CancelledError | undefined {
    if (id > this.#highestId) this.#highestId = id;
    if (this.#early.size === 0 || !this.#early.delete(id)) return undefined;
    return new CancelledError(`${method}() was cancelled before it started`);
  }

  /** Registers a call or stream; its controller's signal is the one the plugin gets. */
  begin(id: number, kind: Running['kind'], method: string): AbortController {
    const controller = new AbortController();
    this.#running.set(id, { kind, method, controller });
    if (id > this.#highestId) this.#highestId = id;
    return controller;
  }

  /** The plugin settled it. */
  delete(id: number): void {
    this.#running.delete(id);
  }

  /** The host cancelled it: abort the plugin's signal, and remember when. */
  cancel(id: number): void {
    const running = this.#running.get(id);
    if (!running) {
      if (id > this.#highestId) this.#early.add(id);
      return;
    }
    running.cancelledAt ??= performance.now();
    running.controller.abort(new Error('cancelled by the host'));
  }

  /** What the plugin has not settled, oldest first, cancelled ones with how long ago. */
  inFlight(): InFlight[] {
    const now = performance.now();
    const list: InFlight[] = [];
    for (const [id, { kind, method, cancelledAt }] of this.#running) {
      list.push({ id, kind, method, ...(cancelledAt === undefined ? {} : { cancelledMs: Math.round(now - cancelledAt) }) });
    }
    return list;
  }
}
