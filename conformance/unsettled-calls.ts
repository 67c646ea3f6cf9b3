/**
 * Whether a plugin settles what the host cancels. The host stops waiting for a cancelled call
 * at once, so a plugin that ignores its AbortSignal looks fine from outside; inside, the call
 * runs on for ever and holds what it holds. Only the worker can tell (its diagnostics list the
 * calls and streams in the plugin's hands), so the suites open each method that takes a signal,
 * abort it, and ask the worker.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { InFlight, WorkerDiagnostics } from '../plugin-loader/protocol.js';

/** How long a cancelled call may take to settle: generous, for a busy machine; honouring the signal takes a millisecond. */
export const settleBoundMs = 3_000;

type Diagnose = () => Promise<WorkerDiagnostics>;

/** The ids the worker has in flight now: calls opened later are told apart from them. */
export async function inFlightIds(diagnose: Diagnose): Promise<Set<number>> {
  return new Set((await diagnose()).inFlight.map((c) => c.id));
}

/**
 * Polls until the plugin has a call or stream of each of `methods` in its hands that was not
 * among `before`, or `boundMs` passes; returns the new ones.
 */
export async function opened(diagnose: Diagnose, methods: readonly string[], before: Set<number>, boundMs = 10_000): Promise<InFlight[]> {
  const deadline = performance.now() + boundMs;
  for (;;) {
    const fresh = (await diagnose()).inFlight.filter((c) => !before.has(c.id) && methods.includes(c.method));
    if (methods.every((m) => fresh.some((c) => c.method === m)) || performance.now() >= deadline) return fresh;
    await sleep(20);
  }
}

/** After the abort: polls until none of `calls` is in flight, or `boundMs` passes; returns those that are. */
export async function stillInFlight(diagnose: Diagnose, calls: readonly InFlight[], boundMs = settleBoundMs): Promise<InFlight[]> {
  const ids = new Set(calls.map((c) => c.id));
  const deadline = performance.now() + boundMs;
  for (;;) {
    const left = (await diagnose()).inFlight.filter((c) => ids.has(c.id));
    if (left.length === 0 || performance.now() >= deadline) return left;
    await sleep(50);
  }
}

/** "waitTask() and taskStats() (a stream) had not settled 3s after their AbortSignal aborted: ..." */
export function describeUnsettled(left: readonly InFlight[], boundMs = settleBoundMs): string {
  const names = [...new Set(left.map((c) => `${c.method}()${c.kind === 'stream' ? ' (a stream)' : ''}`))];
  const list = names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} and ${names.at(-1)!}`;
  return (
    `${list} had not settled ${boundMs / 1000}s after ${names.length === 1 ? 'its' : 'their'} AbortSignal aborted: ` +
    `pass the signal (the argument after the declared ones) on to what the method waits for, or listen for its 'abort' event and ` +
    `return or throw at once; a cancelled call that never settles keeps its memory, timers and handles for ever`
  );
}
