/** What the numbers were measured on: absolute figures only mean something next to this. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './paths.js';

export interface Environment {
  node: string;
  os: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  /** 1, 5 and 15 minute load averages when the run started: a busy machine skews everything. */
  loadAverage: number[];
  piscina: string;
  grpcJs: string;
  date: string;
}

export function describeEnvironment(): Environment {
  const cpus = os.cpus();
  return {
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    piscina: packageVersion('piscina'),
    grpcJs: packageVersion('@grpc/grpc-js'),
    date: new Date().toISOString(),
  };
}

function packageVersion(name: string): string {
  try {
    const file = path.join(repoRoot, 'node_modules', name, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
