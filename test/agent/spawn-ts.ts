// Spawns a TypeScript fixture under tsx and waits for a line on its stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import { tsxChildEnv, tsxLoader } from '../helpers/tsx-child.js';

export interface Child {
  process: ChildProcess;
  /** Resolves with the first stdout line that starts with `prefix`; rejects if the child exits first. */
  line(prefix: string): Promise<string>;
  /** kill -9, and resolves once it is gone. */
  kill9(): Promise<void>;
}

export function spawnFixture(t: { teardown(fn: () => unknown): void }, file: URL, args: string[]): Child {
  const child = spawn(process.execPath, ['--import', tsxLoader, file.pathname, ...args], {
    env: tsxChildEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  t.teardown(() => child.kill('SIGKILL'));
  return {
    process: child,
    line: (prefix) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = out.split('\n').find((l) => l.startsWith(prefix));
          if (found !== undefined) resolve(found);
        };
        child.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          check();
        });
        child.on('exit', (code) => reject(new Error(`fixture exited (${code}) before printing "${prefix}": ${err}`)));
      }),
    kill9: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
