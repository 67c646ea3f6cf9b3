/**
 * The agent of the scale benchmark, a child process: the same `Agent` that `taskhost agent`
 * starts, plus what the agent does not do by itself yet: a stats stream per task. The agent
 * streams no task stats on its own (no route, no collector), so the benchmark opens one
 * `taskStats` stream per task through the driver manager's DriverClient, in this process, on
 * the command of its parent (IPC): the memory and CPU the parent reads from /proc for this
 * process then include following each task's logs (the Docker driver does that by itself) and
 * streaming its stats.
 *
 *   node dist/bench/stats-agent.js <agent.json>
 */
import { pino } from 'pino';
import { Agent } from '../agent/agent.js';
import { loadAgentConfig } from '../plugin-loader/agent-config.js';
import type { StatsCommand, StatsReport } from './agent-process.js';

const config = await loadAgentConfig(process.argv[2]!);
const agent = await Agent.start({ config, logger: pino({ level: config.logLevel ?? 'warn' }, pino.destination(2)) });
// The line AgentProcess waits for, as `taskhost agent` prints it.
process.stderr.write(`taskhost: agent listening on ${agent.addresses.socket}\n`);

const streams = new Map<string, AbortController>();
let samples = 0;
let errors: string[] = [];

function openStream(id: string, intervalMs: number): void {
  if (streams.has(id)) return;
  const handle = agent.manager.tasks().find((h) => h.config.id === id);
  if (!handle) {
    errors.push(`${id}: the driver manager has no live handle`);
    return;
  }
  const controller = new AbortController();
  streams.set(id, controller);
  void (async () => {
    try {
      for await (const _usage of agent.manager.driver(handle.config.driver).taskStats(id, intervalMs, controller.signal)) samples++;
    } catch (err) {
      if (!controller.signal.aborted) errors.push(`${id}: ${(err as Error).message}`);
    } finally {
      if (streams.get(id) === controller) streams.delete(id);
    }
  })();
}

function report(): StatsReport {
  const out = { open: streams.size, samples, errors };
  samples = 0;
  errors = [];
  return out;
}

process.on('message', (message: StatsCommand) => {
  if (message.type === 'stats') for (const id of message.ids) openStream(id, message.intervalMs);
  else if (message.type === 'stats-stop') {
    for (const controller of streams.values()) controller.abort();
    streams.clear();
  }
  process.send!(report());
});

let closing: Promise<void> | undefined;
function shutdown(): void {
  closing ??= (async () => {
    for (const controller of streams.values()) controller.abort();
    await agent.close();
    process.exit(0);
  })();
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
// The benchmark went away: stop as the agent stops, leaving the tasks to the benchmark's cleanup.
process.once('disconnect', shutdown);
