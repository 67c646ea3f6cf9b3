/**
 * The raw Docker Engine API over its unix socket with a keep-alive agent: the floor the
 * lifecycle benchmark compares the driver against (what any client must at least do).
 */
import http from 'node:http';

export class EngineApi {
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  readonly #socketPath: string;

  constructor(socketPath = '/var/run/docker.sock') {
    this.#socketPath = socketPath;
  }

  /** One request; resolves with the parsed JSON body (or undefined for an empty one). */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        {
          socketPath: this.#socketPath,
          agent: this.#agent,
          method,
          path,
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 500) >= 400) reject(new Error(`${method} ${path}: HTTP ${res.statusCode} ${text.trim()}`));
            else resolve((text ? JSON.parse(text) : undefined) as T);
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}
