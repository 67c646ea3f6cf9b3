// The example of docs/plugin-sdk.md, kept compiling: change both together.
import {
  defineDriver,
  signalExit,
  Type,
  TaskNotFoundError,
  type SetConfigRequest,
  type Static,
  type TaskConfig,
} from '../../shared/index.js';

const Config = Type.Object({ greeting: Type.String({ default: 'hello' }) });
const tasks = new Map<string, { config: TaskConfig; done: Promise<void>; end: () => void }>();
let greeting = '';

export default defineDriver({
  info: () => ({ type: 'driver', name: 'sleeper', pluginVersion: '1.0.0', apiVersions: ['1.0'] }),
  configSchema: () => Config,
  setConfig(request: SetConfigRequest<Static<typeof Config>>) {
    greeting = request.config.greeting; // validated, defaults applied
  },
  taskConfigSchema: () => Type.Object({}),
  capabilities: () => ({ sendSignals: false, exec: false, fsIsolation: 'none', networkModes: [], mounts: false }),
  async *fingerprint(signal: AbortSignal) {
    yield { health: 'healthy', healthDescription: greeting, attributes: {} };
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
  },
  startTask(config) {
    let end!: () => void;
    tasks.set(config.id, { config, done: new Promise<void>((r) => (end = r)), end });
    return { handle: { version: 1, config, state: 'running', driverState: {} } };
  },
  async waitTask(taskId, signal) {
    const aborted = new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
    await Promise.race([task(taskId).done, aborted]);
    return signalExit('SIGTERM');
  },
  stopTask: (taskId, _timeoutMs, _killSignal) => task(taskId).end(),
  destroyTask: (taskId) => void tasks.delete(taskId),
  inspectTask: (taskId) => ({ id: taskId, name: task(taskId).config.name, state: 'running', startedAt: '', driverAttributes: {} }),
  recoverTask() {},
  async *taskStats() {},
  async *taskEvents() {},
});

function task(id: string) {
  const found = tasks.get(id);
  if (!found) throw new TaskNotFoundError(`sleeper has no task "${id}"`);
  return found;
}
