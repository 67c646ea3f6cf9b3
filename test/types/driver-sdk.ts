// Compile-time checks of the driver SDK (`taskhost/sdk`): never run, only type-checked.
import {
  defineDriver,
  methodArity,
  Type,
  type DriverPlugin,
  type ExitResult,
  type Static,
  type TaskConfig,
  type TaskHandle,
  type TSchema,
} from '../../shared/index.js';

const exit: ExitResult = { exitCode: 0, signal: null, oomKilled: false };
const handleOf = (config: TaskConfig): TaskHandle => ({ version: 1, config, state: 'running', driverState: {} });
async function* nothing(): AsyncGenerator<never> {}

// TypeBox comes with the SDK: one schema for the config's JSON Schema and its type.
const Config = Type.Object({ greeting: Type.String({ default: 'hi' }) });
type Config = Static<typeof Config>;
export const schemaIsTypeBox: TSchema = Config;

/** Every method, every argument and its AbortSignal declared: it compiles. */
export const withSignals = defineDriver({
  info: () => ({ type: 'driver', name: 'typed', pluginVersion: '1.0.0', apiVersions: ['1.0'] }),
  configSchema: () => Config,
  setConfig(request: { apiVersion: string; config: Config; agent: { dataDir: string; pluginDataDir: string } }, signal: AbortSignal) {
    void request.config.greeting;
    void signal.aborted;
  },
  init: (_signal: AbortSignal) => undefined,
  shutdown: async (_signal: AbortSignal) => undefined,
  taskConfigSchema: (_signal: AbortSignal) => ({ type: 'object' }),
  capabilities: (_signal: AbortSignal) => ({ sendSignals: true, exec: true, fsIsolation: 'none', networkModes: ['host'], mounts: false }),
  fingerprint: (_signal: AbortSignal) => nothing(),
  startTask: async (config: TaskConfig, _signal: AbortSignal) => ({ handle: handleOf(config) }),
  waitTask: async (_taskId: string, _signal: AbortSignal) => exit,
  stopTask: async (_taskId: string, _timeoutMs: number, killSignal: string | undefined, signal: AbortSignal) => {
    void killSignal?.length;
    void signal.aborted;
  },
  destroyTask: (_taskId: string, _force: boolean, _signal: AbortSignal) => undefined,
  inspectTask: (taskId: string, _signal: AbortSignal) => ({
    id: taskId,
    name: 'x',
    state: 'running' as const,
    startedAt: '',
    driverAttributes: {},
  }),
  recoverTask: (_handle: TaskHandle, _signal: AbortSignal) => undefined,
  taskStats: (_taskId: string, _intervalMs: number, _signal: AbortSignal) => nothing(),
  taskEvents: (_signal: AbortSignal) => nothing(),
  signalTask: (_taskId: string, _signalName: string, _signal: AbortSignal) => undefined,
  execTask: async (_taskId: string, _command: string[], _timeoutMs: number, _signal: AbortSignal) => ({
    stdout: '',
    stderr: '',
    exitResult: exit,
  }),
  validateTask: (_config: TaskConfig, _signal: AbortSignal) => undefined,
});

/** The least a driver can be: no signals declared, no optional methods, parameters typed by the contract. */
export const minimal = defineDriver({
  info: () => ({ type: 'driver', name: 'minimal', pluginVersion: '1.0.0', apiVersions: ['1.0'] }),
  configSchema: () => null,
  setConfig() {},
  taskConfigSchema: () => ({}),
  capabilities: () => ({ sendSignals: false, exec: false, fsIsolation: 'none', networkModes: [], mounts: false }),
  fingerprint: nothing,
  startTask: (config) => ({ handle: handleOf(config) }),
  waitTask: () => exit,
  stopTask() {},
  destroyTask() {},
  inspectTask: (id) => ({ id, name: 'x', state: 'exited', startedAt: '', driverAttributes: {} }),
  recoverTask() {},
  taskStats: nothing,
  taskEvents: nothing,
});

// What defineDriver returns keeps the driver's own signatures: a test may call it without a signal.
export const startedDirectly = minimal.startTask({} as TaskConfig);
// The contract type itself says the host always passes the signal.
export const viaContract = (d: DriverPlugin, signal: AbortSignal) => d.stopTask('a/b/00000000', 100, undefined, signal);

// The arity table is exact, per method: stopTask declares three arguments before its signal.
export const stopArity: 3 = methodArity.driver.stopTask;
// @ts-expect-error -- a method outside the contract has no arity in the table
export const noArity = methodArity.driver.echo;

const { startTask: _startTask, ...withoutStart } = minimal;
const { taskEvents: _taskEvents, fingerprint: _fingerprint, ...withoutStreams } = minimal;
const { setConfig: _setConfig, ...withoutSetConfig } = minimal;

// @ts-expect-error -- a driver without startTask is not a driver
defineDriver(withoutStart);
// @ts-expect-error -- nor one without its streams
defineDriver(withoutStreams);
// @ts-expect-error -- nor one without the base plugin's setConfig
defineDriver(withoutSetConfig);
// @ts-expect-error -- startTask returns { handle: TaskHandle }, not a number
defineDriver({ ...minimal, startTask: () => ({ handle: 42 }) });
// @ts-expect-error -- nor a bare handle
defineDriver({ ...minimal, startTask: (config: TaskConfig) => handleOf(config) });
// @ts-expect-error -- the argument after a method's declared ones is an AbortSignal, not a string
defineDriver({ ...minimal, waitTask: (_taskId: string, _signal: string) => exit });
// @ts-expect-error -- stopTask's third argument is the kill signal's name, its fourth the AbortSignal
defineDriver({ ...minimal, stopTask: (_taskId: string, _timeoutMs: number, _signal: AbortSignal) => undefined });
// @ts-expect-error -- a stream method returns an AsyncIterable
defineDriver({ ...minimal, taskEvents: () => [] as const });
// @ts-expect-error -- an optional method, when present, still keeps to the contract
defineDriver({ ...minimal, execTask: () => ({ stdout: '' }) });
// @ts-expect-error -- capabilities are checked too
defineDriver({ ...minimal, capabilities: () => ({ sendSignals: true, exec: true, fsIsolation: 'vm', networkModes: [], mounts: false }) });
