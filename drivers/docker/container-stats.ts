/**
 * The Engine's stats samples as TaskResourceUsage. CPU percent is the container's share of the
 * host's CPU time between two samples, times the online CPUs (so 100% is one full core, as
 * `docker stats` prints it); memory is the resident set without the page cache, for cgroup v1
 * and v2 alike.
 */
import type { TaskResourceUsage } from '../../shared/driver.js';

/** The parts of a stats sample this driver reads (both cgroup versions). */
export interface EngineCpuStats {
  cpu_usage?: { total_usage?: number; usage_in_usermode?: number; usage_in_kernelmode?: number };
  system_cpu_usage?: number;
  online_cpus?: number;
}

export interface EngineStats {
  read?: string;
  cpu_stats?: EngineCpuStats;
  precpu_stats?: EngineCpuStats;
  memory_stats?: { usage?: number; stats?: Record<string, number | undefined> };
}

/**
 * One usage record. `previous` is the CPU sample of the last record sent: with it, the percent
 * covers the whole interval between records, not only the Engine's last second.
 */
export function toResourceUsage(taskId: string, sample: EngineStats, previous?: EngineCpuStats): TaskResourceUsage {
  const measured: string[] = [];
  const cpu: TaskResourceUsage['cpu'] = { percent: 0 };
  const now = sample.cpu_stats;
  const percent = cpuPercent(now, previous?.system_cpu_usage ? previous : sample.precpu_stats);
  if (percent !== undefined) {
    cpu.percent = percent;
    measured.push('cpu.percent');
  }
  // The Engine reports CPU time in nanoseconds.
  const user = now?.cpu_usage?.usage_in_usermode;
  const system = now?.cpu_usage?.usage_in_kernelmode;
  if (typeof user === 'number') {
    cpu.userMs = user / 1e6;
    measured.push('cpu.userMs');
  }
  if (typeof system === 'number') {
    cpu.systemMs = system / 1e6;
    measured.push('cpu.systemMs');
  }
  const memory: TaskResourceUsage['memory'] = { rssBytes: 0 };
  const rss = rssBytes(sample.memory_stats);
  if (rss !== undefined) {
    memory.rssBytes = rss;
    measured.push('memory.rssBytes');
  }
  if (typeof sample.memory_stats?.usage === 'number') {
    memory.usageBytes = sample.memory_stats.usage;
    measured.push('memory.usageBytes');
  }
  const read = sample.read ? Date.parse(sample.read) : NaN;
  return { taskId, timestamp: Number.isFinite(read) && read > 0 ? read : Date.now(), cpu, memory, measured };
}

/** Undefined when there is no earlier sample to compare with (the Engine's first one). */
export function cpuPercent(now: EngineCpuStats | undefined, before: EngineCpuStats | undefined): number | undefined {
  const total = now?.cpu_usage?.total_usage;
  const system = now?.system_cpu_usage;
  const totalBefore = before?.cpu_usage?.total_usage;
  const systemBefore = before?.system_cpu_usage;
  if (total === undefined || system === undefined || totalBefore === undefined || !systemBefore) return undefined;
  const systemDelta = system - systemBefore;
  if (systemDelta <= 0) return 0;
  const cpus = now?.online_cpus || 1;
  return Math.max(0, ((total - totalBefore) / systemDelta) * cpus * 100);
}

/** cgroup v1: `total_rss` (or `rss`); v2: `anon`; else usage less the page cache. */
export function rssBytes(memory: EngineStats['memory_stats']): number | undefined {
  const stats = memory?.stats ?? {};
  const direct = stats.total_rss ?? stats.rss ?? stats.anon;
  if (typeof direct === 'number') return direct;
  if (typeof memory?.usage !== 'number') return undefined;
  const cache = stats.total_cache ?? stats.cache ?? stats.inactive_file ?? 0;
  return Math.max(0, memory.usage - cache);
}
