/**
 * `taskhost nomad serve <plugin>`: one taskhost plugin served to Nomad as an external plugin,
 * BasePlugin plus its Driver or DevicePlugin service, over go-plugin (design.md section 11).
 */
import type { Logger } from 'pino';
import type { AgentConfig } from '../../plugin-loader/agent-config.js';
import { TaskhostError } from '../../shared/errors.js';
import { baseService } from './base-service.js';
import { goPluginEnvProblem, serveGoPlugin, type GoPluginServer, type GoPluginService } from './go-plugin-server.js';
import { hclogLogger } from './hclog-logger.js';
import { NomadPluginHost } from './nomad-plugin-host.js';

/** Makes the Driver or DevicePlugin service of a hosted plugin. */
export type AppServiceFactory = (host: NomadPluginHost, logger: Logger) => GoPluginService | Promise<GoPluginService>;

export interface NomadServeOptions {
  /** The taskhost plugin to serve. */
  plugin: string;
  config: AgentConfig;
  logger: Logger;
  /** Where the handshake goes; default process.stdout. */
  stdout?: { write(text: string): unknown };
  /** Services to serve besides BasePlugin and the plugin type's own (tests, and services still being written). */
  extraServices?: AppServiceFactory[];
  builtinDirs?: readonly string[];
}

export interface NomadServer extends GoPluginServer {
  readonly host: NomadPluginHost;
}

/**
 * The module and export of each plugin type's Nomad service. Loaded when a plugin of that type
 * is served; a taskhost built without one serves BasePlugin alone (Nomad then reports the
 * plugin as not dispensable) and says so in the log.
 */
const appServices = {
  driver: { module: './driver-service.js', export: 'driverService' },
  device: { module: './device-service.js', export: 'deviceService' },
} as const;

/** Hosts the plugin, serves it and writes the handshake line; the caller has checked goPluginEnvProblem(). */
export async function nomadServe(options: NomadServeOptions): Promise<NomadServer> {
  const log = options.logger;
  const host = await NomadPluginHost.open({
    name: options.plugin,
    config: options.config,
    logger: log,
    ...(options.builtinDirs ? { builtinDirs: options.builtinDirs } : {}),
  });
  try {
    const services = [baseService(host, log)];
    const app = await appServiceFactory(host.candidate.type, log);
    if (app) services.push(await app(host, log));
    for (const extra of options.extraServices ?? []) services.push(await extra(host, log));
    const server = await serveGoPlugin({
      services,
      logger: log,
      ...(options.stdout ? { stdout: options.stdout } : {}),
      onShutdown: () => host.close(),
    });
    log.info({ plugin: host.name, type: host.candidate.type, socket: server.socket }, `serving taskhost plugin "${host.name}" to Nomad`);
    return Object.assign(server, { host });
  } catch (err) {
    await host.close();
    throw err;
  }
}

async function appServiceFactory(type: 'driver' | 'device', log: Logger): Promise<AppServiceFactory | undefined> {
  const { module, export: name } = appServices[type];
  try {
    const loaded = (await import(module)) as Record<string, unknown>;
    return loaded[name] as AppServiceFactory;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND' || !String((err as Error).message).includes(module.slice(2, -3)))
      throw err;
    log.warn(`this taskhost has no Nomad ${type} service (${module}): only BasePlugin is served`);
    return undefined;
  }
}

export interface NomadServeCommandOptions {
  plugin: string;
  config: AgentConfig;
  io: { stdout: { write(text: string): unknown }; stderr: { write(text: string): unknown } };
  env?: NodeJS.ProcessEnv;
}

/**
 * The CLI command: refuses to run without Nomad's cookie, serves until the client says Shutdown
 * (or SIGTERM), then exits. Its exit code.
 */
export async function nomadServeCommand(options: NomadServeCommandOptions): Promise<number> {
  const problem = goPluginEnvProblem(options.env ?? process.env);
  if (problem) {
    options.io.stderr.write(`taskhost nomad serve: ${problem}\n`);
    return 1;
  }
  const logger = hclogLogger({ level: options.config.logLevel ?? 'info', module: `taskhost.${options.plugin}` });
  let server: NomadServer;
  try {
    server = await nomadServe({ plugin: options.plugin, config: options.config, logger, stdout: options.io.stdout });
  } catch (err) {
    // Before the handshake: go-plugin's client shows the last lines of stderr with its error.
    logger.error({ err }, err instanceof TaskhostError ? err.message : `cannot serve plugin "${options.plugin}": ${String(err)}`);
    logger.flush();
    return 1;
  }
  // After the handshake nothing may reach the client's stdout pipe: what code in this process
  // prints there becomes a log line on stderr instead.
  if (options.io.stdout === process.stdout) {
    process.stdout.write = ((chunk: string | Uint8Array) => {
      logger.warn({ stream: 'stdout' }, String(chunk).trimEnd());
      return true;
    }) as typeof process.stdout.write;
  }
  const stop = () => void server.close();
  process.once('SIGTERM', stop);
  await server.closed;
  process.off('SIGTERM', stop);
  logger.info(`taskhost plugin "${options.plugin}" stopped`);
  logger.flush();
  // Shut down: a handle someone forgot must not keep the process up (go-plugin kills after 2 s).
  setTimeout(() => process.exit(0), 500).unref();
  return 0;
}
