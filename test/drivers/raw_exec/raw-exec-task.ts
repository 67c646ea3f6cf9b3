// The TaskConfig of a raw_exec test task: its own alloc dir in tmp (removed at teardown), a task
// dir with its secrets dir, log files beside it. Shared by the raw_exec driver's test files.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import type { RawExecTaskConfig } from '../../../drivers/raw_exec/index.js';
import type { TaskConfig } from '../../../shared/driver.js';

export function rawExecTask(t: Test, config: RawExecTaskConfig, overrides: Partial<TaskConfig> = {}): TaskConfig {
  const allocDir = mkdtempSync(path.join(tmpdir(), 'taskhost-raw-exec-'));
  t.teardown(() => rmSync(allocDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }));
  const taskDir = path.join(allocDir, 'web');
  const secretsDir = path.join(taskDir, 'secrets');
  mkdirSync(secretsDir, { recursive: true });
  return {
    id: `alloc-1/web/${randomBytes(4).toString('hex')}`,
    name: 'web',
    allocId: 'alloc-1',
    jobName: 'shop',
    groupName: 'front',
    driver: 'raw_exec',
    config,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TASK_MARKER: 'marked' },
    deviceEnv: {},
    resources: {},
    devices: [],
    mounts: [],
    killTimeoutMs: 1000,
    allocDir,
    taskDir,
    secretsDir,
    stdoutPath: path.join(allocDir, 'web.stdout'),
    stderrPath: path.join(allocDir, 'web.stderr'),
    ...overrides,
  };
}
