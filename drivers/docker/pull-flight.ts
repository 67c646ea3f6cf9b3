/**
 * One pull of one image, shared by every caller that wants it meanwhile (single flight).
 * Each caller gets the progress and the result; a caller that gives up only leaves, and the
 * pull itself is aborted when no caller is left. Two deadlines guard it: no progress event for
 * `activityTimeoutMs` (a stalled registry), and `totalTimeoutMs` overall.
 */
import { formatDuration } from '../../shared/duration.js';
import { CancelledError, TimeoutError } from '../../shared/errors.js';
import type { ImageRef } from '../../shared/image-ref.js';
import type { ImageServiceLog } from './docker-image-service.js';
import type { PullProgress } from './image-manager.js';
import { PullProgressTracker, type PullEvent } from './pull-progress-tracker.js';

/** What a finished pull knows about the image. */
export interface PulledImage {
  id: string;
  env: string[];
}

export interface PullFlightOptions {
  image: ImageRef;
  /** Abort when no progress event arrives for this long; 0 for never. */
  activityTimeoutMs: number;
  /** Abort when the whole pull takes longer; 0 for never. */
  totalTimeoutMs: number;
  /** At most one progress report per waiter per interval, plus the final one. */
  progressIntervalMs: number;
  log: ImageServiceLog;
  /** Does the pull: resolves once the engine has the image, reporting each event of its stream. */
  run(signal: AbortSignal, onEvent: (event: PullEvent) => void): Promise<PulledImage>;
  /** Called once, when the flight is over (settled or aborted): later callers must start afresh. */
  onSettled(): void;
}

export interface PullWaiter {
  onProgress?: ((progress: PullProgress) => void) | undefined;
  signal?: AbortSignal | undefined;
}

interface Joined {
  waiter: PullWaiter;
  resolve(image: PulledImage): void;
  reject(err: unknown): void;
  leave(): void;
}

export class PullFlight {
  private readonly controller = new AbortController();
  private readonly joined = new Set<Joined>();
  private readonly tracker: PullProgressTracker;
  private readonly activityTimer: NodeJS.Timeout | undefined;
  private readonly totalTimer: NodeJS.Timeout | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private lastReportAt = 0;
  private latest: PullProgress | undefined;
  private settled = false;

  constructor(private readonly options: PullFlightOptions) {
    const { image, activityTimeoutMs, totalTimeoutMs } = options;
    this.tracker = new PullProgressTracker(image.reference, image.familiar);
    if (activityTimeoutMs > 0) {
      this.activityTimer = setTimeout(() => {
        this.abort(
          new TimeoutError(
            `pulling ${image.familiar} made no progress for ${formatDuration(activityTimeoutMs)}: aborted (a stalled registry or network; raise the pull activity timeout if it is only slow)`,
            { details: { image: image.reference, reason: 'pull-inactive', timeoutMs: activityTimeoutMs } },
          ),
        );
      }, activityTimeoutMs);
    }
    if (totalTimeoutMs > 0) {
      this.totalTimer = setTimeout(() => {
        this.abort(
          new TimeoutError(
            `pulling ${image.familiar} took longer than ${formatDuration(totalTimeoutMs)}: aborted (raise the pull timeout for big images)`,
            {
              details: { image: image.reference, reason: 'pull-timeout', timeoutMs: totalTimeoutMs },
            },
          ),
        );
      }, totalTimeoutMs);
    }
    options
      .run(this.controller.signal, (event) => this.onEvent(event))
      .then(
        (image) => this.settle(image, undefined),
        (err: unknown) => this.settle(undefined, err),
      );
  }

  /** How many callers are waiting. */
  get waiting(): number {
    return this.joined.size;
  }

  /** Waits for the pull. The caller's signal makes only this caller leave (CancelledError). */
  join(waiter: PullWaiter): Promise<PulledImage> {
    const { signal } = waiter;
    if (signal?.aborted) {
      this.abortIfAbandoned();
      return Promise.reject(this.cancelled(signal));
    }
    return new Promise<PulledImage>((resolve, reject) => {
      const onAbort = (): void => {
        joined.leave();
        reject(this.cancelled(signal!));
        this.abortIfAbandoned();
      };
      const joined: Joined = {
        waiter,
        resolve,
        reject,
        leave: () => {
          signal?.removeEventListener('abort', onAbort);
          this.joined.delete(joined);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.joined.add(joined);
      // A late joiner sees where the pull is at once, not at the next report.
      if (this.latest) this.report(joined, this.latest);
    });
  }

  /** Ends the flight for everyone with `reason`, and stops the pull. */
  abort(reason: Error): void {
    if (this.settled) return;
    this.controller.abort(reason);
    this.settle(undefined, reason);
  }

  private abortIfAbandoned(): void {
    if (this.joined.size === 0) {
      this.abort(new CancelledError(`pull of ${this.options.image.familiar} cancelled: every caller stopped waiting`));
    }
  }

  private onEvent(event: PullEvent): void {
    if (this.settled) return;
    this.activityTimer?.refresh();
    this.tracker.update(event);
    const wait = this.lastReportAt + this.options.progressIntervalMs - Date.now();
    if (wait <= 0) this.reportAll(this.tracker.snapshot());
    else this.progressTimer ??= setTimeout(() => this.reportAll(this.tracker.snapshot()), wait);
  }

  private reportAll(progress: PullProgress): void {
    clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    this.lastReportAt = Date.now();
    this.latest = progress;
    for (const joined of this.joined) this.report(joined, progress);
  }

  private report(joined: Joined, progress: PullProgress): void {
    try {
      joined.waiter.onProgress?.(progress);
    } catch (err) {
      // A caller's broken progress handler must not break the pull for the others.
      this.options.log(
        'warn',
        `a pull progress handler for ${this.options.image.familiar} threw: ${(err as Error)?.message ?? String(err)}`,
      );
    }
  }

  private settle(image: PulledImage | undefined, err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.activityTimer);
    clearTimeout(this.totalTimer);
    clearTimeout(this.progressTimer);
    this.options.onSettled();
    if (image) this.reportAll(this.tracker.snapshot(true));
    for (const joined of [...this.joined]) {
      joined.leave();
      if (image) joined.resolve(image);
      else joined.reject(err);
    }
  }

  private cancelled(signal: AbortSignal): CancelledError {
    return new CancelledError(`stopped waiting for image ${this.options.image.familiar}`, {
      cause: signal.reason,
      details: { image: this.options.image.reference },
    });
  }
}
