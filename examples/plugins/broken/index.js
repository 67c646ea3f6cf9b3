// The countdown driver with the mistakes driver authors make most, on purpose:
// a schema that lets anything through, duplicate task ids, a wait that loses fast exits,
// an inspect that never says "exited", a destroy that ignores `force`, a heartbeat timer per
// task that destroy forgets, and a fingerprint that does not stop when its signal aborts.
import countdown from '../countdown/index.js';

export default function brokenDriver() {
  const good = countdown();
  const exited = new Set();
  return {
    ...good,
    info: () => ({ type: 'driver', name: 'broken', pluginVersion: '1.0.0', apiVersions: ['1.0'] }),
    taskConfigSchema: () => ({ type: 'object', additionalProperties: true }),
    startTask(config) {
      if (typeof config.config.seconds !== 'number') config = { ...config, config: { ...config.config, seconds: 0 } };
      try {
        good.destroyTask(config.id, true);
      } catch {
        // not there yet: fine
      }
      setInterval(() => {}, 1000); // a heartbeat nobody clears
      return good.startTask(config);
    },
    async waitTask(id, signal) {
      const status = good.inspectTask(id);
      if (status.state === 'exited' && !exited.has(id)) {
        exited.add(id);
        throw new Error(`task ${id} is not running`);
      }
      return good.waitTask(id, signal);
    },
    async *fingerprint() {
      yield { health: 'healthy', healthDescription: 'ready to count', attributes: {} };
      await new Promise(() => {}); // waits for a change that never comes, deaf to the signal
    },
    inspectTask(id) {
      return { ...good.inspectTask(id), state: 'running' };
    },
    destroyTask(id) {
      return good.destroyTask(id, true);
    },
  };
}
