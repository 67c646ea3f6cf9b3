/**
 * The DevicePlugin service's handlers over one ResourceDevices: what the kubelet calls on the
 * plugin's socket. A failure is a gRPC status whose message names what to fix; the kubelet shows
 * it in the pod's events.
 */
import {
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { TaskhostError } from '../../shared/errors.js';
import type {
  AllocateRequest,
  AllocateResponse,
  DevicePluginOptions,
  Empty,
  ListAndWatchResponse,
  PreferredAllocationRequest,
  PreferredAllocationResponse,
  PreStartContainerRequest,
  PreStartContainerResponse,
} from './device-plugin-messages.js';
import type { ResourceDevices } from './resource-devices.js';

/** What the bridge tells the kubelet, at Register and in GetDevicePluginOptions alike. */
export const devicePluginOptions: DevicePluginOptions = { pre_start_required: false, get_preferred_allocation_available: true };

/** gRPC codes for taskhost's error codes; anything else is INTERNAL. */
const codes: Record<string, status> = {
  UNKNOWN_DEVICE: status.NOT_FOUND,
  DEVICE_UNHEALTHY: status.FAILED_PRECONDITION,
  NO_FREE_DEVICE: status.RESOURCE_EXHAUSTED,
  CANCELLED: status.CANCELLED,
  TIMEOUT: status.DEADLINE_EXCEEDED,
  PLUGIN_CRASHED: status.UNAVAILABLE,
  PLUGIN_FAILED: status.UNAVAILABLE,
};

export function devicePluginService(resource: ResourceDevices, log: Logger): UntypedServiceImplementation {
  const fail = (callback: sendUnaryData<never>, method: string, err: unknown) => {
    const code = err instanceof TaskhostError ? (codes[err.code] ?? status.INTERNAL) : status.INTERNAL;
    const message = err instanceof Error ? err.message : String(err);
    log.warn({ method, code: err instanceof TaskhostError ? err.code : undefined }, `${method} failed: ${message}`);
    callback({ code, details: message });
  };

  return {
    GetDevicePluginOptions(_call: ServerUnaryCall<Empty, DevicePluginOptions>, callback: sendUnaryData<DevicePluginOptions>) {
      callback(null, devicePluginOptions);
    },

    ListAndWatch(call: ServerWritableStream<Empty, ListAndWatchResponse>) {
      let last = '';
      let open = true;
      let queue = Promise.resolve();
      // Lists are built one after the other, so a slow one never overtakes a newer one.
      const send = () => {
        queue = queue
          .then(async () => {
            if (!open) return;
            const devices = await resource.list();
            const key = JSON.stringify(devices);
            if (!open || key === last) return;
            last = key;
            const summary = devices.map((d) => `${d.ID} ${d.health}`).join(', ') || 'none';
            log.info({ resource: resource.resource }, `ListAndWatch: ${devices.length} device(s): ${summary}`);
            call.write({ devices });
          })
          .catch((err: unknown) => log.error({ err }, `ListAndWatch could not send the device list: ${(err as Error).message}`));
      };
      const stop = resource.onChange(send);
      const end = () => {
        if (!open) return;
        open = false;
        stop();
        log.info({ resource: resource.resource }, 'ListAndWatch stream closed');
      };
      call.on('cancelled', end);
      call.on('close', end);
      call.on('error', end);
      send();
    },

    GetPreferredAllocation(
      call: ServerUnaryCall<PreferredAllocationRequest, PreferredAllocationResponse>,
      callback: sendUnaryData<PreferredAllocationResponse>,
    ) {
      try {
        const container_responses = call.request.container_requests.map((r) => ({ deviceIDs: resource.preferred(r) }));
        callback(null, { container_responses });
      } catch (err) {
        fail(callback, 'GetPreferredAllocation', err);
      }
    },

    Allocate(call: ServerUnaryCall<AllocateRequest, AllocateResponse>, callback: sendUnaryData<AllocateResponse>) {
      const cancelled = new AbortController();
      call.on('cancelled', () => cancelled.abort());
      void (async () => {
        const container_responses = [];
        // One at a time: two containers of a pod never share a device, and a reservation
        // holds its devices while the plugin answers.
        for (const request of call.request.container_requests) {
          container_responses.push(await resource.allocate(request.devices_ids, cancelled.signal));
        }
        log.info(
          { resource: resource.resource },
          `Allocate: ${call.request.container_requests.map((r) => r.devices_ids.join(',')).join(' | ')}`,
        );
        return { container_responses };
      })().then(
        (response) => callback(null, response),
        (err: unknown) => fail(callback, 'Allocate', err),
      );
    },

    PreStartContainer(
      _call: ServerUnaryCall<PreStartContainerRequest, PreStartContainerResponse>,
      callback: sendUnaryData<PreStartContainerResponse>,
    ) {
      // Registered with pre_start_required false: nothing to prepare, and nothing to refuse.
      callback(null, {});
    },
  };
}
