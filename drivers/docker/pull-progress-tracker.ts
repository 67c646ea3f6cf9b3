/**
 * Turns the JSON lines of a Docker pull (`{ status, id, progressDetail }`) into one running
 * summary: layers done of layers seen, and bytes downloaded of bytes expected.
 */
import type { PullProgress } from './image-manager.js';

/** One line of the engine's pull stream, as far as we read it. */
export interface PullEvent {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string; code?: number };
}

interface Layer {
  current: number;
  total: number;
  done: boolean;
}

// Statuses after which a layer needs nothing more; its bytes are all there.
const finished = new Set(['Pull complete', 'Already exists']);
const downloaded = new Set(['Download complete', 'Verifying Checksum', 'Extracting', 'Pull complete']);

export class PullProgressTracker {
  private readonly layers = new Map<string, Layer>();
  private digest: string | undefined;

  /** `image` is the normalised reference; `label` how messages name it (usually the familiar form). */
  constructor(
    private readonly image: string,
    private readonly label: string,
  ) {}

  /** Folds one event in. Lines without a layer id (digest, status, errors) only add the digest. */
  update(event: PullEvent): void {
    const status = event.status ?? '';
    if (status.startsWith('Digest: ')) this.digest = status.slice('Digest: '.length);
    // "Pulling from library/busybox" carries the tag (or digest) as its id, not a layer's.
    if (event.id === undefined || status === '' || status.startsWith('Pulling from ')) return;
    let layer = this.layers.get(event.id);
    if (!layer) {
      layer = { current: 0, total: 0, done: false };
      this.layers.set(event.id, layer);
    }
    const detail = event.progressDetail;
    if (status === 'Downloading' && detail) {
      if (typeof detail.total === 'number' && detail.total > 0) layer.total = detail.total;
      if (typeof detail.current === 'number') layer.current = Math.min(detail.current, layer.total || detail.current);
    }
    if (downloaded.has(status)) layer.current = layer.total;
    if (finished.has(status)) layer.done = true;
  }

  /** The manifest digest the engine reported ("sha256:…"), once it has. */
  get reportedDigest(): string | undefined {
    return this.digest;
  }

  /** The summary now; `complete` says the pull has finished (every layer is then counted done). */
  snapshot(complete = false): PullProgress {
    let currentBytes = 0;
    let totalBytes = 0;
    let layersDone = 0;
    for (const layer of this.layers.values()) {
      currentBytes += complete ? layer.total : layer.current;
      totalBytes += layer.total;
      if (complete || layer.done) layersDone += 1;
    }
    const layersTotal = this.layers.size;
    const bytes = totalBytes > 0 ? `, ${mebibytes(currentBytes)} of ${mebibytes(totalBytes)} MiB` : '';
    const layers =
      layersTotal > 0 ? `: ${layersDone} of ${layersTotal} layers${bytes}` : complete ? ': nothing to download' : ': resolving';
    const message = `${complete ? 'Pulled' : 'Pulling'} ${this.label}${layers}`;
    return { image: this.image, message, currentBytes, totalBytes, layersDone, layersTotal };
  }
}

function mebibytes(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
