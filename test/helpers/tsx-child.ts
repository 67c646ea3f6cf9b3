// Children that run taskhost from its sources, under tsx: the agent CLI of the crash tests, the
// bridges' `nomad serve` and `kubelet serve`. They record no coverage: a child's record holds
// tsx's compile of each file, and merged with tap's compile of the same file offset by offset it
// marks covered code uncovered (agent/filter.ts at 68% with every line tested). What such a
// child runs is covered in process by the tests of its parts.
import { createRequire } from 'node:module';

/** tsx's loader, for `node --import <tsxLoader> file.ts`. */
export const tsxLoader = createRequire(import.meta.url).resolve('tsx');

/** The environment of such a child: this process's, without coverage, with `extra` on top. */
export function tsxChildEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...extra };
}
