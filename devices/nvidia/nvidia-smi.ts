/**
 * Runs nvidia-smi: the two queries the plugin makes, and what came of running one. Kept apart
 * from parsing so each outcome (not installed, driver not loaded, hung, worked) is one plain value.
 */
import { execFile } from 'node:child_process';

/** What fingerprint() and reserve() ask for, one CSV row per GPU. */
export const inventoryFields = ['index', 'uuid', 'name', 'memory.total', 'pci.bus_id', 'driver_version'] as const;
/** What stats() asks for, one CSV row per GPU. */
export const statsFields = ['uuid', 'utilization.gpu', 'memory.used', 'temperature.gpu', 'power.draw'] as const;

/**
 * The arguments of a query. `nounits` leaves bare numbers: memory in MiB, temperature in degrees
 * C, power in W, utilization in %. scripts/record-nvidia-smi.sh runs exactly these.
 */
export function queryArgs(fields: readonly string[]): string[] {
  return [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits'];
}

export type SmiResult =
  /** It ran and exited 0. */
  | { kind: 'ok'; stdout: string; stderr: string }
  /** No such program: no NVIDIA driver utilities here (or a wrong `nvidiaSmi`). */
  | { kind: 'missing'; message: string }
  /** It ran and failed (exit code 9: the driver is not loaded), or could not be started. */
  | { kind: 'failed'; exitCode: number | null; stdout: string; stderr: string; message: string }
  /** It did not finish in time and was killed. */
  | { kind: 'timeout'; message: string }
  /** The caller's signal aborted the run. */
  | { kind: 'cancelled' };

export interface RunOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/** Runs `program args`, never rejecting: every way it can end is an SmiResult. */
export function runNvidiaSmi(program: string, args: readonly string[], options: RunOptions): Promise<SmiResult> {
  if (options.signal?.aborted) return Promise.resolve({ kind: 'cancelled' });
  return new Promise((resolve) => {
    execFile(
      program,
      args,
      { encoding: 'utf8', timeout: options.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 8 * 1024 * 1024, signal: options.signal },
      (err, stdout, stderr) => {
        if (!err) return resolve({ kind: 'ok', stdout, stderr });
        if (options.signal?.aborted) return resolve({ kind: 'cancelled' });
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          const where = program.includes('/') ? `at ${program}` : `on PATH (${process.env.PATH ?? 'PATH is not set'})`;
          return resolve({ kind: 'missing', message: `nvidia-smi not found ${where}` });
        }
        if ((err as { killed?: boolean }).killed) {
          return resolve({ kind: 'timeout', message: `${program} did not answer within ${options.timeoutMs}ms and was killed` });
        }
        const exitCode = typeof code === 'number' ? code : null;
        const killedBy = (err as { signal?: string | null }).signal;
        const said = (stderr.trim() || stdout.trim())
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean)
          .join(' ');
        const how =
          exitCode !== null ? `exited with code ${exitCode}` : killedBy ? `was killed by ${killedBy}` : `could not be run (${err.message})`;
        resolve({ kind: 'failed', exitCode, stdout, stderr, message: `${program} ${how}${said ? `: ${said}` : ''}` });
      },
    );
  });
}
