// A driver that passes `taskhost conformance` also works under Nomad: each driver's own
// conformance.json, turned into Nomad's HCL names (`taskhost nomad scenario`), is run by
// go-plugin's real client through `taskhost nomad serve`: the fast exit's code, the output task's
// stdout through the FIFO, a bad config refused with InvalidArgument at its HCL path, the long
// task inspected, measured, exec'd in, stopped, and recovered by a fresh plugin process after a
// crash, and a task that ignores its stop signal killed after StopTask's timeout.
// What conformance.json cannot say (plugin config, signals, stderr, output across a crash) is in
// go-client-driver.test.ts.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { loadConformanceScenario } from '../../../bridges/nomad/conformance-scenario.js';
import { parseAgentConfig } from '../../../plugin-loader/agent-config.js';
import { requireDocker } from '../../helpers/docker.js';
import { nomadDriverSteps, type DriverStep } from '../../helpers/nomad-driver-steps.js';
import { bridgeAgentConfig, repoRoot, requireNomadGoClient, runNomadGoClient, taskhostArgv } from '../../helpers/nomad-plugin.js';

const drivers = [
  { name: 'raw_exec', dir: 'drivers/raw_exec' },
  { name: 'mock', dir: 'drivers/mock' },
  { name: 'countdown', dir: 'examples/plugins/countdown' },
  { name: 'docker', dir: 'drivers/docker', docker: true },
];

for (const d of drivers) {
  t.test(`${d.name}: its conformance.json passes through the bridge, as Nomad's client runs it`, async (t) => {
    if (!requireNomadGoClient(t)) return;
    if (d.docker && !(await requireDocker(t))) return;
    const configFile = bridgeAgentConfig();
    const config = parseAgentConfig(JSON.parse(readFileSync(configFile, 'utf8')));
    const scenario = await loadConformanceScenario({ name: d.name, config, logger: pino({ level: 'silent' }) });
    const conformance = JSON.parse(readFileSync(path.join(repoRoot, d.dir, 'conformance.json'), 'utf8')) as {
      output?: { stdout: string };
      ignoresStop?: unknown;
    };

    const command = taskhostArgv(['--config', configFile, 'nomad', 'serve', d.name]);
    const report = await runNomadGoClient<{ checks: DriverStep[] }>('driver', ['-scenario', JSON.stringify(scenario)], command);
    t.equal(report.exitCode, 0, report.error ?? 'the client ran to the end');
    const steps = report.result?.checks ?? [];
    for (const step of steps) t.ok(step.pass, `${step.name}: ${step.message}`);
    t.same(
      steps.map((s) => s.name),
      nomadDriverSteps(scenario),
      'every step ran',
    );
    // What the plugin's author wrote is what Nomad's side saw.
    const seen = (name: string) => steps.find((s) => s.name === name)?.value;
    if (conformance.output) t.equal(seen('output.stdout'), conformance.output.stdout, "the output task's stdout, read from the FIFO");
    if (conformance.ignoresStop) t.match(seen('stubborn.wait'), { signal: 9 }, 'the task that ignores its stop signal was killed');
  });
}
