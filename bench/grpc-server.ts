/**
 * The peer's plugin process: serves one plugin module over gRPC on a unix socket, the way a
 * go-plugin plugin binary does. Usage (by the host, never by hand):
 *
 *   TASKHOST_BENCH_PLUGIN=<cookie> node dist/bench/grpc-server.js <file: URL of the plugin entry> [stream,...]
 *
 * The optional second argument names the methods served as server streams (a device plugin's
 * fingerprint and stats): the plugin's AsyncIterable is written message by message, pausing when
 * the client is slow, and the plugin's AbortSignal aborts when the client cancels.
 * Prints the handshake line on stdout once it listens; exits on SIGTERM/SIGINT or when its stdin
 * closes, so a host that dies does not leave it running.
 */
import { rmSync } from 'node:fs';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { formatHandshake, magicCookie, pluginServiceDefinition } from './grpc-plugin-protocol.js';
import { importPlugin, invoke, methodNames } from './import-plugin.js';

if (process.env[magicCookie.key] !== magicCookie.value) {
  process.stderr.write('This is a taskhost benchmark plugin process; bench/rpc.ts starts it.\n');
  process.exit(1);
}
const entry = process.argv[2];
if (!entry) throw new Error('usage: grpc-server.js <plugin entry URL>');

const streams = (process.argv[3] ?? '').split(',').filter(Boolean);

const plugin = await importPlugin(entry);
const methods = methodNames(plugin);
const implementation: grpc.UntypedServiceImplementation = {};
const failure = (err: unknown): Partial<grpc.StatusObject> => ({
  code: grpc.status.UNKNOWN,
  details: err instanceof Error ? err.message : String(err),
});
for (const method of methods.filter((m) => streams.includes(m))) {
  const handler: grpc.handleServerStreamingCall<unknown[], unknown> = (call) => {
    const controller = new AbortController();
    call.on('cancelled', () => controller.abort());
    const pump = async () => {
      const iterable = (await invoke(plugin, method, [...call.request, controller.signal])) as AsyncIterable<unknown>;
      for await (const item of iterable) {
        if (controller.signal.aborted) break;
        if (!call.write(item)) await Promise.race([once(call, 'drain'), once(controller.signal, 'abort')]);
      }
      if (!controller.signal.aborted) call.end();
    };
    pump().catch((err: unknown) => call.emit('error', failure(err)));
  };
  implementation[method] = handler;
}
for (const method of methods.filter((m) => !streams.includes(m))) {
  const handler: grpc.handleUnaryCall<unknown[], unknown> = (call, callback) => {
    invoke(plugin, method, call.request).then(
      (value) => callback(null, value),
      (err: unknown) => callback(failure(err)),
    );
  };
  implementation[method] = handler;
}

const socketPath = path.join(os.tmpdir(), `taskhost-bench-${process.pid}.sock`);
rmSync(socketPath, { force: true });
const server = new grpc.Server();
server.addService(pluginServiceDefinition(methods, streams), implementation);
await new Promise<void>((resolve, reject) =>
  server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
);
process.stdout.write(`${formatHandshake(socketPath)}\n`);

const stop = () => {
  server.forceShutdown();
  rmSync(socketPath, { force: true });
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop); // Ctrl-C reaches the whole process group: still remove the socket
process.stdin.on('end', stop);
process.stdin.resume();
