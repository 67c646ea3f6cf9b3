/**
 * A go-plugin server, as HashiCorp's Go client expects one: the handshake line on stdout, gRPC on
 * a unix socket in $TMPDIR, the health service, GRPCController/Shutdown, SIGINT ignored.
 * Nomad launches its external plugins this way (reference/scheduler-protocols.md section 1).
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { serviceAt } from './nomad-protos.js';

/** Nomad's cookie: go-plugin refuses to serve without it, so a person who runs the plugin learns what it is. */
export const nomadMagicCookie = {
  key: 'NOMAD_PLUGIN_MAGIC_COOKIE',
  value: 'e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255',
} as const;

/** go-plugin's core protocol version, and the app protocol version Nomad's plugins speak. */
export const coreProtocolVersion = 1;
export const appProtocolVersion = 2;

export interface GoPluginService {
  service: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

export interface GoPluginServerOptions {
  services: GoPluginService[];
  logger: Logger;
  /** Where the handshake line goes; default process.stdout. Nothing else is ever written there. */
  stdout?: { write(text: string): unknown };
  /** Runs when the client asks the plugin to exit (GRPCController/Shutdown), or close() is called, before the socket goes. */
  onShutdown?: () => Promise<void>;
  /** How long close() lets in-flight calls and streams finish before cutting them; default 1 s. */
  graceMs?: number;
}

export interface GoPluginServer {
  /** The unix socket the handshake named. */
  readonly socket: string;
  /** Resolves once the server has stopped, the socket is gone and onShutdown has run. */
  readonly closed: Promise<void>;
  /** Stops serving (as Shutdown does). Idempotent. */
  close(): Promise<void>;
}

/** Why a process cannot serve as a plugin: it was not started by go-plugin's client, or by one of another protocol version. */
export function goPluginEnvProblem(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env[nomadMagicCookie.key] !== nomadMagicCookie.value) {
    return (
      'this is a Nomad plugin: Nomad starts it and talks to it over gRPC, it is not a command to run by hand. ' +
      `It was started without Nomad's ${nomadMagicCookie.key}. Put a launcher in Nomad's plugin_dir with ` +
      '"taskhost nomad install <plugin_dir> <plugin>" and add a plugin "<plugin>" block to the Nomad agent config (docs/nomad.md)'
    );
  }
  const offered = env.PLUGIN_PROTOCOL_VERSIONS;
  // Clients older than version negotiation set nothing and speak the app's one version.
  if (offered !== undefined && offered.trim() !== '') {
    const versions = offered.split(',').map((v) => v.trim());
    if (!versions.includes(String(appProtocolVersion))) {
      return `the plugin client offers plugin protocol versions ${offered}, and this plugin speaks only version ${appProtocolVersion} (Nomad's): upgrade the client or taskhost`;
    }
  }
  return undefined;
}

/**
 * Starts serving and writes the handshake line. The caller has checked goPluginEnvProblem().
 * SIGINT is ignored from here on: a Ctrl-C in the agent's terminal reaches the plugin too, and
 * the client, not the terminal, decides when a plugin stops.
 */
export async function serveGoPlugin(options: GoPluginServerOptions): Promise<GoPluginServer> {
  const log = options.logger;
  const dir = await mkdtemp(path.join(tmpdir(), 'taskhost-plugin-'));
  const socket = path.join(dir, 'plugin.sock');
  const server = new grpc.Server();

  let closing: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  const watchers = new Set<grpc.ServerWritableStream<unknown, unknown>>();

  const close = (): Promise<void> => {
    closing ??= (async () => {
      process.off('SIGINT', ignore);
      for (const call of watchers) call.end();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, options.graceMs ?? 1000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      try {
        await options.onShutdown?.();
      } catch (err) {
        log.error({ err }, `shutting the plugin down failed: ${(err as Error).message}`);
      }
      await rm(dir, { recursive: true, force: true });
      log.debug({ socket }, 'plugin server stopped');
      resolveClosed();
    })();
    return closing;
  };

  const serving = { status: 'SERVING' };
  server.addService(serviceAt('grpc.health.v1.Health'), {
    Check(call: grpc.ServerUnaryCall<{ service: string }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      if (call.request.service === '' || call.request.service === 'plugin') callback(null, serving);
      else callback({ code: grpc.status.NOT_FOUND, details: `unknown service "${call.request.service}"; this plugin serves "plugin"` });
    },
    Watch(call: grpc.ServerWritableStream<{ service: string }, unknown>) {
      const known = call.request.service === '' || call.request.service === 'plugin';
      call.write(known ? serving : { status: 'SERVICE_UNKNOWN' });
      watchers.add(call);
      call.on('cancelled', () => watchers.delete(call));
    },
  });
  server.addService(serviceAt('plugin.GRPCController'), {
    Shutdown(_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
      log.debug('the plugin client asked the plugin to exit');
      callback(null, {});
      // After the answer is on its way: tryShutdown waits for this very call to finish.
      setImmediate(() => void close());
    },
  });
  for (const s of options.services) server.addService(s.service, s.implementation);

  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  await chmod(socket, 0o600);
  process.on('SIGINT', ignore);

  const stdout = options.stdout ?? process.stdout;
  stdout.write(`${coreProtocolVersion}|${appProtocolVersion}|unix|${socket}|grpc|\n`);
  log.debug({ socket }, 'plugin server listening');
  return { socket, closed, close };
}

function ignore(): void {
  // The client stops the plugin through GRPCController/Shutdown, or kills it.
}
