/**
 * The seam between the Docker driver's container side and its image side (pulls, auth, GC).
 * This file holds the interface only; the implementation lives beside it.
 */

/** What a pull reports as it goes, as a task event and a progress bar. */
export interface PullProgress {
  /** The image as the user wrote it, normalised (e.g. "docker.io/library/busybox:1.35"). */
  image: string;
  /** A line a person can read: "Pulling 127.0.0.1:5000/team/busybox:1.35: 3 of 5 layers, 12.1 of 40.0 MiB". */
  message: string;
  /** Bytes downloaded and expected so far (0 when unknown). */
  currentBytes: number;
  totalBytes: number;
  layersDone: number;
  layersTotal: number;
}

export type PullPolicy = 'always' | 'missing' | 'never';

export interface EnsureImageOptions {
  policy: PullPolicy;
  onProgress?: (progress: PullProgress) => void;
  signal?: AbortSignal;
}

export interface EnsuredImage {
  /** The normalised reference the container is created with (never the sha256 id). */
  reference: string;
  /** The image id (sha256:...), for reference counting and GC. */
  id: string;
  /** The image's own env ("K=V"), merged under the task's env by the driver. */
  env: string[];
  /** Whether this call pulled it. */
  pulled: boolean;
}

export interface ImageService {
  /**
   * Makes sure the image is present per the policy (":latest" or no tag counts as "always"),
   * pulling it at most once at a time however many tasks ask, and returns what the driver needs.
   */
  ensure(image: string, options: EnsureImageOptions): Promise<EnsuredImage>;
  /** A task now uses the image: it must not be garbage collected. */
  acquire(imageId: string): void;
  /** A task stopped using the image; with no users left it is removed after the GC delay. */
  release(imageId: string): void;
  /** Cancels pending GC timers. */
  close(): void;
}
