// A docker task that asks for an example device sees the device's file mounted inside its
// container (and the device env): the reservation reaches the container, on the real engine.
import t from 'tap';
import { BUSYBOX_IMAGE, requireDocker } from '../../helpers/docker.js';
import { runCli } from '../../helpers/run-cli.js';
import { exampleFileAgent } from '../../helpers/example-file-agent.js';

t.test('run: a docker task gets the example device mounted read-only at /devices/<id>', async (t) => {
  if (!(await requireDocker(t))) return;
  const { agent, devices, jsonFile } = exampleFileAgent();
  const config = agent({ docker: { enabled: true }, 'example-file': { config: { dir: devices, listPeriod: '50ms' } } });
  const spec = jsonFile({
    name: 'with-device',
    driver: 'docker',
    config: {
      image: BUSYBOX_IMAGE,
      command: 'sh',
      args: ['-c', 'echo "env=$EXAMPLE_FILE_DEVICES"; cat /devices/a; echo x > /devices/a 2>/dev/null && echo writable || echo read-only'],
    },
    devices: [{ name: 'example/file/mock', count: 1 }],
  });
  const { code, stdout, stderr } = await runCli(['--config', config, 'run', spec]);
  t.equal(code, 0, stderr);
  // Device "b" is world-writable, so unhealthy: the healthy "a" is the one reserved.
  t.equal(stdout, 'env=a\na\nread-only\n');
  t.match(stderr, /reserved example\/file\/mock: a/);
});
