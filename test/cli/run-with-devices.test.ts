// `taskhost fingerprint` with its devices section, and `taskhost run` of a task that asks for
// devices, in-process, on the built-in example-file plugin over a temporary directory.
import path from 'node:path';
import t from 'tap';
import type { DevicePluginHealth, NodeDeviceGroup } from '../../devices/device-manager.js';
import { runCli } from '../helpers/run-cli.js';
import { exampleFileAgent } from '../helpers/example-file-agent.js';

const { withExample, devices, jsonFile: taskFile } = exampleFileAgent();

t.test('fingerprint: the drivers as before, then the devices', async (t) => {
  const human = await runCli(['--config', withExample(), 'fingerprint']);
  t.equal(human.code, 0);
  t.match(human.stdout, /^DRIVER\s+HEALTH\s+DESCRIPTION\s+ATTRIBUTES\nmock\s+healthy/);
  t.match(human.stdout, /\n\nGROUP\s+DEVICE\s+HEALTH\s+DESCRIPTION\s+ATTRIBUTES\nexample\/file\/mock\s+a\s+healthy/);
  const doc = JSON.parse((await runCli(['--config', withExample(), 'fingerprint', '--json'])).stdout) as {
    drivers: { name: string }[];
    devices: { groups: NodeDeviceGroup[]; plugins: DevicePluginHealth[] };
  };
  t.same(
    doc.drivers.map((d) => d.name),
    ['mock', 'raw_exec'],
  );
  t.match(doc.devices, { groups: [{ id: 'example/file/mock' }], plugins: [{ name: 'example-file', health: 'healthy' }] });
});

t.test('run: a raw_exec task that asks for example/file/mock gets EXAMPLE_FILE_DEVICES', async (t) => {
  const spec = taskFile({
    name: 'uses-device',
    driver: 'raw_exec',
    config: { command: '/bin/sh', args: ['-c', 'echo "devices=$EXAMPLE_FILE_DEVICES"'] },
    devices: [{ name: 'example/file/mock', count: 1 }],
  });
  const { code, stdout, stderr } = await runCli(['--config', withExample(), 'run', '--json', spec]);
  t.equal(code, 0, stderr);
  t.match(stderr, /^devices=a\n/, 'b is world-writable, so a is the one');
  const result = JSON.parse(stdout) as { events: { message: string; annotations?: object }[] };
  t.match(result.events[0], { message: 'reserved example/file/mock: a', annotations: { group: 'example/file/mock', devices: 'a' } });
  t.ok(
    result.events.some(
      (e) =>
        e.message ===
        `raw_exec mounts nothing: the task shares the host's file system and finds its devices at their host paths: ${path.join(devices, 'a')} (not at /devices/a)`,
    ),
    'the task is told where its device is, since raw_exec cannot mount it',
  );
});

t.test('run: a device that does not exist stops the task before it starts', async (t) => {
  const task = taskFile({
    name: 'nope',
    driver: 'raw_exec',
    config: { command: '/bin/true' },
    devices: [{ name: 'example/file/mok', count: 1 }],
  });
  const unknown = await runCli(['--config', withExample(), 'run', task]);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /task nope could not run: no device group matches "example\/file\/mok" \(did you mean "example\/file\/mock"\?\)/);
});
