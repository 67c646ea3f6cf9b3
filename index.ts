/**
 * The taskhost library, for an agent that embeds the host: the plugin loader, the driver and
 * device managers and their clients, handle stores, task preparation, the conformance runners,
 * and everything of the plugin SDK (`taskhost/sdk`, re-exported whole at the end).
 */
export { PluginLoader, type LoaderEvents, type PluginListing, type PluginLoaderOptions } from './plugin-loader/loader.js';
export { PluginInstance, type PluginState, type PluginStatus } from './plugin-loader/plugin-instance.js';
export {
  AgentConfig,
  defaultSupervision,
  loadAgentConfig,
  parseAgentConfig,
  type FilledSupervision,
  type Supervision,
} from './plugin-loader/agent-config.js';
export { discover, negotiateApiVersion, type Discovery, type PluginCandidate, type SkippedPlugin } from './plugin-loader/discovery.js';
export { validateAgentConfigFile, type ConfigReport } from './plugin-loader/validate.js';
export type { CallOptions, StreamOptions } from './plugin-loader/plugin-worker.js';

// The node agent: the whole of it in one object, and its task supervisor.
export { Agent, agentSocket, type AgentOptions } from './agent/agent.js';
export {
  AgentClient,
  type AgentClientOptions,
  type DeleteTaskOptions,
  type EventsOptions,
  type ImageListing,
  type LogsOptions,
  type StopTaskOptions,
} from './agent/agent-client.js';
export {
  TaskSupervisor,
  handleDir,
  type DeleteOptions,
  type StopOptions,
  type TaskSupervisorEvents,
  type TaskSupervisorOptions,
} from './agent/task-supervisor.js';
export type { StoreEvent, TaskRecord, TaskRecordState } from './agent/store-records.js';

// Drivers: the manager, its client of one driver plugin, where task handles are kept.
export {
  DriverManager,
  type DriverHealthInfo,
  type DriverManagerEvents,
  type DriverManagerOptions,
  type TaskOptions,
} from './drivers/driver-manager.js';
export { DriverClient } from './drivers/driver-client.js';
export { FileHandleStore, MemoryHandleStore, type HandleStore } from './drivers/handle-store.js';
export {
  buildTaskConfig,
  createTaskDirs,
  loadTaskSpec,
  parseDriverConfig,
  parseTaskSpec,
  prepareTask,
  type PrepareOptions,
} from './drivers/prepare-task.js';
export { validateTaskFile } from './drivers/validate-task.js';

// Devices: the manager and its client of one device plugin.
export {
  DeviceManager,
  type DeviceGroupSample,
  type DeviceHealth,
  type DeviceManagerEvents,
  type DeviceManagerOptions,
  type DevicePluginHealth,
  type DeviceRequest,
  type DeviceReservation,
  type DeviceSampleArrival,
  type DeviceStatsSnapshot,
  type NodeDevice,
  type NodeDeviceGroup,
} from './devices/device-manager.js';
export { DeviceClient } from './devices/device-client.js';
export { pickDevices, type DevicePick } from './devices/pick-devices.js';

// The conformance suites, as `taskhost conformance` runs them.
export {
  findConformanceTarget,
  type CheckResult,
  type CheckStatus,
  type ConformanceOptions,
  type ConformanceReport,
  type ConformanceTarget,
} from './conformance/check-runner.js';
export { runDriverConformance } from './conformance/driver-conformance.js';
export { runDeviceConformance, type DeviceConformanceOptions } from './conformance/device-conformance.js';

export * from './shared/index.js';
