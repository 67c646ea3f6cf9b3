// A reservation reaches the task: its envs as the env's device layer, its mounts and devices in
// the TaskConfig for the driver to apply.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parseTaskSpec, prepareTask } from '../../drivers/prepare-task.js';
import type { DriverCapabilities } from '../../shared/driver.js';

const capabilities: DriverCapabilities = { sendSignals: true, exec: true, fsIsolation: 'image', networkModes: ['none'], mounts: true };

t.test('envs, mounts and devices of a reservation land in the TaskConfig', async (t) => {
  const spec = parseTaskSpec({
    name: 'gpu-job',
    driver: 'docker',
    config: {},
    env: { NVIDIA_VISIBLE_DEVICES: 'all', OTHER: 'kept' },
    devices: [{ name: 'nvidia/gpu' }],
  });
  const reservation = {
    envs: { NVIDIA_VISIBLE_DEVICES: 'GPU-1' },
    mounts: [{ taskPath: '/devices/a', hostPath: '/srv/devices/a', readOnly: true }],
    devices: [{ taskPath: '/dev/nvidia0', hostPath: '/dev/nvidia0', permissions: 'rw' }],
  };
  const task = await prepareTask({
    spec,
    schema: { type: 'object' },
    capabilities,
    dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-prep-')),
    reservation,
  });
  t.equal(task.env.NVIDIA_VISIBLE_DEVICES, 'GPU-1', 'a task cannot override its device assignment');
  t.equal(task.env.OTHER, 'kept');
  t.same(task.deviceEnv, { NVIDIA_VISIBLE_DEVICES: 'GPU-1' });
  t.same(task.mounts, reservation.mounts);
  t.same(task.devices, reservation.devices);
  t.not(task.mounts[0], reservation.mounts[0], 'copies, not the reservation’s own objects');

  const none = await prepareTask({
    spec,
    schema: { type: 'object' },
    capabilities,
    dataDir: mkdtempSync(path.join(tmpdir(), 'taskhost-prep-')),
  });
  t.same([none.deviceEnv, none.mounts, none.devices], [{}, [], []]);
  t.equal(none.env.NVIDIA_VISIBLE_DEVICES, 'all');
});
