/**
 * The device plugin API's messages (package v1beta1) as @grpc/proto-loader hands them to us and
 * takes them back: field names exactly as on the wire (keepCase), repeated fields as arrays,
 * maps as objects, int64 as numbers. One file of plain interfaces, so the bridge and the test's
 * kubelet agree on one shape.
 */

/** A message without fields. */
export type Empty = Record<string, never>;

export interface DevicePluginOptions {
  pre_start_required: boolean;
  get_preferred_allocation_available: boolean;
}

export interface RegisterRequest {
  version: string;
  /** A socket file name in the kubelet's directory. */
  endpoint: string;
  resource_name: string;
  options: DevicePluginOptions | null;
}

export interface NUMANode {
  ID: number;
}

export interface TopologyInfo {
  nodes: NUMANode[];
}

export interface Device {
  ID: string;
  /** "Healthy" or "Unhealthy". */
  health: string;
  topology: TopologyInfo | null;
}

export interface ListAndWatchResponse {
  devices: Device[];
}

export interface ContainerPreferredAllocationRequest {
  available_deviceIDs: string[];
  must_include_deviceIDs: string[];
  allocation_size: number;
}

export interface PreferredAllocationRequest {
  container_requests: ContainerPreferredAllocationRequest[];
}

export interface ContainerPreferredAllocationResponse {
  deviceIDs: string[];
}

export interface PreferredAllocationResponse {
  container_responses: ContainerPreferredAllocationResponse[];
}

export interface ContainerAllocateRequest {
  devices_ids: string[];
}

export interface AllocateRequest {
  container_requests: ContainerAllocateRequest[];
}

export interface Mount {
  container_path: string;
  host_path: string;
  read_only: boolean;
}

export interface DeviceSpec {
  container_path: string;
  host_path: string;
  /** A subset of "rwm". */
  permissions: string;
}

export interface CDIDevice {
  name: string;
}

export interface ContainerAllocateResponse {
  envs: Record<string, string>;
  mounts: Mount[];
  devices: DeviceSpec[];
  annotations: Record<string, string>;
  cdi_devices: CDIDevice[];
}

export interface AllocateResponse {
  container_responses: ContainerAllocateResponse[];
}

export interface PreStartContainerRequest {
  devices_ids: string[];
}

export type PreStartContainerResponse = Record<string, never>;

/** The API version this bridge speaks, and the only one kubelet accepts. */
export const apiVersion = 'v1beta1';
/** Device health as the API spells it. */
export const healthy = 'Healthy';
export const unhealthy = 'Unhealthy';
/** The kubelet's registration socket, in its device plugin directory. */
export const kubeletSocketName = 'kubelet.sock';
export const defaultKubeletDir = '/var/lib/kubelet/device-plugins';
