/**
 * The peer's wire contract, shared by grpc-server.ts and grpc-plugin-client.ts. It copies what
 * HashiCorp go-plugin does on Linux: the plugin process listens on a unix socket it picks,
 * announces it with one handshake line on stdout, and serves one unary gRPC method per plugin
 * method. Messages are JSON (no protobuf compilation): the request is the argument array, the
 * response the method's return value.
 */
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

/** go-plugin's guard against running a plugin binary by hand: the host sets it, the plugin checks. */
export const magicCookie = { key: 'TASKHOST_BENCH_PLUGIN', value: 'b7e1d0a4-rpc-bench' } as const;

const serviceName = 'taskhost.bench.Plugin';

function encode(value: unknown): Buffer {
  // JSON has no `undefined`; a method that returns nothing answers null.
  return Buffer.from(JSON.stringify(value ?? null));
}

function decode(buffer: Buffer): unknown {
  // grpc-js's client takes a decoded null for "no message received" and fails the call, so a
  // method that returned nothing comes back as undefined.
  return JSON.parse(buffer.toString('utf8')) ?? undefined;
}

/**
 * A method per plugin method, at /taskhost.bench.Plugin/<method>: unary, or server-streaming for
 * the methods in `streams` (each message one item of the plugin's AsyncIterable), as Nomad's
 * device plugins stream Fingerprint and Stats.
 */
export function pluginServiceDefinition(methods: readonly string[], streams: readonly string[] = []): ServiceDefinition {
  const definition: Record<string, MethodDefinition<unknown[], unknown>> = {};
  for (const method of methods) {
    definition[method] = {
      path: `/${serviceName}/${method}`,
      requestStream: false,
      responseStream: streams.includes(method),
      requestSerialize: encode,
      requestDeserialize: decode as (buffer: Buffer) => unknown[],
      responseSerialize: encode,
      responseDeserialize: decode,
    };
  }
  return definition;
}

/** go-plugin's handshake: CORE-PROTOCOL-VERSION|APP-PROTOCOL-VERSION|NETWORK|ADDRESS|PROTOCOL. */
export function formatHandshake(socketPath: string): string {
  return `1|1|unix|${socketPath}|grpc`;
}

/** The gRPC target announced by a handshake line; throws on anything else. */
export function parseHandshake(line: string): { target: string; socketPath: string } {
  const [core, app, network, address, protocol] = line.trim().split('|');
  if (core !== '1' || app !== '1' || network !== 'unix' || !address || protocol !== 'grpc') {
    throw new Error(`unexpected plugin handshake: ${JSON.stringify(line)}`);
  }
  return { target: `unix://${address}`, socketPath: address };
}
