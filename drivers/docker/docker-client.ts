/**
 * The dockerode client for an endpoint URL. No global `timeout`: docker-modem applies it to every
 * call, long polls included, and a timed-out wait() never settles. Short calls get a per-call
 * AbortSignal (`shortCall`) instead; waits, log follows and stats streams get none.
 */
import Docker from 'dockerode';
import { defaultEndpoint } from './docker-config.js';

/** Deadline for calls that should answer promptly (inspect, create, kill, remove, list). */
export const shortCallMs = 30_000;

/** An AbortSignal for a short call, also aborted by `signal` when given. */
export function shortCall(signal?: AbortSignal): AbortSignal {
  const deadline = AbortSignal.timeout(shortCallMs);
  return signal ? AbortSignal.any([deadline, signal]) : deadline;
}

/** The endpoint to use: the configured one, else DOCKER_HOST, else the standard socket. */
export function resolveEndpoint(configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return configured ?? (env.DOCKER_HOST || defaultEndpoint);
}

/** The socket path of a unix:// endpoint, or undefined for another kind. */
export function socketPathOf(endpoint: string): string | undefined {
  return endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : undefined;
}

/** A client for `unix:///path` or `tcp://host:port` (plain HTTP). */
export function createDockerClient(endpoint: string): Docker {
  const socketPath = socketPathOf(endpoint);
  if (socketPath !== undefined) return new Docker({ socketPath });
  const url = new URL(endpoint.replace(/^tcp:/, 'http:'));
  return new Docker({ protocol: 'http', host: url.hostname, port: Number(url.port || 2375) });
}
