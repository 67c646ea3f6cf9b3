// Nomad's device manager, for real: go-plugin's own client code (the Go client's `device`
// subcommand) drives `taskhost nomad serve example-file` (files in a folder are devices): the
// Fingerprint stream kept open, Reserve by DetectedDevice.ID, Stats at the collection_interval
// asked for, and a device that turns unhealthy, and healthy again, on the same open stream.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { bridgeAgentConfig, requireNomadGoClient, runNomadGoClient, taskhostArgv } from '../../helpers/nomad-plugin.js';

interface Step {
  name: string;
  pass: boolean;
  message: string;
  value?: unknown;
}

type Groups = {
  vendor: string;
  device_type: string;
  device_name: string;
  devices: { ID: string; healthy: boolean; health_description: string }[];
  attributes: Record<string, { type: string; value: unknown; unit: string }>;
}[];

t.test("example-file: go-plugin's client fingerprints, reserves and reads stats as Nomad's device manager does", async (t) => {
  if (!requireNomadGoClient(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-nomad-go-devices-'));
  for (const [id, text] of [
    ['a', 'aaaa'],
    ['b', 'bb'],
  ] as const) {
    writeFileSync(path.join(dir, id), text);
    chmodSync(path.join(dir, id), 0o644);
  }
  const scenario = {
    // Nomad's SetConfig gives the plugin its folder; the agent config file has none.
    config: { dir, list_period: '100ms' },
    group: { vendor: 'example', type: 'file', name: 'mock', devices: ['a', 'b'] },
    reserve: {
      ids: ['a'],
      envs: { EXAMPLE_FILE_DEVICES: 'a' },
      // In the order the Go client writes a mount's keys (sorted).
      mounts: [{ host_path: path.join(dir, 'a'), read_only: true, task_path: '/devices/a' }],
    },
    // Not the bridge's default (1 s): samples this far apart show the interval asked for is used.
    statsIntervalMs: 1_500,
    // World-writable: example-file's unhealthy device.
    sick: { id: 'b', file: path.join(dir, 'b'), mode: 0o646, repairedMode: 0o644 },
  };
  const command = taskhostArgv(['--config', bridgeAgentConfig(), 'nomad', 'serve', 'example-file']);
  const report = await runNomadGoClient<{ checks: Step[] }>('device', ['-scenario', JSON.stringify(scenario)], command);
  t.equal(report.exitCode, 0, report.error ?? 'the client ran to the end');
  const steps = report.result?.checks ?? [];
  for (const step of steps) t.ok(step.pass, `${step.name}: ${step.message}`);
  t.same(
    steps.map((s) => s.name),
    [
      'pluginInfo',
      'configSchema',
      'setConfig',
      'fingerprint.open',
      'fingerprint',
      'reserve',
      'reserve.unknown',
      'stats',
      'unhealthy',
      'healthy.again',
      'fingerprint.stillOpen',
      'kill',
    ],
    'every step ran',
  );
  const value = (name: string) => steps.find((s) => s.name === name)?.value;
  const [group] = (value('fingerprint') ?? []) as Groups;
  t.match(group, {
    devices: [
      { ID: 'a', healthy: true },
      { ID: 'b', healthy: true },
    ],
    attributes: { count: { type: 'int', value: 2 }, dir: { type: 'string', value: dir } },
  });
  const [sick] = (value('unhealthy') ?? []) as Groups;
  t.match(sick?.devices, [
    { ID: 'a', healthy: true },
    { ID: 'b', healthy: false, health_description: /world-writable/ },
  ]);
  t.match(value('reserve'), { envs: { EXAMPLE_FILE_DEVICES: 'a' }, devices: 0 });
});
