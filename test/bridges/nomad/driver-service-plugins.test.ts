// Nomad's Driver service over mock (scripted failures), the third-party countdown example and
// docker (busybox, network none): what works for raw_exec works for every driver.
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { recoverableErrorType } from '../../../bridges/nomad/grpc-error.js';
import { requireDocker } from '../../helpers/docker.js';
import { duration, nomadTask, serveDriver } from './nomad-driver-harness.js';

t.test('mock: a recoverable start failure is FailedPrecondition with a RecoverableError detail; a fatal one has none', async (t) => {
  const { peer } = await serveDriver(t, 'mock');
  const retry = nomadTask(t, 'flaky', { start_error: 'not yet', start_error_recoverable: true });
  const err = (await peer.call('StartTask', { task: retry.task }).catch((e: unknown) => e)) as grpc.ServiceError;
  t.equal(err.code, grpc.status.FAILED_PRECONDITION);
  t.match(err.details, /not yet/);
  const [details] = err.metadata.get('grpc-status-details-bin') as Buffer[];
  t.ok(details, 'grpc-status-details-bin is set');
  const text = details!.toString('latin1');
  t.ok(text.includes(recoverableErrorType), 'an Any of type RecoverableError');
  t.ok(details!.includes(Buffer.from([0x12, 0x02, 0x08, 0x01])), 'whose value is {recoverable: true}');

  const fatal = nomadTask(t, 'broken', { start_error: 'never', start_error_recoverable: false });
  const err2 = (await peer.call('StartTask', { task: fatal.task }).catch((e: unknown) => e)) as grpc.ServiceError;
  t.not(err2.code, grpc.status.OK);
  t.same(err2.metadata.get('grpc-status-details-bin'), [], 'no RecoverableError: Nomad fails the task');
});

t.test('mock: output, exit code and oom through the bridge', async (t) => {
  const { peer } = await serveDriver(t, 'mock');
  const { task, stdout, stderr } = nomadTask(t, 'scripted', {
    run_for: '100ms',
    exit_code: 9,
    oom_killed: true,
    stdout: 'hello\n',
    stderr: 'warn\n',
  });
  await peer.call('StartTask', { task });
  t.match(await peer.call('WaitTask', { task_id: task.id }), { result: { exit_code: 9, oom_killed: true } });
  t.equal(await stdout, 'hello\n');
  t.equal(await stderr, 'warn\n');
  await peer.call('DestroyTask', { task_id: task.id, force: true });
});

t.test('countdown (a third-party driver): ticks reach the FIFO, the exit code comes back, recovery from driver_state', async (t) => {
  const plugins = { countdown: { config: { tickMs: 50 } } };
  const first = await serveDriver(t, 'countdown', { plugins, builtin: false });
  const { task, stdout } = nomadTask(t, 'count', { seconds: 10, exit_code: 4, message: 'bye' });
  const { handle } = await first.peer.call<{ handle: Record<string, unknown> }>('StartTask', { task });
  await first.stop();
  const second = await serveDriver(t, 'countdown', { plugins, builtin: false });
  await second.peer.call('RecoverTask', { handle });
  t.match(await second.peer.call('WaitTask', { task_id: task.id }), { result: { exit_code: 4 } });
  t.match(await stdout, /bye\n$/);
});

t.test('docker: busybox with network none, output through the FIFO, stop with a timeout', async (t) => {
  if (!(await requireDocker(t))) return;
  const { peer } = await serveDriver(t, 'docker');
  const quick = nomadTask(t, 'box', {
    image: 'busybox:1.36',
    command: 'sh',
    args: ['-c', 'echo from-busybox; exit 2'],
    network_mode: 'none',
  });
  await peer.call('StartTask', { task: quick.task });
  t.match(await peer.call('WaitTask', { task_id: quick.task.id }), { result: { exit_code: 2 } });
  t.equal(await quick.stdout, 'from-busybox\n');
  await peer.call('DestroyTask', { task_id: quick.task.id, force: true });

  const long = nomadTask(t, 'sleeper', { image: 'busybox:1.36', command: 'sleep', args: ['600'], network_mode: 'none' });
  await peer.call('StartTask', { task: long.task });
  const { task: status } = await peer.call<{ task: Record<string, unknown> }>('InspectTask', { task_id: long.task.id });
  t.equal(status.state, 'RUNNING');
  await peer.call('StopTask', { task_id: long.task.id, timeout: duration(1_000), signal: 'SIGTERM' });
  const waited = await peer.call<{ result: { exit_code: number } }>('WaitTask', { task_id: long.task.id });
  t.ok(waited.result.exit_code !== 0, 'stopped, not exited by itself');
  await peer.call('DestroyTask', { task_id: long.task.id, force: true });
});
