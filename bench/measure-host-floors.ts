/**
 * Explanatory floors for the driver benchmark: the pieces a raw_exec lifecycle is made of that
 * the peer does not pay, timed on their own so the report can say where the host's time goes.
 */
import { readdir } from 'node:fs/promises';
import { groupMembers } from '../drivers/raw_exec/group-usage.js';
import { summarize, type Summary } from './stats.js';
import type { TaskHost } from './task-host.js';

export interface HostFloors {
  /** ms: one call to the raw_exec worker and back (capabilities: no work in the driver). */
  callRoundTrip: Summary;
  /** ms: raw_exec's /proc walk, which its destroyTask runs to find what is left of a task's group. */
  procWalk: Summary;
  /** Processes on the machine when the walk was timed: the walk reads every one's stat file. */
  processes: number;
}

/** Times each floor `samples` times, after a tenth as many discarded warm-up rounds. */
export async function measureHostFloors(host: TaskHost, samples: number): Promise<HostFloors> {
  const driver = host.loader.get('raw_exec');
  const time = async (work: () => Promise<unknown>): Promise<Summary> => {
    for (let i = 0; i < Math.ceil(samples / 10); i++) await work();
    const ms: number[] = [];
    for (let i = 0; i < samples; i++) {
      const start = performance.now();
      await work();
      ms.push(performance.now() - start);
    }
    return summarize(ms);
  };
  const callRoundTrip = await time(() => driver.call('capabilities'));
  // Our own pid as the group: what matters is the walk over all of /proc, not who is in the group.
  const procWalk = await time(() => groupMembers(process.pid));
  const processes = (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).length;
  return { callRoundTrip, procWalk, processes };
}
