// Resource names: the bridge refuses up front exactly what the kubelet would refuse at Register
// (the fake kubelet's own reading of IsExtendedResourceName), and names the socket after it.
// NUMA nodes: read from sysfs under either spelling of a PCI bus id.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { numaNode } from '../../../bridges/kubelet/numa-node.js';
import { pluginSocketName, resourceNameProblem } from '../../../bridges/kubelet/resource-name.js';
import { isExtendedResourceName } from './fake-kubelet.js';

const names = [
  'example.com/file',
  'nvidia.com/gpu',
  'a.b-c.example/x_y.z-1',
  'example.com/' + 'n'.repeat(63),
  'example.com/' + 'n'.repeat(64),
  'file',
  'kubernetes.io/gpu',
  'sub.kubernetes.io/gpu',
  'requests.example.com/gpu',
  'Example.com/gpu',
  'example.com/',
  '/gpu',
  'example.com/-gpu',
  'example.com/gpu-',
  'example.com/a/b',
  'exa_mple.com/gpu',
  'example..com/gpu',
  'x'.repeat(245) + '/gpu',
  'x'.repeat(244) + '/gpu',
];

t.test('refuses what the kubelet refuses, and only that', async (t) => {
  for (const name of names) {
    const problem = resourceNameProblem(name);
    t.equal(
      problem === undefined,
      isExtendedResourceName(name),
      `${name.length > 40 ? name.slice(0, 20) + '…' : name}: ${problem ?? 'accepted'}`,
    );
    if (problem) t.ok(problem.includes(`"${name}"`), 'the message names it');
  }
});

t.test('the socket file is named after the resource', async (t) => {
  t.equal(pluginSocketName('example.com/file'), 'taskhost-example.com-file.sock');
  t.equal(pluginSocketName('nvidia.com/gpu_mem'), 'taskhost-nvidia.com-gpu_mem.sock');
});

t.test('NUMA node of a PCI device from sysfs', async (t) => {
  const sysfs = mkdtempSync(path.join(tmpdir(), 'taskhost-sysfs-'));
  const device = (id: string, node: string) => {
    mkdirSync(path.join(sysfs, 'bus/pci/devices', id), { recursive: true });
    writeFileSync(path.join(sysfs, 'bus/pci/devices', id, 'numa_node'), `${node}\n`);
  };
  device('0000:17:00.0', '1');
  device('0000:3b:00.0', '-1');
  t.equal(await numaNode('0000:17:00.0', sysfs), 1, "sysfs's spelling");
  t.equal(await numaNode('00000000:17:00.0', sysfs), 1, "nvidia-smi's spelling");
  t.equal(await numaNode('17:00.0', sysfs), 1, 'no domain: 0000');
  t.equal(await numaNode('0000:3B:00.0', sysfs), undefined, '-1: the kernel does not know');
  t.equal(await numaNode('0000:99:00.0', sysfs), undefined, 'no such device');
  t.equal(await numaNode('not a bus id', sysfs), undefined, 'not a bus id');
});
