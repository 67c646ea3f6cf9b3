// `taskhost submit`, `tasks`, `status` and `stop` in-process, against a real agent (its store on
// disk, the mock driver in its worker) over its real unix socket; and what a user sees when no
// agent runs there: a missing socket, or one left by an agent that was killed.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Agent } from '../../agent/agent.js';
import type { TaskRecord } from '../../agent/store-records.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';
import { runCli } from '../helpers/run-cli.js';
import { freshDataDir, quiet } from '../agent/supervisor-helpers.js';

const builtinDirs = builtinPluginDirs.filter((d) => /raw_exec|mock$/.test(d));

async function startAgent(t: { teardown(fn: () => unknown): void }) {
  const dataDir = freshDataDir(t);
  const doc = {
    pluginDir: path.join(dataDir, 'no-plugins'),
    dataDir,
    supervision: { ...fastSupervision, startTimeout: '60s' },
    plugins: { mock: { enabled: true } },
  };
  const configFile = path.join(dataDir, 'agent.json');
  writeFileSync(configFile, JSON.stringify(doc));
  const agent = await Agent.start({ config: parseAgentConfig(doc), logger: quiet, builtinDirs });
  t.teardown(() => agent.close());
  const specFile = (name: string, spec: unknown) => {
    const file = path.join(dataDir, `${name}.json`);
    writeFileSync(file, JSON.stringify(spec));
    return file;
  };
  const cli = (...args: string[]) => runCli([...args, '--agent', agent.addresses.socket]);
  return { agent, dataDir, configFile, socket: agent.addresses.socket, specFile, cli };
}

const mock = (name: string, config: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  name,
  driver: 'mock',
  config,
  ...extra,
});

/** Polls the agent until the task is in `state` (generous bound: a busy machine is slow). */
async function untilState(agent: Agent, id: string, state: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (agent.supervisor.get('default', id).state !== state) {
    if (Date.now() > deadline) throw new Error(`task ${id} did not become ${state}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

t.test('submit prints the id; tasks lists, filters and prints JSON; status shows the record', async (t) => {
  const { agent, specFile, cli } = await startAgent(t);
  const web = await cli('submit', specFile('web', mock('web', { runFor: '600s' }, { labels: { team: 'a' } })));
  t.equal(web.code, 0);
  t.equal(web.stderr, '');
  const webId = web.stdout.trim();
  t.match(webId, /^[0-9a-f-]+\/web\/[0-9a-f]{8}$/, 'the id alone, for scripts');
  const db = await cli('submit', '--json', specFile('db', mock('db', { exitCode: 3 }, { labels: { team: 'b' } })));
  const dbRecord = JSON.parse(db.stdout) as TaskRecord;
  t.match(dbRecord, { name: 'db', driver: 'mock', state: 'pending', labels: { team: 'b' } }, '--json prints the record');
  await untilState(agent, webId, 'running');
  await untilState(agent, dbRecord.id, 'exited');

  const table = await cli('tasks');
  t.equal(table.code, 0);
  const [header, ...rows] = table.stdout.trimEnd().split('\n');
  t.match(header, /^ID\s+DRIVER\s+STATE\s+EXIT\s+AGE$/);
  t.equal(rows.length, 2);
  const row = (id: string) => rows.find((r) => r.startsWith(id)) ?? '';
  t.match(row(webId), /\s+mock\s+running\s+-\s+\d+[smh]$/);
  t.match(row(dbRecord.id), /\s+mock\s+exited\s+3\s+\d+[smh]$/);
  t.ok(
    rows.every((r) => r.length <= 100),
    'rows fit in 100 columns',
  );

  const names = async (...filters: string[]) => {
    const { stdout } = await cli('tasks', '--json', ...filters.flatMap((f) => ['--filter', f]));
    return (JSON.parse(stdout) as { tasks: TaskRecord[] }).tasks.map((r) => r.name).sort();
  };
  t.same(await names(), ['db', 'web']);
  t.same(await names('labels.team==a'), ['web']);
  t.same(await names('state==exited', 'labels.team==a'), ['db', 'web'], 'repeated --filter is OR');
  t.same(await names('labels.team==a,state==exited'), [], 'a comma is AND');
  const none = await cli('tasks', '--filter', 'name==nope');
  t.equal(none.stdout, 'no tasks in namespace "default" match\n');
  const bad = await cli('tasks', '--filter', 'state==exited', '--filter', 'nme==x');
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^error: INVALID_CONFIG: \/query\/filter\/1: at 0: unknown field "nme" \(did you mean "name"\?\).*\n$/);

  const status = await cli('status', dbRecord.id);
  t.equal(status.code, 0);
  t.match(status.stdout, new RegExp(`^id: +${dbRecord.id}\nname: +db\nnamespace: +default\ndriver: +mock\n`));
  t.match(status.stdout, /\nstate: +exited with code 3\nlabels: +team=b\nconfig: +\{"exitCode":3/);
  t.match(status.stdout, /\ncompleted: +\S+Z \(\d+[smh] ago\)\n?$/);
  const json = await cli('status', '--json', webId);
  t.match(JSON.parse(json.stdout), { id: webId, state: 'running', labels: { team: 'a' }, spec: { config: { runFor: '600s' } } });
});

t.test('submit --wait exits with the task’s exit code; --json prints the completed record', async (t) => {
  const { specFile, cli } = await startAgent(t);
  const waited = await cli('submit', '--wait', specFile('five', mock('five', { runFor: '50ms', exitCode: 5 })));
  t.equal(waited.code, 5);
  t.match(waited.stdout, /^\S+\/five\/[0-9a-f]{8}\n$/);
  t.equal(waited.stderr, 'taskhost: task five exited with code 5\n');

  const json = await cli('submit', '--wait', '--json', specFile('zero', mock('zero', {})));
  t.equal(json.code, 0);
  t.match(JSON.parse(json.stdout), { name: 'zero', state: 'exited', exitResult: { exitCode: 0, signal: null }, completedAt: String });

  const failed = await cli('submit', '--wait', specFile('boom', mock('boom', { startError: 'no room' })));
  t.equal(failed.code, 1, 'a task that could not start is exit code 1');
  t.match(failed.stderr, /taskhost: task boom failed: [A-Z_]+: .*no room/);
});

t.test('submit of a bad spec names the file and each JSON path; nothing is stored', async (t) => {
  const { agent, specFile, cli, dataDir } = await startAgent(t);
  const file = specFile('bad', { name: 'x', driver: 'mock', config: { runFor: 'soon' }, colour: 'red' });
  const { code, stdout, stderr } = await cli('submit', file);
  t.equal(code, 1);
  t.equal(stdout, '');
  const lines = stderr.trimEnd().split('\n');
  t.same(
    lines.map((l) => /^error: INVALID_CONFIG: (\S+): (\/\w+(?:\/\w+)?):/.exec(l)?.slice(1, 3)),
    [[file, '/colour']],
    'one line per problem, with its path in the file',
  );
  const config = await cli('submit', specFile('bad-config', mock('x', { runFor: 'soon' })));
  t.match(config.stderr, new RegExp(`^error: INVALID_CONFIG: ${file.replace('bad', 'bad-config')}: /config/runFor: `));
  const missing = await cli('submit', path.join(dataDir, 'nope.json'));
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^error: INVALID_CONFIG: .*nope\.json: cannot read .*nope\.json/);
  t.same(agent.supervisor.list('default'), []);
});

t.test('status and stop of unknown or malformed ids are the agent’s errors, one line each', async (t) => {
  const { cli } = await startAgent(t);
  const unknown = await cli('status', 'a1/x/00000001');
  t.equal(unknown.code, 1);
  t.equal(unknown.stderr, 'error: TASK_NOT_FOUND: namespace "default" has no task with id a1/x/00000001\n');
  const malformed = await cli('stop', 'not-an-id');
  t.equal(malformed.code, 1);
  t.match(malformed.stderr, /^error: INVALID_CONFIG: \/params\/id: must be a task id/);
});

t.test('stop waits until the task has exited and says how; a second stop is TASK_NOT_RUNNING', async (t) => {
  const { agent, specFile, cli } = await startAgent(t);
  const id = (await cli('submit', specFile('slow', mock('slow', { runFor: '600s' })))).stdout.trim();
  await untilState(agent, id, 'running');
  const stopped = await cli('stop', id, '--timeout', '10s');
  t.equal(stopped.code, 0);
  t.equal(stopped.stdout, `${id}: killed by SIGTERM (exit code 143)\n`);
  t.equal(agent.supervisor.get('default', id).state, 'exited');
  const again = await cli('stop', id);
  t.equal(again.code, 1);
  t.match(again.stderr, /^error: TASK_NOT_RUNNING: /);

  const other = (await cli('submit', specFile('other', mock('other', { runFor: '600s' })))).stdout.trim();
  await untilState(agent, other, 'running');
  const detached = await cli('stop', other, '--no-wait', '--json', '--force');
  t.equal(detached.code, 0);
  t.match(JSON.parse(detached.stdout), { id: other }, '--no-wait --json prints the record as the agent answered');
  await untilState(agent, other, 'exited');
  const badTimeout = await cli('stop', other, '--timeout', 'soon');
  t.match(badTimeout.stderr, /^error: INVALID_CONFIG: \/timeout: /);
});

t.test('namespaces: --namespace (or TASKHOST_NAMESPACE) isolates; the default socket is the config’s', async (t) => {
  const { specFile, cli, configFile } = await startAgent(t);
  const id = (await cli('submit', '--namespace', 'team-a', specFile('ns', mock('ns', {})))).stdout.trim();
  t.equal((await cli('tasks')).stdout, 'no tasks in namespace "default"\n');
  t.match((await cli('tasks', '--namespace', 'team-a')).stdout, id);
  t.match((await cli('status', id)).stderr, /TASK_NOT_FOUND/, 'invisible in another namespace');
  process.env.TASKHOST_NAMESPACE = 'team-a';
  t.teardown(() => delete process.env.TASKHOST_NAMESPACE);
  t.match((await cli('status', id)).stdout, /namespace: +team-a/);
  delete process.env.TASKHOST_NAMESPACE;
  const bad = await cli('tasks', '--namespace', 'a/b');
  t.match(bad.stderr, /^error: INVALID_CONFIG: \/headers\/taskhost-namespace: /);

  const viaConfig = await runCli(['--config', configFile, 'tasks', '--namespace', 'team-a']);
  t.equal(viaConfig.code, 0, 'no --agent: <dataDir>/agent.sock of --config');
  t.match(viaConfig.stdout, id);
});

t.test('no agent on the socket: one line that says how to start one, exit code 1', async (t) => {
  const dir = freshDataDir(t);
  const missing = path.join(dir, 'agent.sock');
  const none = await runCli(['tasks', '--agent', missing]);
  t.equal(none.code, 1);
  t.equal(none.stdout, '');
  t.equal(
    none.stderr,
    `error: no taskhost agent answers on ${missing} (there is no socket there): start one with "taskhost agent --config <file>"\n`,
  );

  // An agent killed with SIGKILL leaves its socket file behind, with nothing listening on it.
  const stale = path.join(dir, 'stale.sock');
  const child = spawn(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  await new Promise((resolve) => child.once('exit', resolve));
  t.ok(existsSync(stale), 'the dead agent’s socket is still there');
  const refused = await runCli(['status', 'a1/x/00000001', '--agent', stale]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /^error: no taskhost agent answers on .*stale\.sock \(nothing listens on it: .*\): start one with/);
  t.equal(refused.stderr.split('\n').length, 2, 'one line');

  // Without --agent, the config's data dir names the socket, and the hint names the config.
  const dataDir = path.join(dir, 'data');
  mkdirSync(dataDir);
  const configFile = path.join(dir, 'agent.json');
  writeFileSync(configFile, JSON.stringify({ dataDir }));
  const fromConfig = await runCli(['--config', configFile, 'submit', configFile]);
  t.equal(fromConfig.code, 1);
  t.equal(
    fromConfig.stderr,
    `error: no taskhost agent answers on ${path.join(dataDir, 'agent.sock')} (there is no socket there): start one with "taskhost agent --config ${configFile}", or name its socket with --agent <socket>\n`,
  );
});
