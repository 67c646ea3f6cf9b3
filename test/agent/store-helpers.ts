// Fresh data dirs and records for the store tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TaskRecord, Unstamped } from '../../agent/store-records.js';

export function dataDir(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'taskhost-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function task(id: string, extra: Partial<Unstamped<TaskRecord>> = {}): Unstamped<TaskRecord> {
  return {
    id,
    namespace: 'default',
    name: `task-${id}`,
    driver: 'mock',
    state: 'pending',
    labels: {},
    spec: { name: `task-${id}`, driver: 'mock', config: {}, killTimeout: '5s' },
    ...extra,
  };
}
