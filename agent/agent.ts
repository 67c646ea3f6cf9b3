/**
 * The node agent in one object (design.md section 10): the data dir's lock and store, the plugin
 * loader, the driver manager (its handles under `<dataDir>/handles`), the device manager and the
 * stored device reservations, the docker tasks' image records, the task supervisor, and
 * the API server on `<dataDir>/agent.sock` (and loopback TCP with the bearer token, if asked).
 * `close()` stops the agent and leaves its tasks running; the next start recovers them.
 */
import path from 'node:path';
import { pino, type Logger } from 'pino';
import type { AgentConfig } from '../plugin-loader/agent-config.js';
import { PluginLoader } from '../plugin-loader/loader.js';
import { builtinPluginDirs } from '../plugin-loader/discovery.js';
import { DeviceManager } from '../devices/device-manager.js';
import { DriverManager } from '../drivers/driver-manager.js';
import { FileHandleStore } from '../drivers/handle-store.js';
import { recordDeviceEvents } from './device-events.js';
import { eventRoutes } from './event-routes.js';
import { agentDockerClient, agentDockerConfig, hostsDockerBuiltin, ImageRecords } from './image-records.js';
import { imageRoutes } from './image-routes.js';
import { nodeRoutes } from './node-routes.js';
import { DeviceReservations } from './reservations.js';
import { createApiServer, type ApiServer, type ListeningAddresses } from './server.js';
import { loadOrCreateToken, tokenFile } from './server-token.js';
import { AgentStore } from './store.js';
import { taskLogRoutes } from './task-log-routes.js';
import { taskRoutes } from './task-routes.js';
import { handleDir, TaskSupervisor } from './task-supervisor.js';

export interface AgentOptions {
  /** A validated agent config (loadAgentConfig, parseAgentConfig); its dataDir holds everything. */
  config: AgentConfig;
  /** The unix socket; default `<dataDir>/agent.sock`. */
  socket?: string;
  /** `HOST:PORT` on loopback, served with the bearer token of `<dataDir>/agent.token`. */
  listen?: string;
  logger?: Logger;
  /** Folders of built-in plugins (default: the ones taskhost ships). */
  builtinDirs?: readonly string[];
}

/** The default socket of an agent on `dataDir`. */
export function agentSocket(dataDir: string): string {
  return path.join(dataDir, 'agent.sock');
}

export class Agent {
  readonly store: AgentStore;
  readonly loader: PluginLoader;
  readonly manager: DriverManager;
  /** The node's devices (from the device plugins), their health and stats. */
  readonly devices: DeviceManager;
  /** Which task holds which devices, kept in the store. */
  readonly reservations: DeviceReservations;
  /** The images the docker tasks run, their users and GC, kept in the store. */
  readonly images: ImageRecords;
  readonly supervisor: TaskSupervisor;
  readonly server: ApiServer;
  readonly addresses: ListeningAddresses;
  #closing: Promise<void> | undefined;
  readonly #stopDeviceEvents: () => void;

  private constructor(parts: Omit<Agent, 'close'>, stopDeviceEvents: () => void) {
    this.#stopDeviceEvents = stopDeviceEvents;
    this.store = parts.store;
    this.loader = parts.loader;
    this.manager = parts.manager;
    this.devices = parts.devices;
    this.reservations = parts.reservations;
    this.images = parts.images;
    this.supervisor = parts.supervisor;
    this.server = parts.server;
    this.addresses = parts.addresses;
  }

  /**
   * Takes the data dir's lock (DATA_DIR_LOCKED while another agent holds it), opens the store,
   * starts the plugins, recovers the tasks, and listens. A failure undoes what was started.
   */
  static async start(options: AgentOptions): Promise<Agent> {
    const { config } = options;
    const logger = options.logger ?? pino({ level: config.logLevel ?? 'warn' }, pino.destination(2));
    const undo: (() => Promise<void>)[] = [];
    try {
      const store = await AgentStore.open({ dataDir: config.dataDir });
      undo.push(() => store.close());
      // The agent collects the docker tasks' images itself (image-records.ts): the driver's own GC is off.
      const docker = agentDockerConfig(config, hostsDockerBuiltin(options.builtinDirs ?? builtinPluginDirs));
      const loader = new PluginLoader({
        config: docker.loaderConfig,
        logger,
        ...(options.builtinDirs ? { builtinDirs: options.builtinDirs } : {}),
      });
      undo.push(() => loader.close());
      const manager = new DriverManager({ loader, store: new FileHandleStore(handleDir(config.dataDir)), logger });
      undo.push(() => manager.close());
      const devices = new DeviceManager({ loader, logger });
      undo.push(() => devices.close());
      const reservations = new DeviceReservations({ store, devices, logger });
      undo.push(() => reservations.close());
      const images = new ImageRecords({ store, handles: manager, docker: agentDockerClient(docker.endpoint), gc: docker.gc, logger });
      undo.push(() => images.close());
      const supervisor = new TaskSupervisor({
        store,
        manager,
        logger,
        devices: reservations,
        taskOptions: { hostEnv: process.env, ...(config.hostEnvAllow ? { hostEnvAllow: config.hostEnvAllow } : {}) },
      });
      undo.push(() => supervisor.close());
      // Listening before the supervisor reconciles, so the tasks it settles release what they held.
      reservations.attach(supervisor);
      images.attach(supervisor);
      await supervisor.start();
      const stopDeviceEvents = recordDeviceEvents(devices, store, logger);
      undo.push(async () => stopDeviceEvents());
      await devices.start();
      await reservations.start();
      await images.start();
      const token = options.listen === undefined ? undefined : await loadOrCreateToken(config.dataDir);
      const server = createApiServer({
        routes: [
          ...taskRoutes(supervisor),
          ...taskLogRoutes(supervisor, config.dataDir, { logger }),
          ...eventRoutes(store),
          ...imageRoutes(images),
          ...nodeRoutes(manager, devices),
        ],
        ...(token === undefined ? {} : { token, tokenFile: tokenFile(config.dataDir) }),
      });
      undo.push(() => server.close());
      const addresses = await server.listen({
        socket: options.socket ?? agentSocket(config.dataDir),
        ...(options.listen === undefined ? {} : { tcp: options.listen }),
      });
      return new Agent({ store, loader, manager, devices, reservations, images, supervisor, server, addresses }, stopDeviceEvents);
    } catch (err) {
      for (const step of undo.reverse()) await step().catch(() => undefined);
      throw err;
    }
  }

  /** Stops serving and watching; the tasks keep running. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.server.close();
      await this.supervisor.close();
      await this.images.close();
      await this.reservations.close();
      // The plugins going down at close is no change of the node's devices.
      this.#stopDeviceEvents();
      await this.devices.close();
      await this.manager.close();
      await this.loader.close();
      await this.store.close();
    })();
    return this.#closing;
  }
}
