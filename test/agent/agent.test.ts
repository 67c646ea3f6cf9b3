// The agent in process: started on a data dir, driven over its real unix socket, refused a
// second time on the same data dir, closed with its task running and started again to find it.
import { EventEmitter } from 'node:events';
import { statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Agent } from '../../index.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import type { TaskRecord } from '../../agent/store-records.js';
import { main } from '../../cli/main.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';
import { request } from './agent-request.js';
import { freshDataDir, quiet } from './supervisor-helpers.js';

const builtinDirs = builtinPluginDirs.filter((d) => /raw_exec|mock$/.test(d));
const configFor = (dataDir: string) =>
  parseAgentConfig({
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: { ...fastSupervision, startTimeout: '60s' },
    plugins: { mock: { enabled: true } },
  });

const taskPath = (id: string, rest = '') => `/v1/tasks/${encodeURIComponent(id)}${rest}`;

t.test('an agent serves the task API on its socket, and its tasks outlive it', async (t) => {
  const dataDir = freshDataDir(t);
  const agent = await Agent.start({ config: configFor(dataDir), logger: quiet, builtinDirs });
  t.teardown(() => agent.close());
  const socket = agent.addresses.socket;
  t.equal(socket, path.join(dataDir, 'agent.sock'));
  t.equal(statSync(socket).mode & 0o777, 0o600);
  t.same((await request(socket, 'GET', '/v1/health')).json, { status: 'ok' });

  await t.rejects(
    Agent.start({ config: configFor(dataDir), logger: quiet, builtinDirs }),
    { code: 'DATA_DIR_LOCKED' },
    'one agent per data dir',
  );

  const quick = await request(socket, 'POST', '/v1/tasks', { name: 'quick', driver: 'mock', config: { exitCode: 4 } });
  t.equal(quick.status, 201);
  const quickId = (quick.json as TaskRecord).id;
  t.match((await request(socket, 'GET', taskPath(quickId, '/wait'))).json, { state: 'exited', exitResult: { exitCode: 4 } });

  const nap = (await request(socket, 'POST', '/v1/tasks', { name: 'nap', driver: 'raw_exec', config: { command: 'sleep', args: ['300'] } }))
    .json as TaskRecord;
  await new Promise<void>((resolve) => {
    const check = (r: TaskRecord) => r.id === nap.id && r.state === 'running' && (agent.supervisor.off('changed', check), resolve());
    agent.supervisor.on('changed', check);
    check(agent.supervisor.get('default', nap.id));
  });
  await agent.close();

  const again = await Agent.start({ config: configFor(dataDir), logger: quiet, builtinDirs });
  t.teardown(() => again.close());
  t.match((await request(socket, 'GET', taskPath(nap.id))).json, { state: 'running' }, 'recovered after the restart');
  t.match((await request(socket, 'GET', taskPath(quickId))).json, { state: 'exited', exitResult: { exitCode: 4 } }, 'not run again');
  t.equal((await request(socket, 'POST', taskPath(nap.id, '/stop'), { timeout: '10s' })).status, 202);
  t.match((await request(socket, 'GET', taskPath(nap.id, '/wait'))).json, { state: 'exited', exitResult: { signal: 'SIGTERM' } });
});

t.test('taskhost agent serves until SIGTERM', async (t) => {
  const dataDir = freshDataDir(t);
  const configFile = path.join(dataDir, 'agent.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      pluginDir: path.join(dataDir, 'no-plugins'),
      dataDir,
      supervision: fastSupervision,
      plugins: { mock: { enabled: true } },
    }),
  );
  const interrupts = new EventEmitter();
  let stderr = '';
  const io = { stdout: { write: () => true }, stderr: { write: (s: string | Uint8Array) => ((stderr += String(s)), true) }, interrupts };
  const running = main(['--config', configFile, 'agent', '--socket', path.join(dataDir, 'a.sock')], io);
  let settled = false;
  void running.finally(() => (settled = true));
  while (!stderr.includes('listening') && !settled) await new Promise((r) => setTimeout(r, 20));
  t.match(stderr, `agent listening on ${path.join(dataDir, 'a.sock')}`);
  t.same((await request(path.join(dataDir, 'a.sock'), 'GET', '/v1/health')).json, { status: 'ok' });
  interrupts.emit('SIGTERM');
  t.equal(await running, 0);
  t.match(stderr, /SIGTERM: stopping the agent/);
});
