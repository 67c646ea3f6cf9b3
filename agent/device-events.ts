/**
 * Device state changes as events in the store (topic `devices`), so a scheduler that follows
 * `GET /v1/events` hears of a device that became unhealthy or went away as it hears of tasks:
 * `changed` (key `node`, payload `{ groups }`: the node's device set after the change) and
 * `health` (key: the plugin, payload: its health). Devices are the node's: every namespace sees them.
 */
import type { Logger } from 'pino';
import type { DeviceManager, DevicePluginHealth, NodeDeviceGroup } from '../devices/device-manager.js';
import type { AgentStore } from './store.js';

/** Records the device manager's changes until the returned function is called. */
export function recordDeviceEvents(devices: DeviceManager, store: AgentStore, logger: Logger): () => void {
  const append = (type: string, key: string, payload: unknown) => {
    store
      .transaction((tx) => tx.appendEvent({ topic: 'devices', type, key, payload }))
      .catch((err: unknown) => logger.warn({ err, type, key }, 'a device event could not be stored'));
  };
  const onChanged = (groups: NodeDeviceGroup[]) => append('changed', 'node', { groups });
  const onHealth = (info: DevicePluginHealth) => append('health', info.name, info);
  devices.on('changed', onChanged);
  devices.on('health', onHealth);
  return () => {
    devices.off('changed', onChanged);
    devices.off('health', onHealth);
  };
}
