// Which devices a request gets: deterministic, one group per request, healthy and free only.
import t from 'tap';
import type { NodeDeviceGroup } from '../../devices/device-manager.js';
import { pickDevices } from '../../devices/pick-devices.js';
import { DeviceUnhealthyError, NoFreeDeviceError, UnknownDeviceError } from '../../shared/errors.js';

const gpu = (name: string, devices: [string, 'healthy' | 'unhealthy' | 'unknown'][]): NodeDeviceGroup => ({
  id: `nvidia/gpu/${name}`,
  vendor: 'nvidia',
  type: 'gpu',
  name,
  plugin: 'nvidia',
  attributes: {},
  devices: devices.map(([id, health]) => ({ id, health })),
});
const groups = [
  gpu('H200', [
    ['GPU-3', 'healthy'],
    ['GPU-1', 'healthy'],
    ['GPU-2', 'unhealthy'],
  ]),
  gpu('A100', [['GPU-9', 'healthy']]),
];
const free = () => false;

t.test('names: vendor/type/name, vendor/type or type; the lowest free healthy ids of the first group that fits', async (t) => {
  t.same(pickDevices([{ name: 'nvidia/gpu/H200', count: 2 }], groups, free), [{ group: groups[0], ids: ['GPU-1', 'GPU-3'] }]);
  t.same(pickDevices([{ name: 'gpu', count: 1 }], groups, free), [{ group: groups[1], ids: ['GPU-9'] }], 'A100 sorts first');
  t.same(
    pickDevices([{ name: 'nvidia/gpu', count: 2 }], groups, free),
    [{ group: groups[0], ids: ['GPU-1', 'GPU-3'] }],
    'A100 has only one',
  );
  t.same(
    pickDevices(
      [
        { name: 'gpu', count: 1 },
        { name: 'gpu', count: 1 },
        { name: 'gpu', count: 1 },
      ],
      groups,
      free,
    ),
    [
      { group: groups[1], ids: ['GPU-9'] },
      { group: groups[0], ids: ['GPU-1', 'GPU-3'] },
    ],
    'requests share a group without sharing a device',
  );
  t.same(
    pickDevices([{ name: 'gpu', count: 1 }], groups, (g, id) => g === 'nvidia/gpu/A100' && id === 'GPU-9'),
    [{ group: groups[0], ids: ['GPU-1'] }],
  );
});

t.test('refusals say what there is', async (t) => {
  t.throws(() => pickDevices([{ name: 'nvidia/gpu/H200', count: 3 }], groups, free), DeviceUnhealthyError);
  t.throws(() => pickDevices([{ name: 'nvidia/gpu/H200', count: 3 }], groups, free), {
    message: 'cannot reserve 3 devices of "nvidia/gpu/H200": nvidia/gpu/H200 has 2 healthy of 3 (GPU-2: unhealthy)',
  });
  t.throws(() => pickDevices([{ name: 'gpu', count: 2 }], groups, (_g, id) => id === 'GPU-1'), {
    code: 'NO_FREE_DEVICE',
    message:
      'no free device: cannot reserve 2 devices of "gpu": nvidia/gpu/A100 has 1 healthy of 1; nvidia/gpu/H200 has 2 healthy of 3, 1 of them reserved (GPU-2: unhealthy)',
  });
  t.throws(
    () => pickDevices([{ name: 'nvidia/gpu/A100', count: 1 }], groups, () => true),
    NoFreeDeviceError,
    'healthy but every one reserved: no free device, not a sick node',
  );
  t.throws(() => pickDevices([{ name: 'nvidia/gpu/A100', count: 1 }], groups, () => true), {
    code: 'NO_FREE_DEVICE',
    message: 'no free device: cannot reserve 1 device of "nvidia/gpu/A100": nvidia/gpu/A100 has 1 healthy of 1, 1 of them reserved',
  });
  t.throws(() => pickDevices([{ name: 'gpus', count: 1 }], groups, free), UnknownDeviceError);
  t.throws(() => pickDevices([{ name: 'gpus', count: 1 }], groups, free), {
    message: 'no device group matches "gpus" (did you mean "gpu"?); groups on this node: nvidia/gpu/H200, nvidia/gpu/A100',
  });
  t.throws(() => pickDevices([{ name: 'amd//x', count: 1 }], groups, free), {
    message: /a device name is vendor\/type\/name, vendor\/type or type/,
  });
  t.throws(() => pickDevices([{ name: 'gpu', count: 0 }], groups, free), {
    code: 'INVALID_CONFIG',
    message: 'device request "gpu": count must be a whole number of at least 1, got 0',
  });
});
