/**
 * What a plugin's worker still holds when it should be idle: timers that never end, sockets,
 * child processes, file watchers. A leaked setInterval per task costs nothing in a test and
 * brings a node down weeks later; the worker's diagnostics show it at once.
 *
 * Timers are judged one by one (the suite has the worker follow them all, unref'd ones too):
 * a setInterval never ends, and a setTimeout created while the plugin should be idle belongs to
 * a loop that keeps re-arming itself; a setTimeout created before that simply waits to fire
 * (a request timeout, a deferred clean-up) and ends by itself. Everything else is counted by
 * kind against a baseline.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PluginInstance } from '../plugin-loader/plugin-instance.js';
import type { PendingTimer, WorkerDiagnostics } from '../plugin-loader/protocol.js';

/** How long to wait for what is legitimately on its way out (a socket closing, a last timer firing). */
export const leakGraceMs = 5_000;
/** How long to watch for a setTimeout loop re-arming itself, at least. */
export const loopWatchMs = 2_000;

/** Kinds that come and go on their own (an fs call in flight, a queued callback): never a leak. */
const transient = new Set(['Immediate', 'FSReqCallback', 'FSReqPromise', 'FileHandleCloseReq', 'CloseReq']);

export interface Leak {
  /** Resources above the baseline, by kind (timers are judged apart when the worker follows them). */
  resources: Record<string, number>;
  /** Timers that would not end by themselves, grouped by what they are and which call created them. */
  timers: { origin: string; repeats: boolean; count: number }[];
}

export interface LeakOptions {
  /** The worker's counts to measure against. */
  baseline: Record<string, number>;
  /** Whether a timer created by this call may still run (init()'s background loop, while the plugin is up). */
  mayRun?: (origin: string) => boolean;
  graceMs?: number;
  watchMs?: number;
}

/**
 * Watches the worker for at least `watchMs` (a setTimeout loop shows itself by re-arming) and at
 * most `graceMs` (stragglers go), and returns what is still held then; `undefined` when nothing is.
 */
export async function leakedResources(diagnose: () => Promise<WorkerDiagnostics>, options: LeakOptions): Promise<Leak | undefined> {
  const { baseline, mayRun = () => false, graceMs = leakGraceMs, watchMs = loopWatchMs } = options;
  const t0 = performance.now();
  for (;;) {
    const report = await diagnose();
    const watched = performance.now() - t0;
    const leak = leakIn(report, baseline, mayRun, watched);
    if ((!leak && watched >= watchMs) || watched >= graceMs) return leak;
    await sleep(100);
  }
}

function leakIn(
  d: WorkerDiagnostics,
  baseline: Record<string, number>,
  mayRun: (origin: string) => boolean,
  watchedMs: number,
): Leak | undefined {
  const resources: Record<string, number> = {};
  for (const [kind, n] of Object.entries(heldBeyondStreams(d))) {
    if (transient.has(kind) || (kind === 'Timeout' && d.timersTracked)) continue;
    if (n > (baseline[kind] ?? 0)) resources[kind] = n - (baseline[kind] ?? 0);
  }
  const groups = new Map<string, Leak['timers'][number]>();
  for (const timer of d.timers) {
    if (mayRun(timer.origin) || !lasting(timer, watchedMs)) continue;
    const key = `${timer.origin}\0${timer.repeats}`;
    const group = groups.get(key) ?? { origin: timer.origin, repeats: timer.repeats, count: 0 };
    group.count++;
    groups.set(key, group);
  }
  const timers = [...groups.values()];
  return Object.keys(resources).length || timers.length ? { resources, timers } : undefined;
}

/** An interval, or a setTimeout made after the watch began: one that would not end by itself. */
function lasting(timer: PendingTimer, watchedMs: number): boolean {
  return timer.repeats || timer.ageMs < watchedMs;
}

/**
 * The resources by kind, less the port of each stream the plugin has not settled: that one is
 * the unsettled stream's finding (see unsettled-calls.ts), not a second leak.
 */
function heldBeyondStreams(d: WorkerDiagnostics): Record<string, number> {
  const streams = d.inFlight.filter((c) => c.kind === 'stream').length;
  if (streams === 0 || !d.resources.MessagePort) return d.resources;
  return { ...d.resources, MessagePort: Math.max(0, d.resources.MessagePort - streams) };
}

const nouns: Record<string, [string, string]> = {
  Timeout: ['timer', 'timers'],
  ProcessWrap: ['child process', 'child processes'],
  TCPSocketWrap: ['TCP socket', 'TCP sockets'],
  TCPServerWrap: ['TCP server', 'TCP servers'],
  PipeWrap: ['pipe or unix socket', 'pipes or unix sockets'],
  PipeServerWrap: ['unix socket server', 'unix socket servers'],
  UDPWrap: ['UDP socket', 'UDP sockets'],
  FSEventWrap: ['file watcher', 'file watchers'],
  StatWatcher: ['file poller', 'file pollers'],
  SignalWrap: ['signal listener', 'signal listeners'],
  TTYWrap: ['terminal stream', 'terminal streams'],
  MessagePort: ['MessagePort', 'MessagePorts'],
  ConnectWrap: ['connection being opened', 'connections being opened'],
  GetAddrInfoReqWrap: ['DNS lookup', 'DNS lookups'],
};

/** "2 timers (Timeout, setInterval) created in startTask(), 1 child process (ProcessWrap)". */
export function describeLeak(leak: Leak): string {
  const timers = leak.timers
    .sort((a, b) => b.count - a.count)
    .map(({ origin, repeats, count }) => {
      const what = repeats ? 'setInterval' : 'a setTimeout that keeps re-arming';
      const where = origin ? `created in ${origin}()` : 'created outside any call (at import)';
      return `${count} ${count === 1 ? 'timer' : 'timers'} (Timeout, ${what}) ${where}`;
    });
  const others = Object.entries(leak.resources)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, n]) => {
      const [one, many] = nouns[kind] ?? ['resource', 'resources'];
      return `${n} ${n === 1 ? one : many} (${kind})`;
    });
  return [...timers, ...others].join(', ');
}

/**
 * Closes the plugin (shutdown(), then the worker ends) and looks at the worker's resources in
 * between, against what it held before the plugin was imported. `undefined`: nothing left over;
 * `'not running'`: there was no worker to look at; otherwise what to tell the author.
 */
export async function shutdownLeftovers(instance: PluginInstance, startedBy: string): Promise<string | 'not running' | undefined> {
  let looked = false;
  let leak: Leak | undefined;
  await instance.close({
    afterShutdown: async (worker) => {
      const diagnose = () => worker.diagnostics();
      leak = await leakedResources(diagnose, { baseline: (await diagnose()).resourcesBeforeImport });
      looked = true;
    },
  });
  if (!looked) return 'not running';
  if (!leak) return undefined;
  const how = instance.implements('shutdown') ? 'stop them in shutdown()' : 'implement shutdown() and stop them there';
  return `${describeLeak(leak)} still active after shutdown(), more than the worker held before the plugin was imported: ${how}, everything init() and ${startedBy} started`;
}
