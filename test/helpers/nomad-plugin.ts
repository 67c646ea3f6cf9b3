/**
 * `taskhost nomad serve` as Nomad runs it: a process started with Nomad's cookie, reached over
 * the unix socket its handshake line names. And the Go client (scripts/go-plugin-client.sh):
 * without it the tests that need it skip, unless TASKHOST_REQUIRE_NOMAD_CLIENT=1 (CI), where a
 * missing client is a failure.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { nomadMagicCookie } from '../../bridges/nomad/go-plugin-server.js';
import { protoAt } from '../../bridges/nomad/nomad-protos.js';
import { fastSupervision } from './fixture-plugins.js';
import { tsxChildEnv, tsxLoader } from './tsx-child.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const cliFixture = path.join(repoRoot, 'test/bridges/nomad/fixtures/taskhost-cli.ts');

/** The environment Nomad gives its plugins. */
export const nomadEnv = { [nomadMagicCookie.key]: nomadMagicCookie.value, PLUGIN_PROTOCOL_VERSIONS: '2' };

/** argv of the taskhost command run from the sources. */
export function taskhostArgv(args: string[]): string[] {
  return [process.execPath, '--import', tsxLoader, cliFixture, ...args];
}

/** An agent config file for the bridge tests: the example plugins (countdown) in the plugin dir. */
export function bridgeAgentConfig(extra: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-nomad-'));
  const file = path.join(dir, 'agent.json');
  writeFileSync(
    file,
    JSON.stringify({
      pluginDir: path.join(repoRoot, 'examples/plugins'),
      dataDir: path.join(dir, 'data'),
      supervision: fastSupervision,
      ...extra,
    }),
  );
  return file;
}

export interface ServedPlugin {
  child: ChildProcess;
  handshake: string;
  socket: string;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** A client of the service at a dotted name (`hashicorp.nomad.plugins.base.proto.BasePlugin`). */
  client(service: string): grpc.Client;
  /** Calls a unary method; resolves with the answer or the status error. */
  call<T = Record<string, unknown>>(service: string, method: string, request?: unknown): Promise<T>;
}

type Teardown = { teardown(fn: () => unknown): void };

/** Starts `taskhost nomad serve <plugin>` (killed at the end of the test) and waits for its handshake. */
export async function serveNomadPlugin(
  t: Teardown,
  plugin: string,
  options: { configFile?: string; env?: Record<string, string> } = {},
): Promise<ServedPlugin> {
  const args = [...(options.configFile ? ['--config', options.configFile] : []), 'nomad', 'serve', plugin];
  const [node, ...rest] = taskhostArgv(args);
  const child = spawn(node!, rest, { env: tsxChildEnv({ ...nomadEnv, ...options.env }), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const clients: grpc.Client[] = [];
  t.teardown(() => {
    for (const c of clients) c.close();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const handshake = await new Promise<string>((resolve, reject) => {
    const check = () => {
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n') + 1));
    };
    child.stdout!.on('data', check);
    void exited.then(({ code }) => reject(new Error(`taskhost nomad serve exited (${code}) before its handshake; stderr:\n${err}`)));
  });
  const socket = handshake.split('|')[3]!;
  const client = (service: string) => {
    const Ctor = protoAt<grpc.ServiceClientConstructor>(service);
    const c = new Ctor(`unix:${socket}`, grpc.credentials.createInsecure());
    clients.push(c);
    return c;
  };
  const call = <T>(service: string, method: string, request: unknown = {}) =>
    new Promise<T>((resolve, reject) => {
      const c = client(service) as unknown as Record<string, (r: unknown, cb: (e: grpc.ServiceError | null, r: T) => void) => void>;
      c[method]!.call(c, request, (e, r) => (e ? reject(e) : resolve(r)));
    });
  return { child, handshake, socket, stdout: () => out, stderr: () => err, exited, client, call };
}

export const goClientBinary = path.join(repoRoot, '.cache/go-plugin-client/nomad-go-client');

/** Whether the Go client is built; otherwise skips the test, or fails it under TASKHOST_REQUIRE_NOMAD_CLIENT=1. */
export function requireNomadGoClient(t: { plan(n: number, reason?: string): void; fail(message: string): unknown }): boolean {
  if (existsSync(goClientBinary)) return true;
  const hint = 'run scripts/go-plugin-client.sh (as root, or with sudo for apt-get) to build it';
  if (process.env.TASKHOST_REQUIRE_NOMAD_CLIENT === '1')
    t.fail(`TASKHOST_REQUIRE_NOMAD_CLIENT=1 but ${goClientBinary} is missing; ${hint}`);
  else t.plan(0, `no Go plugin client (${goClientBinary}); ${hint}, or set TASKHOST_REQUIRE_NOMAD_CLIENT=1 to make this a failure`);
  return false;
}

export interface GoClientReport<R = Record<string, unknown>> {
  subcommand: string;
  result: R;
  log: { level: string; module: string; message: string }[];
  error?: string;
  exitCode: number;
}

/** Runs a subcommand of the Go client against a plugin command; its JSON report. */
export function runNomadGoClient<R = Record<string, unknown>>(
  subcommand: string,
  flags: string[],
  command: string[],
): Promise<GoClientReport<R>> {
  return new Promise((resolve, reject) => {
    execFile(
      goClientBinary,
      [subcommand, ...flags, '--', ...command],
      { env: tsxChildEnv({ TMPDIR: tmpdir() }), maxBuffer: 64 * 1024 * 1024, timeout: 300_000 },
      (err, stdout, stderr) => {
        try {
          const report = JSON.parse(stdout) as GoClientReport<R>;
          resolve({ ...report, exitCode: err ? Number((err as { code?: number }).code ?? 1) : 0 });
        } catch {
          reject(new Error(`the Go client printed no report (${err?.message ?? 'no error'}); stderr:\n${stderr}`));
        }
      },
    );
  });
}
