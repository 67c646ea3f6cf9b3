/**
 * CPU architecture names as Docker and OCI images write them (Go's GOARCH: `amd64`, `arm64`,
 * `arm`, `386`, `ppc64le`, `s390x`, `riscv64`), from Node's `process.arch` (`x64`, `ia32`, ...):
 * a node attribute is compared with image platforms, so it must use their names.
 */
import { endianness } from 'node:os';

const goArch: Record<string, string> = {
  x64: 'amd64',
  ia32: '386',
  arm: 'arm',
  arm64: 'arm64',
  s390x: 's390x',
  s390: 's390',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips: 'mips',
  mipsel: 'mipsle',
  ppc: 'ppc',
};

/** The OCI name of a Node architecture (default: this process's); one it does not know passes unchanged. */
export function ociArch(nodeArch: string = process.arch, byteOrder: 'LE' | 'BE' = endianness()): string {
  // Node says `ppc64` for both byte orders; Linux on POWER is little-endian nearly always.
  if (nodeArch === 'ppc64') return byteOrder === 'LE' ? 'ppc64le' : 'ppc64';
  return goArch[nodeArch] ?? nodeArch;
}
