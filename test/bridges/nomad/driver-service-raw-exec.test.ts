// Nomad's Driver service over raw_exec, called as Nomad's client calls it: real processes, output
// read from real FIFOs, stop with a timeout and a signal, stats, and a task recovered from its
// handle by a fresh "plugin process".
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { cancel, duration, nomadTask, serveDriver, take } from './nomad-driver-harness.js';

const sh = (script: string) => ({ command: 'sh', args: ['-c', script], cwd: null });

t.test('schema, capabilities and a fingerprint with typed attributes', async (t) => {
  const { peer } = await serveDriver(t, 'raw_exec');
  const { spec } = await peer.call<{ spec: { object: { attributes: Record<string, unknown> } } }>('TaskConfigSchema');
  t.match(spec.object.attributes.command, { Attr: { name: 'command', type: 'string', required: true } });
  const { capabilities } = await peer.call<{ capabilities: Record<string, unknown> }>('Capabilities');
  t.match(capabilities, { send_signals: true, exec: true, fs_isolation: 'NONE', mount_configs: 'NO_MOUNTS' });
  const stream = peer.stream('Fingerprint');
  const [first] = await take(stream, 1);
  cancel(stream);
  t.match(first, { health: 'HEALTHY' });
  t.same((first!.attributes as Record<string, unknown>)['driver.raw_exec'], { bool_val: true, value: 'bool_val', unit: '' });
});

t.test('a task that exits with a code: its output through the FIFOs, WaitTask, InspectTask, DestroyTask', async (t) => {
  const { peer } = await serveDriver(t, 'raw_exec');
  const { task, stdout, stderr } = nomadTask(t, 'web', sh('echo "out $NOMAD_TASK_NAME $TASKHOST_TASK_NAME"; echo oops >&2; exit 3'));
  const started = await peer.call<{
    result: string;
    handle: { version: number; state: string; driver_state: Buffer; config: { id: string } };
  }>('StartTask', { task });
  t.equal(started.result, 'SUCCESS');
  t.equal(started.handle.config.id, task.id);
  t.equal(started.handle.state, 'RUNNING');
  t.ok(started.handle.version >= 1, "version 0 is Nomad's");
  t.equal(JSON.parse(started.handle.driver_state.toString()).config.id, task.id, 'driver_state is the taskhost handle');
  const waited = await peer.call<{ result: Record<string, unknown>; err: string }>('WaitTask', { task_id: task.id });
  t.same(waited, { result: { exit_code: 3, signal: 0, oom_killed: false }, err: '' });
  t.equal(await stdout, 'out web web\n', 'stdout arrives in the FIFO, which is closed after the exit');
  t.equal(await stderr, 'oops\n');
  const { task: status } = await peer.call<{ task: Record<string, unknown> }>('InspectTask', { task_id: task.id });
  t.match(status, { id: task.id, name: 'web', state: 'EXITED', result: { exit_code: 3 } });
  t.ok(Number((status.completed_at as { seconds: string }).seconds) > 0);
  await peer.call('DestroyTask', { task_id: task.id, force: false });
  await t.rejects(peer.call('WaitTask', { task_id: task.id }), { code: grpc.status.NOT_FOUND });
});

t.test('a bad task config is InvalidArgument naming the HCL path', async (t) => {
  const { peer } = await serveDriver(t, 'raw_exec');
  const { task } = nomadTask(t, 'bad', { command: null, args: ['x'], cwd: null });
  await t.rejects(peer.call('StartTask', { task }), { code: grpc.status.INVALID_ARGUMENT, details: /command/ });
});

t.test('StopTask: SIGINT by default, then the timeout kills a task that ignores its signal', async (t) => {
  const { peer } = await serveDriver(t, 'raw_exec');
  const polite = nomadTask(t, 'polite', sh('trap "echo stopping; exit 7" INT; echo ready; while :; do sleep 0.1; done'));
  await peer.call('StartTask', { task: polite.task });
  await peer.call('StopTask', { task_id: polite.task.id, timeout: duration(10_000), signal: '' });
  t.match(await peer.call('WaitTask', { task_id: polite.task.id }), { result: { exit_code: 7, signal: 0 } });
  t.equal(await polite.stdout, 'ready\nstopping\n');

  const stubborn = nomadTask(t, 'stubborn', sh('trap "" TERM; while :; do sleep 0.1; done'));
  await peer.call('StartTask', { task: stubborn.task });
  await new Promise((r) => setTimeout(r, 300)); // let sh install its trap
  await peer.call('StopTask', { task_id: stubborn.task.id, timeout: duration(300), signal: 'SIGTERM' });
  t.match(await peer.call('WaitTask', { task_id: stubborn.task.id }), { result: { exit_code: 137, signal: 9 } });
});

t.test('SignalTask, ExecTask, TaskEvents and TaskStats with timestamps', async (t) => {
  const { peer } = await serveDriver(t, 'raw_exec');
  const events = peer.stream('TaskEvents');
  t.teardown(() => cancel(events));
  const seen: Record<string, unknown>[] = [];
  events.on('data', (e: Record<string, unknown>) => seen.push(e));
  events.on('error', () => undefined);
  const { task, stdout } = nomadTask(t, 'sig', sh('trap "echo got-hup" HUP; while :; do sleep 0.1; done'));
  await peer.call('StartTask', { task });
  await new Promise((r) => setTimeout(r, 300)); // let sh install its trap
  await peer.call('SignalTask', { task_id: task.id, signal: 'SIGHUP' });
  const exec = await peer.call<{ stdout: Buffer; stderr: Buffer; result: Record<string, unknown> }>('ExecTask', {
    task_id: task.id,
    command: ['sh', '-c', 'echo in-task; exit 2'],
    timeout: duration(10_000),
  });
  t.equal(exec.stdout.toString(), 'in-task\n');
  t.match(exec.result, { exit_code: 2 });

  const statsStream = peer.stream('TaskStats', { task_id: task.id, collection_interval: duration(100) });
  const stats = await take(statsStream, 3);
  cancel(statsStream);
  const times = stats.map((s) => {
    const ts = (s.stats as { timestamp: { seconds: string; nanos: number } }).timestamp;
    return Number(ts.seconds) * 1000 + ts.nanos / 1e6;
  });
  for (const ms of times) t.ok(ms > Date.now() - 60_000 && ms <= Date.now() + 1000, 'every message has a real timestamp');
  t.ok(times[2]! > times[0]!, 'timestamps move on');
  const usage = (
    stats[2]!.stats as { agg_resource_usage: { memory: { rss: string; measured_fields: string[] }; cpu: { measured_fields: string[] } } }
  ).agg_resource_usage;
  t.ok(Number(usage.memory.rss) > 0, 'rss measured');
  t.ok(usage.memory.measured_fields.includes('RSS'));
  t.ok(usage.cpu.measured_fields.includes('USER_MODE'), 'user mode is a rate from two samples');

  await peer.call('StopTask', { task_id: task.id, timeout: duration(5_000), signal: 'SIGKILL' });
  await peer.call('WaitTask', { task_id: task.id });
  t.match(await stdout, /got-hup\n/);
  await peer.call('DestroyTask', { task_id: task.id, force: true });
  t.ok(
    seen.some((e) => e.task_id === task.id && typeof e.message === 'string' && Number((e.timestamp as { seconds: string }).seconds) > 0),
  );
});

t.test('a fresh plugin process recovers a running task from its handle, and its output keeps flowing', async (t) => {
  const first = await serveDriver(t, 'raw_exec');
  const { task, stdout } = nomadTask(t, 'long', sh('i=0; while [ $i -lt 100 ]; do echo tick $i; i=$((i+1)); sleep 0.05; done; exit 5'));
  const { handle } = await first.peer.call<{ handle: Record<string, unknown> }>('StartTask', { task });
  await new Promise((r) => setTimeout(r, 500));
  await first.stop(); // as after Nomad's Shutdown, or a crash: the task keeps running

  const second = await serveDriver(t, 'raw_exec');
  await t.rejects(second.peer.call('RecoverTask', { handle: { ...handle, config: { ...(handle.config as object), id: '' } } }), {
    code: grpc.status.INVALID_ARGUMENT,
  });
  await second.peer.call('RecoverTask', { handle }); // Nomad sends no task_id
  await second.peer.call('RecoverTask', { handle }); // a no-op for a task it tracks
  t.match(await second.peer.call('WaitTask', { task_id: task.id }), { result: { exit_code: 5 } });
  const lines = (await stdout).trim().split('\n');
  t.same(
    lines,
    Array.from({ length: 100 }, (_, i) => `tick ${i}`),
    'every line once, across the restart',
  );
});
