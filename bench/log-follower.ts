/**
 * The scale benchmark's peer: a helper process per task, as Nomad runs one (docker_logger,
 * logmon) for each task it follows. This is about the smallest such helper Node allows: it
 * follows one container's logs through dockerode and appends them to two files, nothing more.
 * Its memory, times the tasks, is what a helper-per-task design costs.
 *
 *   node dist/bench/log-follower.js <container id> <stdout file> <stderr file>
 *
 * Prints "following" on stdout once the Engine's log stream is open.
 */
import { createWriteStream } from 'node:fs';
import Dockerode from 'dockerode';

const [containerId, stdoutPath, stderrPath] = process.argv.slice(2);
if (!containerId || !stdoutPath || !stderrPath) {
  process.stderr.write('usage: log-follower.js <container id> <stdout file> <stderr file>\n');
  process.exit(2);
}
const docker = new Dockerode();
const stdout = createWriteStream(stdoutPath, { flags: 'a' });
const stderr = createWriteStream(stderrPath, { flags: 'a' });
const stream = await docker.getContainer(containerId).logs({ follow: true, stdout: true, stderr: true });
docker.modem.demuxStream(stream, stdout, stderr);
stream.on('end', () => process.exit(0));
process.stdout.write('following\n');
process.once('SIGTERM', () => process.exit(0));
