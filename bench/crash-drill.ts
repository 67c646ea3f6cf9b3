/**
 * The crash drill: many mock tasks running, a waitTask open on each, then the mock driver's
 * worker killed. The DriverManager promises that no task is lost: the supervisor restarts the
 * worker, the manager calls recoverTask for every handle, and every waiter gets its own task's
 * exit result as if nothing had happened. This counts what actually happened.
 */
import { parseTaskSpec } from '../drivers/prepare-task.js';
import type { Supervision } from '../plugin-loader/agent-config.js';
import type { ExitResult, TaskConfig } from '../shared/driver.js';
import { startTaskHost } from './task-host.js';

export interface CrashDrillOptions {
  tasks: number;
  /** Task i runs for runForMs + i * runForStepMs, so the exits are spread out, not one burst. */
  runForMs: number;
  runForStepMs: number;
  supervision: Supervision;
  /** A waiter still open this long after the last task should have exited counts as hung. */
  graceMs: number;
}

export interface CrashDrillResult {
  tasks: number;
  /** Calls and streams the host had in flight to the mock driver when its worker died. */
  inFlightAtKill: number | undefined;
  /** Distinct drill tasks the manager reported recovered, and how many 'recovered' events came. */
  recovered: number;
  recoveredEvents: number;
  /** Tasks the manager reported lost, with why. */
  lost: string[];
  /** Waiters that rejected, with the error. */
  waiterErrors: string[];
  /** Waiters that resolved with another exit result than their task's script. */
  wrongResults: string[];
  /** Waiters still open at the deadline. */
  hung: number;
  /** Live handles the manager held once every task had been recovered. */
  handlesAfterRecovery: number | undefined;
  /** Milliseconds from the kill to the loader's 'restarted', to the last 'recovered', to the last waiter settling. */
  restartedMs: number | undefined;
  allRecoveredMs: number | undefined;
  allSettledMs: number | undefined;
  verdict: 'PASS' | 'MISS';
}

const driver = 'mock';

/** The exit each task is scripted to: distinct codes, so a waiter given another task's result shows. */
const expectedExit = (i: number): ExitResult => ({ exitCode: i % 256, signal: null, oomKilled: false });

export async function runCrashDrill(options: CrashDrillOptions): Promise<CrashDrillResult> {
  // A fresh host per drill: each kill is the plugin's first crash, so each gets the same backoff.
  const host = await startTaskHost({ drivers: [driver], supervision: options.supervision });
  const { loader, manager } = host;
  let tasks: TaskConfig[] = [];
  try {
    tasks = await Promise.all(
      Array.from({ length: options.tasks }, async (_, i) => {
        const { exitCode } = expectedExit(i);
        const runFor = `${options.runForMs + i * options.runForStepMs}ms`;
        const task = await manager.prepare(parseTaskSpec({ name: `drill-${i}`, driver, config: { runFor, exitCode } }));
        await manager.startTask(task);
        return task;
      }),
    );
    const ids = new Set(tasks.map((t) => t.id));

    let killedAt = Number.NaN;
    const since = () => performance.now() - killedAt;
    const result: Omit<CrashDrillResult, 'verdict'> = {
      tasks: tasks.length,
      inFlightAtKill: undefined,
      recovered: 0,
      recoveredEvents: 0,
      lost: [],
      waiterErrors: [],
      wrongResults: [],
      hung: 0,
      handlesAfterRecovery: undefined,
      restartedMs: undefined,
      allRecoveredMs: undefined,
      allSettledMs: undefined,
    };
    const recovered = new Set<string>();
    manager.on('recovered', (name, id) => {
      if (name !== driver || !ids.has(id)) return;
      result.recoveredEvents++;
      recovered.add(id);
      if (recovered.size === ids.size && result.allRecoveredMs === undefined) {
        result.allRecoveredMs = since();
        result.handlesAfterRecovery = manager.tasks().filter((h) => ids.has(h.config.id)).length;
      }
    });
    manager.on('lost', (name, id, error) => {
      if (name === driver) result.lost.push(`${id}: ${error.code}: ${error.message}`);
    });
    loader.on('crashed', (name, _error, inFlight) => {
      if (name === driver) result.inFlightAtKill ??= inFlight;
    });
    loader.on('restarted', (name) => {
      if (name === driver) result.restartedMs ??= since();
    });

    let open = tasks.length;
    const waiters = tasks.map((task, i) =>
      manager
        .waitTask(task.id)
        .then(
          (exit) => {
            const want = expectedExit(i);
            if (exit.exitCode !== want.exitCode || exit.signal !== want.signal || exit.err !== undefined) {
              result.wrongResults.push(`${task.id}: got ${JSON.stringify(exit)}, expected ${JSON.stringify(want)}`);
            }
          },
          (err: unknown) => {
            const e = err as { code?: string; message?: string };
            result.waiterErrors.push(`${task.id}: ${e.code ?? 'ERROR'}: ${e.message ?? String(err)}`);
          },
        )
        .finally(() => {
          if (--open === 0) result.allSettledMs = since();
        }),
    );
    // A barrier rather than a sleep: calls reach the worker in order over one port, so once a
    // call made after the waiters has been answered, every waitTask is open inside the driver.
    await manager.inspectTask(tasks[tasks.length - 1]!.id);

    killedAt = performance.now();
    await loader.get(driver).kill('killed by the crash drill');

    const lastExitMs = options.runForMs + (tasks.length - 1) * options.runForStepMs;
    const deadline = new Promise<'deadline'>((resolve) => setTimeout(resolve, lastExitMs + options.graceMs, 'deadline').unref());
    if ((await Promise.race([Promise.all(waiters), deadline])) === 'deadline') result.hung = open;
    result.recovered = recovered.size;
    const pass =
      result.recovered === tasks.length &&
      result.lost.length === 0 &&
      result.waiterErrors.length === 0 &&
      result.wrongResults.length === 0 &&
      result.hung === 0;
    return { ...result, verdict: pass ? 'PASS' : 'MISS' };
  } finally {
    // Destroy what is left so nothing of one drill runs on into the next; a task the manager
    // already dropped (lost) simply fails to destroy.
    await Promise.all(tasks.map((t) => manager.destroyTask(t.id).catch(() => undefined)));
    await host.close();
  }
}
