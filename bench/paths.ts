/**
 * Where the benchmark's files are. The benchmark runs compiled, from dist/bench/ (worker and
 * child-process entries must be .js on Node 20), but the plugin fixture is plain JavaScript that
 * tsc does not copy, so it is read from the source tree.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/bench/paths.js -> the repository root. */
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** The folder discovery scans: it holds the one benchmark plugin. */
export const benchPluginDir = path.join(repoRoot, 'bench', 'fixtures');
/** The `taskhost.name` of the benchmark plugin. */
export const benchPluginName = 'rpc-bench';

/** A compiled module next to this one, e.g. siblingFile('grpc-server') for spawn or new Worker. */
export function siblingFile(name: string): string {
  return fileURLToPath(new URL(`./${name}.js`, import.meta.url));
}
