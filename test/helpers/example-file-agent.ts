/**
 * A temporary agent for the CLI tests of devices: a directory with device files a (healthy) and
 * b (world-writable), and agent configs that host only the plugins under test (the other
 * built-ins have their own tests).
 */
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fastSupervision } from './fixture-plugins.js';

export function exampleFileAgent() {
  const work = mkdtempSync(path.join(tmpdir(), 'taskhost-devices-cli-'));
  const devices = path.join(work, 'devices');
  mkdirSync(devices);
  for (const [name, mode] of [
    ['a', 0o644],
    ['b', 0o646],
  ] as const) {
    writeFileSync(path.join(devices, name), `${name}\n`);
    chmodSync(path.join(devices, name), mode);
  }
  /** An agent config file with these plugin entries. */
  const agent = (plugins: Record<string, unknown>): string => {
    const file = path.join(mkdtempSync(path.join(work, 'agent-')), 'agent.json');
    const others = { docker: { enabled: false }, nvidia: { enabled: false } };
    const doc = {
      pluginDir: path.join(work, 'no-plugins'),
      dataDir: path.join(work, 'data'),
      supervision: fastSupervision,
      plugins: { ...others, ...plugins },
    };
    writeFileSync(file, JSON.stringify(doc));
    return file;
  };
  /** A file in the work directory holding `doc` as JSON. */
  const jsonFile = (doc: unknown): string => {
    const file = path.join(mkdtempSync(path.join(work, 'f-')), 'doc.json');
    writeFileSync(file, JSON.stringify(doc));
    return file;
  };
  return {
    work,
    devices,
    agent,
    jsonFile,
    /** An agent config that hosts example-file over the device directory. */
    withExample: () => agent({ 'example-file': { config: { dir: devices, listPeriod: '50ms' } } }),
  };
}
