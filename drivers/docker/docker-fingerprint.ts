/**
 * The driver's health: `undetected` when there is no Docker socket at all, `unhealthy` when the
 * Engine does not answer a ping, `healthy` when it does. The ping is the cheap call made every
 * interval; version and info, for the attributes, are read once per (re)connection, so an Engine
 * upgraded while it was away is described afresh.
 */
import { existsSync } from 'node:fs';
import type Docker from 'dockerode';
import type { DriverFingerprint } from '../../shared/driver.js';
import { socketPathOf } from './docker-client.js';
import { daemonMessage } from './daemon-message.js';

/** How long the Engine has to answer a ping before it counts as not answering. */
const pingTimeoutMs = 5_000;

/** The calls used here; dockerode takes an AbortSignal on them, its types do not say so. */
interface EngineProbe {
  ping(options: { abortSignal: AbortSignal }): Promise<unknown>;
  version(options: { abortSignal: AbortSignal }): Promise<Docker.DockerVersion>;
  info(options: { abortSignal: AbortSignal }): Promise<{ Runtimes?: Record<string, unknown>; OSType?: string }>;
}

export class DockerFingerprint {
  readonly #docker: Docker;
  readonly #endpoint: string;
  #attributes: Record<string, string | boolean> | undefined;

  constructor(docker: Docker, endpoint: string) {
    this.#docker = docker;
    this.#endpoint = endpoint;
  }

  async probe(signal: AbortSignal): Promise<DriverFingerprint> {
    const socket = socketPathOf(this.#endpoint);
    if (socket !== undefined && !existsSync(socket)) {
      this.#attributes = undefined;
      return {
        health: 'undetected',
        healthDescription: `no Docker Engine: ${socket} does not exist`,
        attributes: { 'driver.docker': false },
      };
    }
    const engine = this.#docker as unknown as EngineProbe;
    const abortSignal = AbortSignal.any([signal, AbortSignal.timeout(pingTimeoutMs)]);
    try {
      await engine.ping({ abortSignal });
      this.#attributes ??= await this.#describe(engine, abortSignal);
      return { health: 'healthy', healthDescription: 'Healthy', attributes: this.#attributes };
    } catch (err) {
      this.#attributes = undefined;
      return {
        health: 'unhealthy',
        healthDescription: `the Docker Engine at ${this.#endpoint} does not answer: ${daemonMessage(err)}`,
        attributes: { 'driver.docker': false },
      };
    }
  }

  async #describe(engine: EngineProbe, abortSignal: AbortSignal): Promise<Record<string, string | boolean>> {
    const [version, info] = await Promise.all([engine.version({ abortSignal }), engine.info({ abortSignal })]);
    return {
      'driver.docker': true,
      'driver.docker.version': version.Version,
      'driver.docker.api_version': version.ApiVersion,
      'driver.docker.runtimes': Object.keys(info.Runtimes ?? {})
        .sort()
        .join(','),
      'driver.docker.os': info.OSType ?? version.Os,
    };
  }
}
