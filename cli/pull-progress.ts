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

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

export class PullProgressBar {
  readonly #stream: NodeJS.WriteStream;
  #bar: cliProgress.SingleBar | undefined;

  constructor(stream: NodeJS.WriteStream) {
    this.#stream = stream;
  }

  /** Draws or advances the bar for a pull event. */
  update(event: TaskEvent): void {
    const a = event.annotations ?? {};
    const total = Number(a.totalBytes) || 0;
    const current = Number(a.currentBytes) || 0;
    const payload = { image: a.image ?? '', layers: `${a.layersDone ?? 0}/${a.layersTotal ?? 0}`, mib: `${mib(current)}/${mib(total)} MiB` };
    if (!this.#bar) {
      this.#bar = new cliProgress.SingleBar(
        { stream: this.#stream, format: 'pulling {image} [{bar}] {percentage}% | layers {layers} | {mib}', hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      this.#bar.start(Math.max(total, 1), current, payload);
      return;
    }
    this.#bar.setTotal(Math.max(total, 1));
    this.#bar.update(current, payload);
  }

  /** Finishes the bar (if one was drawn) so later lines start on a fresh line. */
  stop(): void {
    this.#bar?.stop();
    this.#bar = undefined;
  }
}
