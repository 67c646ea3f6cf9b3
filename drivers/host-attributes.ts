/**
 * The node attributes the host reports about itself, named as Nomad's client names them, so a
 * task can say `${node.attr.kernel.name}` whichever drivers are loaded.
 */
import { availableParallelism, hostname, machine, platform, release, totalmem } from 'node:os';
import { ociArch } from '../shared/oci-arch.js';

export function hostAttributes(): Record<string, string> {
  return {
    'kernel.name': platform(),
    'kernel.version': release(),
    'kernel.arch': machine(),
    'cpu.arch': ociArch(),
    'cpu.numcores': String(availableParallelism()),
    'memory.totalbytes': String(totalmem()),
    'unique.hostname': hostname(),
  };
}
