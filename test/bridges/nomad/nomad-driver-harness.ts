/**
 * A taskhost driver served as Nomad's Driver service on a real unix socket (grpc-js server and
 * client in this process, real plugin workers behind them), plus Nomad-side task configs: an
 * alloc dir laid out as Nomad makes it and stdout/stderr FIFOs made with mkfifo.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { encode } from '@msgpack/msgpack';
import { pino } from 'pino';
import type { Test } from 'tap';
import { createDriverService } from '../../../bridges/nomad/driver-service.js';
import { nomadProto } from '../../../bridges/nomad/nomad-protos.js';
import { DriverManager } from '../../../drivers/driver-manager.js';
import { parseAgentConfig } from '../../../plugin-loader/agent-config.js';
import { PluginLoader } from '../../../plugin-loader/loader.js';
import { fastSupervision } from '../../helpers/fixture-plugins.js';

export const examplesDir = fileURLToPath(new URL('../../../examples/plugins', import.meta.url));
const quiet = pino({ level: 'silent' });

/** A promise-returning view of a grpc-js client: unary calls and server streams by method name. */
export interface GrpcPeer {
  call<T = Record<string, unknown>>(method: string, request?: Record<string, unknown>): Promise<T>;
  stream(method: string, request?: Record<string, unknown>): grpc.ClientReadableStream<Record<string, unknown>>;
  client: grpc.Client;
}

export function grpcPeer(client: grpc.Client): GrpcPeer {
  const methods = client as unknown as Record<string, (...args: unknown[]) => unknown>;
  return {
    client,
    call: (method, request = {}) =>
      new Promise((resolve, reject) => {
        methods[method]!.call(client, request, (err: Error | null, reply: unknown) => (err ? reject(err) : resolve(reply as never)));
      }),
    stream: (method, request = {}) => methods[method]!.call(client, request) as grpc.ClientReadableStream<Record<string, unknown>>,
  };
}

/** The next `count` messages of a stream (then the stream is left open). */
export function take(stream: grpc.ClientReadableStream<Record<string, unknown>>, count: number): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const got: Record<string, unknown>[] = [];
    const onData = (m: Record<string, unknown>) => {
      got.push(m);
      if (got.length === count) {
        stream.off('data', onData);
        stream.off('error', reject);
        resolve(got);
      }
    };
    stream.on('data', onData);
    stream.on('error', reject);
  });
}

export interface ServedDriver {
  peer: GrpcPeer;
  manager: DriverManager;
  /** Stops this "plugin process": the service, the manager, the loader (tasks keep running). */
  stop(): Promise<void>;
}

/** Serves `driver` from a fresh loader, as `taskhost nomad serve <driver>` would. */
export async function serveDriver(
  t: Test,
  driver: string,
  options: { plugins?: Record<string, unknown>; builtin?: boolean; dataDir?: string } = {},
): Promise<ServedDriver> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'taskhost-nomad-drv-'));
  const config = parseAgentConfig({
    pluginDir: examplesDir,
    dataDir,
    supervision: fastSupervision,
    plugins: { broken: { enabled: false }, ...options.plugins },
  });
  const loader = new PluginLoader({
    config,
    logger: quiet,
    ...(options.builtin === false ? { builtinDirs: [] } : {}),
    only: { names: [driver] },
  });
  const manager = new DriverManager({ loader, logger: quiet, streamBackoffMs: [20, 200] });
  await manager.start();
  const served = createDriverService({ manager, driver, logger: quiet, pump: { pollMs: 20, settleMs: 300 } });
  const server = new grpc.Server();
  server.addService(served.service, served.implementation);
  const socket = path.join(mkdtempSync(path.join(tmpdir(), 'taskhost-nomad-sock-')), 'plugin.sock');
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  const Driver = (
    nomadProto() as unknown as { hashicorp: { nomad: { plugins: { drivers: { proto: { Driver: grpc.ServiceClientConstructor } } } } } }
  ).hashicorp.nomad.plugins.drivers.proto.Driver;
  const client = new Driver(`unix://${socket}`, grpc.credentials.createInsecure());
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    client.close();
    await served.close();
    server.forceShutdown();
    await manager.close();
    await loader.close();
  };
  t.teardown(stop);
  return { peer: grpcPeer(client), manager, stop };
}

export interface NomadTask {
  /** The TaskConfig message for StartTask. */
  task: Record<string, unknown> & { id: string; stdout_path: string; stderr_path: string; alloc_dir: string };
  /** Everything read from the stdout / stderr FIFO until its writer closed it. */
  stdout: Promise<string>;
  stderr: Promise<string>;
}

/**
 * Reads a FIFO until EOF (its writer closed it), in a `cat` of its own as Nomad's logmon is a
 * process of its own: an open for reading blocks until a writer comes, and in this process it
 * would hold one of libuv's few threads meanwhile.
 */
export function readFifo(t: Test, fifo: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const cat = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => void cat.kill());
    cat.stdout.on('data', (c: Buffer) => chunks.push(c));
    cat.on('error', reject);
    cat.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/**
 * A Nomad TaskConfig: id `<alloc uuid>/<name>/<8 hex>`, an alloc dir with `alloc/logs`,
 * `<name>/local` and `<name>/secrets`, FIFOs for stdout and stderr (being read already), and
 * the driver config msgpack-encoded with every attribute the user left out as nil.
 */
export function nomadTask(t: Test, name: string, driverConfig: Record<string, unknown>, extra: Record<string, unknown> = {}): NomadTask {
  const allocDir = mkdtempSync(path.join(tmpdir(), 'taskhost-nomad-alloc-'));
  t.teardown(() => rmSync(allocDir, { recursive: true, force: true }));
  const logs = path.join(allocDir, 'alloc', 'logs');
  for (const dir of [logs, path.join(allocDir, name, 'local'), path.join(allocDir, name, 'secrets')]) mkdirSync(dir, { recursive: true });
  const stdoutPath = path.join(logs, `.${name}.stdout.fifo`);
  const stderrPath = path.join(logs, `.${name}.stderr.fifo`);
  execFileSync('mkfifo', [stdoutPath, stderrPath]);
  const allocId = randomUUID();
  return {
    task: {
      id: `${allocId}/${name}/${randomBytes(4).toString('hex')}`,
      name,
      msgpack_driver_config: Buffer.from(encode(driverConfig)),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NOMAD_TASK_NAME: name },
      device_env: {},
      resources: { allocated_resources: { cpu: { cpu_shares: '100' }, memory: { memory_mb: '64' } } },
      mounts: [],
      devices: [],
      user: '',
      alloc_dir: allocDir,
      stdout_path: stdoutPath,
      stderr_path: stderrPath,
      task_group_name: 'group',
      job_name: 'job',
      alloc_id: allocId,
      ...extra,
    },
    stdout: readFifo(t, stdoutPath),
    stderr: readFifo(t, stderrPath),
  };
}

/** A Duration message. */
export const duration = (ms: number) => ({ seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });

/** Cancels a stream as a client that is done with it does (its CANCELLED status is expected). */
export function cancel(stream: grpc.ClientReadableStream<unknown>): void {
  stream.on('error', () => undefined);
  stream.cancel();
}
