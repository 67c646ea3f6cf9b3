/**
 * The steps the Go client's `driver` subcommand (test/bridges/nomad/go-client/driver.go) reports
 * for a scenario, in order: a test compares them with the report's, so a step that silently did
 * not run fails it.
 */
import type { NomadDriverScenario } from '../../bridges/nomad/conformance-scenario.js';

/** A step of the client's report. */
export interface DriverStep {
  name: string;
  pass: boolean;
  message: string;
  value?: unknown;
}

export function nomadDriverSteps(s: NomadDriverScenario): string[] {
  const configure = ['pluginInfo', 'configSchema', 'setConfig'];
  const exit = (prefix: string) => ['start', 'wait', 'stdout', 'stderr', 'inspect', 'destroy', 'gone'].map((n) => `${prefix}.${n}`);
  const long = s.longTask;
  return [
    ...configure,
    'capabilities',
    'taskConfigSchema',
    'fingerprint',
    ...(s.attribute ? ['fingerprint.attribute'] : []),
    ...(s.exitTask ? exit('exit') : []),
    ...(s.outputTask ? exit('output') : []),
    ...(s.badConfig ? ['badConfig.start', 'badConfig.gone'] : []),
    ...['start', 'ready', 'inspect', 'stats'].map((n) => `long.${n}`),
    ...(long.signal ? ['long.signal', ...(long.signalOutput || long.signalEvent ? ['long.signal.seen'] : [])] : []),
    ...(long.exec ? ['long.exec'] : []),
    ...['stop', 'wait', 'stdout', 'destroy'].map((n) => `long.${n}`),
    ...(s.stubbornTask ? ['start', 'running', 'stop', 'wait', 'timeout', 'stdout', 'destroy'].map((n) => `stubborn.${n}`) : []),
    'fingerprint.open',
    ...['start', 'ready', 'kill', 'launch', ...configure, 'recoverTask', 'running'].map((n) => `recover.${n}`),
    ...(long.keepsWriting ? ['recover.output'] : []),
    ...['again', 'stop', 'wait', 'stdout', 'destroy'].map((n) => `recover.${n}`),
    'kill',
  ];
}
