/**
 * A kubelet's device manager, as far as a device plugin can tell (reference
 * scheduler-protocols.md section 3, kubelet's devicemanager): the Registration service on
 * <dir>/kubelet.sock; Register checks the version and the resource name, then, before it
 * answers, dials the endpoint joined to its directory and calls GetDevicePluginOptions; after
 * answering it reads ListAndWatch in the background, each message replacing the whole list, and
 * never re-opens a stream that ended. Allocate is one call per container, and
 * container_responses[0] is what it uses. stop() is the kubelet process going away; a new
 * FakeKubelet on the same dir after wipe() is a kubelet restart.
 */
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  Server,
  ServerCredentials,
  credentials,
  status,
  type Client,
  type ClientReadableStream,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadDevicePluginApi } from '../../../bridges/kubelet/device-plugin-api.js';
import type {
  AllocateResponse,
  ContainerAllocateResponse,
  Device,
  DevicePluginOptions,
  Empty,
  ListAndWatchResponse,
  PreferredAllocationResponse,
  RegisterRequest,
} from '../../../bridges/kubelet/device-plugin-messages.js';

type Unary<Req, Res> = (request: Req, options: { deadline: number }, callback: (err: ServiceError | null, res?: Res) => void) => void;

/** A plugin the kubelet accepted: its client, its options and what ListAndWatch told us. */
export interface ConnectedPlugin {
  request: RegisterRequest;
  options: DevicePluginOptions;
  /** Every list received, in order; the last is the kubelet's view. */
  lists: Device[][];
  /** Set once the ListAndWatch stream ended (never re-opened). */
  ended: boolean;
  client: Client;
  stream?: ClientReadableStream<ListAndWatchResponse>;
}

export class FakeKubelet {
  readonly dir: string;
  /** Every Register received, and what the kubelet said (undefined: accepted). */
  readonly registers: { request: RegisterRequest; refused?: string }[] = [];
  /** Accepted plugins by resource name; a new registration replaces the old one. */
  readonly plugins = new Map<string, ConnectedPlugin>();
  readonly #server: Server;

  private constructor(dir: string, server: Server) {
    this.dir = dir;
    this.#server = server;
  }

  static async start(dir: string): Promise<FakeKubelet> {
    const server = new Server();
    const kubelet = new FakeKubelet(dir, server);
    server.addService(loadDevicePluginApi().Registration.service, {
      Register: (call: ServerUnaryCall<RegisterRequest, Empty>, callback: sendUnaryData<Empty>) => {
        void kubelet.#register(call.request).then(
          (refused) => {
            kubelet.registers.push({ request: call.request, ...(refused ? { refused } : {}) });
            callback(refused ? { code: status.UNKNOWN, details: refused } : null, {});
          },
          (err: Error) => callback({ code: status.UNKNOWN, details: err.message }),
        );
      },
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${path.join(dir, 'kubelet.sock')}`, ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    return kubelet;
  }

  /** The plugin registered for `resource`; throws when none is. */
  plugin(resource: string): ConnectedPlugin {
    const plugin = this.plugins.get(resource);
    if (!plugin) throw new Error(`no plugin registered for ${resource}`);
    return plugin;
  }

  /** The latest device list of `resource`, as [id, health, NUMA nodes] rows. */
  devices(resource: string): [string, string, number[]][] | undefined {
    const last = this.plugins.get(resource)?.lists.at(-1);
    return last?.map((d) => [d.ID, d.health, d.topology?.nodes.map((n) => n.ID) ?? []]);
  }

  /** One container's Allocate, as kubelet makes it: one container request, container_responses[0] used. */
  async allocate(resource: string, ids: string[]): Promise<ContainerAllocateResponse> {
    const response = await this.#call<AllocateResponse>(resource, 'Allocate', { container_requests: [{ devices_ids: ids }] });
    const first = response.container_responses[0];
    if (!first) throw new Error('Allocate answered no container response');
    return first;
  }

  async preferred(resource: string, available: string[], mustInclude: string[], size: number): Promise<string[]> {
    const response = await this.#call<PreferredAllocationResponse>(resource, 'GetPreferredAllocation', {
      container_requests: [{ available_deviceIDs: available, must_include_deviceIDs: mustInclude, allocation_size: size }],
    });
    return response.container_responses[0]?.deviceIDs ?? [];
  }

  async preStart(resource: string, ids: string[]): Promise<unknown> {
    return this.#call(resource, 'PreStartContainer', { devices_ids: ids });
  }

  /** The kubelet process going away: its socket closes and every plugin connection drops. */
  async stop(): Promise<void> {
    for (const plugin of this.plugins.values()) {
      plugin.stream?.cancel();
      plugin.client.close();
    }
    this.#server.forceShutdown();
  }

  /** What a starting kubelet does to its directory before it serves: every file removed. */
  static async wipe(dir: string): Promise<void> {
    for (const name of await readdir(dir)) await rm(path.join(dir, name), { force: true, recursive: true });
  }

  /** Register as kubelet handles it; resolves with why it refused, or undefined. */
  async #register(request: RegisterRequest): Promise<string | undefined> {
    if (request.version !== 'v1beta1') return `requested device plugin version ${request.version} is not supported (v1beta1)`;
    if (!isExtendedResourceName(request.resource_name)) return `invalid name of device plugin socket: ${request.resource_name}`;
    // filepath.Join, as kubelet does: an absolute endpoint lands inside the directory and fails.
    const socket = path.join(this.dir, request.endpoint);
    const { DevicePlugin } = loadDevicePluginApi();
    const client = new DevicePlugin(`unix:${socket}`, credentials.createInsecure());
    let options: DevicePluginOptions;
    try {
      await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));
      options = await unary<Empty, DevicePluginOptions>(client, 'GetDevicePluginOptions', {});
    } catch (err) {
      client.close();
      return `failed to dial device plugin at ${socket}: ${(err as Error).message}`;
    }
    const old = this.plugins.get(request.resource_name);
    old?.stream?.cancel();
    old?.client.close();
    const plugin: ConnectedPlugin = { request, options, lists: [], ended: false, client };
    this.plugins.set(request.resource_name, plugin);
    // After the answer, in the background, as kubelet's client.Run.
    setImmediate(() => this.#listAndWatch(plugin));
    return undefined;
  }

  #listAndWatch(plugin: ConnectedPlugin): void {
    const stream = (plugin.client as unknown as { ListAndWatch(req: Empty): ClientReadableStream<ListAndWatchResponse> }).ListAndWatch({});
    plugin.stream = stream;
    stream.on('data', (message: ListAndWatchResponse) => plugin.lists.push(message.devices));
    stream.on('error', () => (plugin.ended = true));
    stream.on('end', () => (plugin.ended = true));
  }

  #call<T>(resource: string, method: string, request: unknown): Promise<T> {
    return unary<unknown, T>(this.plugin(resource).client, method, request);
  }
}

function unary<Req, Res>(client: Client, method: string, request: Req): Promise<Res> {
  const call = (client as unknown as Record<string, Unary<Req, Res>>)[method]!.bind(client);
  return new Promise((resolve, reject) =>
    call(request, { deadline: Date.now() + 30_000 }, (err, res) => (err ? reject(err) : resolve(res!))),
  );
}

/**
 * Kubernetes' IsExtendedResourceName, written from its rules rather than shared with the bridge,
 * so a bridge that checks wrongly is caught: a `/`, nothing containing kubernetes.io/, and
 * "requests." + name a qualified name (DNS subdomain prefix, 63-character name part).
 */
export function isExtendedResourceName(name: string): boolean {
  if (!name.includes('/') || name.includes('kubernetes.io/') || name.startsWith('requests.')) return false;
  const parts = `requests.${name}`.split('/');
  if (parts.length !== 2) return false;
  const [prefix = '', part = ''] = parts;
  const label = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
  return (
    prefix.length <= 253 &&
    new RegExp(`^${label}(\\.${label})*$`).test(prefix) &&
    part.length <= 63 &&
    /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/.test(part)
  );
}
