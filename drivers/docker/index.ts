/**
 * Entry module of the built-in docker driver. The default export is a factory so that each worker
 * (and each test that imports it) gets a driver with no tasks; it wires the container side
 * (DockerDriver) to the image side (DockerImageService) with the plugin config's pull, auth and
 * GC settings.
 */
import type Docker from 'dockerode';
import { parseDuration } from '../../shared/duration.js';
import type { DockerConfig } from './docker-config.js';
import { DockerDriver, type DockerDriverOptions } from './docker-driver.js';
import { DockerImageService } from './docker-image-service.js';

/** The image service for a driver config. */
export function dockerImageService(docker: Docker, config: DockerConfig, log: (message: string) => void): DockerImageService {
  const auth = {
    ...(config.auth.config ? { config: config.auth.config } : {}),
    ...(config.auth.helper ? { helper: config.auth.helper } : {}),
  };
  return new DockerImageService(docker, {
    pullActivityTimeoutMs: parseDuration(config.pullActivityTimeout),
    pullTimeoutMs: parseDuration(config.pullTimeout),
    gc: { enabled: config.gc.image, delayMs: parseDuration(config.gc.imageDelay) },
    ...(auth.config || auth.helper ? { auth } : {}),
    onLog: (level, message) => {
      if (level !== 'debug') log(message);
    },
  });
}

export default function createDockerDriver(options: Partial<DockerDriverOptions> = {}): DockerDriver {
  return new DockerDriver({ imageService: dockerImageService, ...options });
}
