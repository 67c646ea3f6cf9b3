// conformance.json in the plugin's names becomes the Go client's scenario in the HCL names the
// bridge's hclspec gives Nomad, so that Nomad's msgpack for it decodes back to the same config.
import path from 'node:path';
import t from 'tap';
import { conformanceScenario, hclConfig } from '../../../bridges/nomad/conformance-scenario.js';
import { fromHcl } from '../../../bridges/nomad/msgpack-config.js';
import { hclSpec } from '../../../bridges/nomad/hclspec.js';
import { InvalidConfigError } from '../../../shared/errors.js';
import { fixturePluginDir } from '../../helpers/fixture-plugins.js';
import { repoRoot } from '../../helpers/nomad-plugin.js';
import { runCli } from '../../helpers/run-cli.js';

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    runFor: { type: 'string' },
    exitCode: { type: 'integer' },
    // Two properties that would share `http_port` keep their names as written.
    httpPort: { type: 'integer' },
    http_port: { type: 'integer' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    logConfig: { type: 'object', properties: { maxFiles: { type: 'integer' } } },
    mounts: { type: 'array', items: { type: 'object', properties: { hostPath: { type: 'string' }, readOnly: { type: 'boolean' } } } },
  },
};

t.test('task configs get the names of the hclspec Nomad decodes the job with', async (t) => {
  const config = {
    runFor: '10m',
    httpPort: 1,
    http_port: 2,
    labels: { appName: 'x' },
    logConfig: { maxFiles: 3 },
    mounts: [{ hostPath: '/a', readOnly: true }],
  };
  const hcl = hclConfig(config, schema) as Record<string, unknown>;
  t.same(hcl, {
    run_for: '10m',
    httpPort: 1,
    http_port: 2,
    labels: { appName: 'x' },
    log_config: { max_files: 3 },
    mounts: [{ host_path: '/a', read_only: true }],
  });
  const spec = hclSpec(schema).object!.attributes;
  t.ok(
    Object.keys(hcl).every((k) => k in spec),
    'every name is an attribute or block of the spec',
  );
  t.same(fromHcl(hcl, schema, '', []), config, 'the bridge maps them back to the config written');
});

t.test('each conformance.json key lands where the Go client reads it', async (t) => {
  const scenario = conformanceScenario(
    {
      longRunning: { runFor: '10m' },
      fastExit: { config: { exitCode: 3 }, exitCode: 3 },
      ignoresStop: { runFor: '10m', stopIgnored: true },
      output: { config: { runFor: '0s' }, stdout: 'hi\n' },
      exec: { command: ['echo', 'hi'], stdout: 'hi\n' },
      badConfig: { config: { logConfig: { maxFiles: 'many' } }, path: '/logConfig/maxFiles' },
    },
    schema,
  );
  t.same(scenario.exitTask, { config: { exit_code: 3 }, exitCode: 3 });
  t.same(scenario.outputTask, { config: { run_for: '0s' }, exitCode: 0, stdout: 'hi\n' });
  t.same(scenario.badConfig, { config: { log_config: { max_files: 'many' } }, path: '/log_config/max_files' });
  t.match(scenario.longTask, { config: { run_for: '10m' }, stopSignal: 'SIGTERM', exec: { command: ['echo', 'hi'], stdout: 'hi\n' } });
  t.notOk('ready' in scenario.longTask, 'no ready text: InspectTask says when it runs');
  t.same(scenario.stubbornTask, {
    config: { run_for: '10m', stopIgnored: true },
    stopSignal: 'SIGTERM',
    stopTimeoutMs: 1_000,
    stopped: { signal: 9 },
  });
});

t.test('optional scenarios left out are left out of the Go client scenario', async (t) => {
  const scenario = conformanceScenario(
    { longRunning: {}, fastExit: { config: {}, exitCode: 1 }, badConfig: { config: { nope: 1 }, path: '/nope' } },
    schema,
  );
  t.notOk(scenario.outputTask);
  t.notOk(scenario.stubbornTask);
  t.notOk(scenario.longTask.exec);
  t.same(scenario.badConfig?.path, '/nope', 'a key the schema does not know keeps its name');
});

t.test('an invalid conformance.json is refused at its path', async (t) => {
  const err = (() => {
    try {
      conformanceScenario({ longRunning: {}, fastExit: { config: {} }, badConfig: { config: {}, path: '/x' } }, schema);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  t.ok(err instanceof InvalidConfigError);
  t.match((err as InvalidConfigError).message, /conformance\.json.*\/fastExit\/exitCode/);
});

t.test("taskhost nomad scenario prints a driver's scenario, and says why it cannot", async (t) => {
  const examples = ['--plugin-dir', path.join(repoRoot, 'examples/plugins')];
  const ok = await runCli([...examples, 'nomad', 'scenario', 'countdown']);
  t.equal(ok.code, 0, ok.stderr);
  t.match(JSON.parse(ok.stdout), {
    exitTask: { config: { seconds: 0, exit_code: 3 }, exitCode: 3 },
    outputTask: { stdout: 'hello from countdown\n' },
    badConfig: { path: '/seconds' },
  });
  const device = await runCli([...examples, 'nomad', 'scenario', 'example-file']);
  t.equal(device.code, 1);
  t.match(device.stderr, 'is a device plugin');
  const none = await runCli(['--plugin-dir', fixturePluginDir, 'nomad', 'scenario', 'good']);
  t.equal(none.code, 1);
  t.match(none.stderr, `${path.join(fixturePluginDir, 'good', 'conformance.json')} is missing`);
});
