/**
 * Pull progress for `taskhost run`: a progress bar when stderr is a terminal, otherwise nothing
 * extra (the driver's throttled progress events are printed as lines like any other event).
 * A pull event is a task event whose annotations carry `layersTotal` and `totalBytes`.
 */
import cliProgress from 'cli-progress';
import type { TaskEvent } from '../shared/driver.js';

export function isPullEvent(event: Pick<TaskEvent, 'annotations'>): boolean {
  return event.annotations?.layersTotal !== undefined && event.annotations?.totalBytes !== undefined;
}

export class PullProgressBar {
  readonly #stream: NodeJS.WriteStream;
  #bar: cliProgress.SingleBar | undefined;

  constructor(stream: NodeJS.WriteStream) {
    this.#stream = stream;
  }

  /** Draws or advances the bar for a pull event. */
  update(event: TaskEvent): void {
    const a = event.annotations ?? {};
    // Bytes when the registry says how many, else layers; a finished pull is full either way.
    const bytes = (Number(a.totalBytes) || 0) > 0;
    const total = Math.max(1, bytes ? Number(a.totalBytes) : Number(a.layersTotal) || 0);
    const done = event.message.startsWith('Pulled');
    const current = done ? total : bytes ? Number(a.currentBytes) || 0 : Number(a.layersDone) || 0;
    const payload = { status: event.message };
    if (!this.#bar) {
      this.#bar = new cliProgress.SingleBar(
        { stream: this.#stream, format: '[{bar}] {percentage}% {status}', hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      this.#bar.start(Math.max(total, 1), current, payload);
      return;
    }
    this.#bar.setTotal(total);
    this.#bar.update(current, payload);
  }

  /** Finishes the bar (if one was drawn) so later lines start on a fresh line. */
  stop(): void {
    this.#bar?.stop();
    this.#bar = undefined;
  }
}
