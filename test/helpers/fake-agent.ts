/**
 * A stand-in for the agent's API on a real unix socket, for the client routes whose handlers
 * live elsewhere (logs, events, images): each test answers as design.md section 10 says, and
 * sees every request as it came (method, path, query, headers).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface SeenRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type FakeHandler = (req: SeenRequest, res: http.ServerResponse) => void | Promise<void>;

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Listens on a fresh socket; closed (and its connections cut) at teardown. */
export async function fakeAgent(t: Teardown, handler: FakeHandler): Promise<{ socket: string; seen: SeenRequest[] }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-fake-agent-'));
  const socket = path.join(dir, 'agent.sock');
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://agent');
      const request = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, body };
      seen.push(request);
      void Promise.resolve(handler(request, res)).catch((err: unknown) => res.destroy(err as Error));
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });
  return { socket, seen };
}

/** Sends `body` as JSON with `status`. */
export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** An error response in the agent's one shape. */
export function sendError(res: http.ServerResponse, status: number, code: string, message: string, details?: unknown): void {
  sendJson(res, status, { error: { code, message, ...(details === undefined ? {} : { details }) } });
}
