/** Runs the CLI in-process and captures what it prints. */
import { main, type CliIO } from '../../cli/main.js';

export interface CliOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** `live`, when given, holds what has been printed so far while the command runs. */
export async function runCli(args: string[], interrupts?: CliIO['interrupts'], live?: Omit<CliOutput, 'code'>): Promise<CliOutput> {
  const out = live ?? { stdout: '', stderr: '' };
  const code = await main(args, {
    stdout: { write: (s: string | Uint8Array) => (out.stdout += s.toString()) },
    stderr: { write: (s: string | Uint8Array) => (out.stderr += s.toString()) },
    ...(interrupts ? { interrupts } : {}),
  });
  return { code, stdout: out.stdout, stderr: out.stderr };
}
