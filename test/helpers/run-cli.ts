/** Runs the CLI in-process and captures what it prints. */
import { main, type CliIO } from '../../cli/main.js';

export async function runCli(args: string[], interrupts?: CliIO['interrupts']): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: { write: (s: string | Uint8Array) => (stdout += s.toString()) },
    stderr: { write: (s: string | Uint8Array) => (stderr += s.toString()) },
    ...(interrupts ? { interrupts } : {}),
  });
  return { code, stdout, stderr };
}
