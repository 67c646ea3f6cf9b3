// Nomad's client, for real: go-plugin's own client code (the Go client's `driver` subcommand)
// drives `taskhost nomad serve <driver>` as Nomad's client does: configure, capabilities, a
// fingerprint kept open, a task that exits with a code and one that is stopped (output read from
// FIFOs as logmon reads them), stats, a signal, and a fresh plugin process that recovers a task
// from its handle after the first one was SIGKILLed. Each step's outcome is judged here.
//
// Each driver's conformance.json runs the same way in conformance-through-nomad.test.ts; these
// scenarios are what conformance.json cannot say: a plugin config sent with SetConfig and seen in
// the fingerprint, Nomad's env in the task, stderr through its FIFO, a signal's effect, Nomad's
// default stop signal (SIGINT) and the exit code the task chose for it, and output that keeps
// reaching the FIFO across the plugin's crash.
import t from 'tap';
import type { NomadDriverScenario } from '../../../bridges/nomad/conformance-scenario.js';
import { requireDocker } from '../../helpers/docker.js';
import { nomadDriverSteps, type DriverStep } from '../../helpers/nomad-driver-steps.js';
import { bridgeAgentConfig, requireNomadGoClient, runNomadGoClient, taskhostArgv } from '../../helpers/nomad-plugin.js';

/** A shell task that says it is ready, ticks, echoes SIGHUP and exits 7 on SIGINT. */
const ticker = "trap 'echo stopping; exit 7' INT; trap 'echo got-hup' HUP; echo ready; while :; do echo tick; sleep 0.2; done";
const shellLongTask = (config: Record<string, unknown>): NomadDriverScenario['longTask'] => ({
  config,
  ready: 'ready\n',
  signal: 'SIGHUP',
  signalOutput: 'got-hup\n',
  stopTimeoutMs: 10_000,
  stopped: { exitCode: 7, signal: 0 },
  output: ['stopping\n'],
  keepsWriting: true,
});

const drivers: { name: string; docker?: boolean; scenario: NomadDriverScenario }[] = [
  {
    name: 'raw_exec',
    scenario: {
      config: {},
      attribute: { name: 'driver.raw_exec', type: 'bool', value: true },
      exitTask: {
        config: { command: 'sh', args: ['-c', 'echo "out $NOMAD_TASK_NAME"; echo oops >&2; exit 3'] },
        exitCode: 3,
        stdout: 'out web\n',
        stderr: 'oops\n',
      },
      longTask: shellLongTask({ command: 'sh', args: ['-c', ticker] }),
    },
  },
  {
    name: 'mock',
    scenario: {
      config: { fingerprint_interval: '1h' },
      attribute: { name: 'driver.mock', type: 'bool', value: true },
      exitTask: {
        config: { run_for: '100ms', exit_code: 9, stdout: 'hello\n', stderr: 'warn\n' },
        exitCode: 9,
        stdout: 'hello\n',
        stderr: 'warn\n',
      },
      // The mock writes its output at start only, and dies of the stop signal.
      longTask: {
        config: { run_for: '10m', stdout: 'ready\n' },
        ready: 'ready\n',
        signal: 'SIGHUP',
        signalEvent: 'received SIGHUP',
        stopTimeoutMs: 5_000,
        stopped: { exitCode: 130, signal: 2 },
        keepsWriting: false,
      },
    },
  },
  {
    name: 'countdown',
    scenario: {
      config: { tick_ms: 50 },
      // The plugin's config as Nomad sent it, back in the fingerprint.
      attribute: { name: 'driver.countdown.tickMs', type: 'int', value: 50 },
      // Its exit task would be conformance.json's fastExit and output again.
      longTask: {
        config: { seconds: 600 },
        ready: '',
        signal: 'SIGHUP',
        signalEvent: 'received SIGHUP',
        stopTimeoutMs: 5_000,
        stopped: { exitCode: 130, signal: 2 },
        keepsWriting: true,
      },
    },
  },
  {
    name: 'docker',
    docker: true,
    scenario: {
      config: {},
      attribute: { name: 'driver.docker', type: 'bool', value: true },
      exitTask: {
        config: { image: 'busybox:1.36', command: 'sh', args: ['-c', 'echo from-busybox; echo oops >&2; exit 2'], network_mode: 'none' },
        exitCode: 2,
        stdout: 'from-busybox\n',
        stderr: 'oops\n',
      },
      longTask: shellLongTask({ image: 'busybox:1.36', command: 'sh', args: ['-c', ticker], network_mode: 'none' }),
    },
  },
];

for (const d of drivers) {
  t.test(`${d.name}: go-plugin's client drives it as Nomad's client does, through a plugin crash`, async (t) => {
    if (!requireNomadGoClient(t)) return;
    if (d.docker && !(await requireDocker(t))) return;
    const command = taskhostArgv(['--config', bridgeAgentConfig(), 'nomad', 'serve', d.name]);
    const report = await runNomadGoClient<{ checks: DriverStep[] }>('driver', ['-scenario', JSON.stringify(d.scenario)], command);
    t.equal(report.exitCode, 0, report.error ?? 'the client ran to the end');
    const steps = report.result?.checks ?? [];
    for (const step of steps) t.ok(step.pass, `${step.name}: ${step.message}`);
    t.same(
      steps.map((s) => s.name),
      nomadDriverSteps(d.scenario),
      'every step ran',
    );
    const caps = steps.find((s) => s.name === 'capabilities')?.value as Record<string, unknown> | undefined;
    t.match(caps, { send_signals: true, exec: true }, 'capabilities as Nomad reads them');
    t.ok((caps?.network_isolation_modes as string[] | undefined)?.includes('HOST'), 'host networking among the modes');
  });
}
