import type { EventEmitter } from 'eventemitter3';
import type { Logger } from 'pino';

/**
 * Emits `event` on `emitter`, logging a listener that throws instead of letting the error into
 * the emitter's own work: a supervisor or manager must not stop supervising because someone
 * listening to it has a bug.
 */
export function guardedEmit<Events extends EventEmitter.ValidEventTypes, K extends EventEmitter.EventNames<Events>>(
  emitter: EventEmitter<Events>,
  log: Logger,
  event: K,
  ...args: EventEmitter.EventArgs<Events, K>
): void {
  try {
    emitter.emit(event, ...args);
  } catch (err) {
    log.error({ err, event }, `a ${emitter.constructor.name} "${String(event)}" listener threw`);
  }
}
