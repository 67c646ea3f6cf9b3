/**
 * Reference counts images by id and removes an image some time after its last user let go
 * (Nomad's image coordinator, `gc.image` / `image_delay`). Counting by id, not by tag, means a
 * tag that moves cannot make us remove an image a task still runs.
 */
import type Dockerode from 'dockerode';
import { daemonMessage } from './daemon-message.js';
import type { ImageServiceLog } from './docker-image-service.js';

export interface ImageGarbageCollectorOptions {
  enabled: boolean;
  delayMs: number;
  /** Deadline for one remove request to the engine. */
  requestTimeoutMs: number;
  log: ImageServiceLog;
}

export class ImageGarbageCollector {
  private readonly users = new Map<string, number>();
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly removing = new Map<string, AbortController>();
  private closed = false;

  constructor(
    private readonly docker: Dockerode,
    private readonly options: ImageGarbageCollectorOptions,
  ) {}

  /** One more user of the image; a removal waiting for its delay is called off. */
  acquire(imageId: string): void {
    const timer = this.pending.get(imageId);
    if (timer) {
      clearTimeout(timer);
      this.pending.delete(imageId);
      this.options.log('debug', `image ${imageId} is wanted again: its removal is called off`);
    }
    // A remove request already sent may still be stopped before the engine acts on it.
    this.removing.get(imageId)?.abort();
    this.users.set(imageId, (this.users.get(imageId) ?? 0) + 1);
  }

  /** One user fewer; the last one out schedules the removal (when GC is enabled). */
  release(imageId: string): void {
    const count = this.users.get(imageId);
    if (count === undefined) {
      // Tasks recovered after a restart were never acquired here (Nomad has the same gap): harmless.
      this.options.log('debug', `image ${imageId} was released but not acquired: ignored`);
      return;
    }
    if (count > 1) {
      this.users.set(imageId, count - 1);
      return;
    }
    this.users.delete(imageId);
    if (!this.options.enabled || this.closed) return;
    const timer = setTimeout(() => {
      this.pending.delete(imageId);
      void this.remove(imageId);
    }, this.options.delayMs);
    // A pending removal alone must not keep a process alive; close() clears it anyway.
    timer.unref();
    this.pending.set(imageId, timer);
  }

  /** How many users an image has (for tests and diagnostics). */
  usersOf(imageId: string): number {
    return this.users.get(imageId) ?? 0;
  }

  /** Calls off every pending removal and aborts any in flight. Idempotent. */
  close(): void {
    this.closed = true;
    for (const timer of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
    for (const controller of this.removing.values()) controller.abort();
  }

  /** Resolves when the removal attempt is over, whatever its outcome; it never rejects. */
  private async remove(imageId: string): Promise<void> {
    const controller = new AbortController();
    this.removing.set(imageId, controller);
    const timer = setTimeout(() => controller.abort(), this.options.requestTimeoutMs);
    try {
      // No force: with force the engine would untag every name the image has and delete it
      // under a stopped container; without, it answers 409 and the image stays.
      await this.docker.getImage(imageId).remove({ abortSignal: controller.signal });
      this.options.log('info', `removed image ${imageId}: unused for ${this.options.delayMs} ms`);
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 404) this.options.log('debug', `image ${imageId} was already gone`);
      else if (status === 409) this.options.log('info', `kept image ${imageId}: ${daemonMessage(err)}`);
      else if (controller.signal.aborted && (this.closed || this.users.has(imageId))) {
        this.options.log('debug', `removal of image ${imageId} called off while in flight`);
      } else this.options.log('warn', `could not remove image ${imageId}: ${daemonMessage(err)}`);
    } finally {
      clearTimeout(timer);
      this.removing.delete(imageId);
    }
  }
}
