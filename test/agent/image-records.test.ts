// The docker tasks' image records, through an in-process agent against the real Docker Engine:
// recorded with the task as user, kept with their users across a restart, dropped when the
// engine no longer has the image, and collected at start when their GC deadline passed while the
// agent was down. Every image here is a test-unique name of a local busybox (never pulled), so GC
// can only ever untag that name.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type Dockerode from 'dockerode';
import t from 'tap';
import { Agent } from '../../agent/agent.js';
import { AgentStore } from '../../agent/store.js';
import { agentDockerConfig } from '../../agent/image-records.js';
import type { TaskRecord } from '../../agent/store-records.js';
import { parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { builtinPluginDirs } from '../../plugin-loader/discovery.js';
import {
  BUSYBOX_IMAGE,
  BUSYBOX_NEXT_IMAGE,
  deleteFromRegistry,
  followToEnd,
  imageExists,
  PLAIN_REGISTRY,
  removeImageRefs,
  requireDocker,
} from '../helpers/docker.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';
import { eventually, request, runningRecord, stopAll, taskPath } from './agent-request.js';
import { freshDataDir, quiet } from './supervisor-helpers.js';

const builtinDirs = builtinPluginDirs.filter((d) => /docker|mock$/.test(d));

interface ImageBody {
  ref: string;
  name: string;
  id: string;
  digest?: string;
  sizeBytes: number;
  users: string[];
  lastUsedAt?: string;
  removeAfter?: string;
}

/** A data dir, and agents on it with a given image GC delay; everything stopped and removed at teardown. */
function setup(t: { teardown(fn: () => unknown): void }, docker: Dockerode | undefined) {
  const dataDir = freshDataDir(t);
  let current: Agent | undefined;
  const start = async (imageDelay: string, more: Record<string, unknown> = {}) => {
    const config = parseAgentConfig({
      pluginDir: path.join(dataDir, 'no-plugins'),
      dataDir,
      supervision: { ...fastSupervision, startTimeout: '60s' },
      plugins: { mock: { enabled: true }, docker: { config: { gc: { imageDelay }, ...more } } },
    });
    current = await Agent.start({ config, logger: quiet, builtinDirs });
    return current;
  };
  t.teardown(async () => {
    if (current) {
      await stopAll(current).catch(() => undefined);
      await current.close();
    }
    if (!docker) return;
    // A container a failed test left behind.
    const left = await docker.listContainers({ all: true, filters: { label: [`com.taskhost.agent=${dataDir}`] } });
    for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  });
  return { dataDir, start };
}

/** A test-unique name for busybox:1.36 (same image id), removed at teardown. */
async function uniqueImage(t: { teardown(fn: () => unknown): void }, docker: Dockerode): Promise<string> {
  const repo = `taskhost-imgrec-${process.pid}-${randomBytes(4).toString('hex')}`;
  await docker.getImage(BUSYBOX_NEXT_IMAGE).tag({ repo, tag: '1' });
  t.teardown(() => removeImageRefs(docker, [`${repo}:1`]));
  return `${repo}:1`;
}

const dockerTask = (name: string, image: string, command: string[]) => ({
  name,
  driver: 'docker',
  config: { image, command: command[0], args: command.slice(1) },
});

async function images(agent: Agent, namespace?: string): Promise<ImageBody[]> {
  const headers: Record<string, string> = namespace ? { 'taskhost-namespace': namespace } : {};
  const answer = await request<{ images: ImageBody[] }>(agent.addresses.socket, 'GET', '/v1/images', undefined, headers);
  if (answer.status !== 200) throw new Error(`GET /v1/images: ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json.images;
}

const named = (list: ImageBody[], name: string) => list.find((i) => i.name === name);

async function submit(agent: Agent, spec: unknown): Promise<TaskRecord> {
  const answer = await request<TaskRecord>(agent.addresses.socket, 'POST', '/v1/tasks', spec);
  if (answer.status !== 201) throw new Error(`POST /v1/tasks: ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json;
}

t.test('a running docker task is its image record user; a restart keeps record and users; the exit lets go', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const { start } = setup(t, docker);
  const image = await uniqueImage(t, docker);
  const engine = await docker.getImage(image).inspect();
  let agent = await start('1h');
  const task = await submit(agent, dockerTask('web', image, ['sleep', '300']));
  await runningRecord(agent, task.id);
  const recorded = await eventually(async () => named(await images(agent), image), 'the image record');
  t.match(recorded, {
    ref: `docker.io/library/${image}`,
    name: image,
    id: engine.Id,
    sizeBytes: engine.Size,
    users: [task.id],
    lastUsedAt: String,
  });
  t.notOk('digest' in recorded, 'a local image has no repository digest');
  t.notOk('removeAfter' in recorded, 'an image in use has no GC deadline');
  t.same(await images(agent, 'other'), [], "another namespace's view has none of it");
  t.ok(
    agent.store.eventsSince(0).some((e) => e.topic === 'images' && e.type === 'created' && e.key === `default/${recorded.ref}`),
    'the record is an event',
  );

  await agent.close();
  agent = await start('1h');
  t.match(agent.supervisor.get('default', task.id), { state: 'running' }, 'the task was recovered');
  t.match(named(await images(agent), image), { id: engine.Id, users: [task.id] }, 'record and users survive the restart');

  t.equal((await request(agent.addresses.socket, 'POST', taskPath(task.id, '/stop'), { timeout: '5s' })).status, 202);
  await agent.supervisor.wait('default', task.id);
  const unused = await eventually(async () => {
    const now = named(await images(agent), image);
    return now?.users.length === 0 && now;
  }, 'the exit to let go of the image');
  t.ok(unused.removeAfter, 'an unused image gets a GC deadline');
  t.equal(Date.parse(unused.removeAfter!) - Date.parse(unused.lastUsedAt!), 3_600_000, 'the last use + gc.imageDelay');
  t.ok(await imageExists(docker, image), 'not collected before its deadline (the driver collects nothing itself)');
});

t.test('an image removed from the engine while the agent was down: its record is dropped at start', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const { start } = setup(t, docker);
  const image = await uniqueImage(t, docker);
  let agent = await start('1h');
  const task = await submit(agent, dockerTask('once', image, ['true']));
  t.match(await agent.supervisor.wait('default', task.id), { state: 'exited', exitResult: { exitCode: 0 } });
  const record = await eventually(async () => {
    const now = named(await images(agent), image);
    return now?.users.length === 0 ? now : undefined;
  }, 'the record of an image no task uses');
  t.match(record, { name: image, removeAfter: String });
  await agent.close();

  await removeImageRefs(docker, [image]);
  agent = await start('1h');
  t.same(await images(agent), [], 'the engine is the truth');
  t.ok(agent.store.eventsSince(0).some((e) => e.topic === 'images' && e.type === 'deleted' && e.key === `default/${record.ref}`));
});

t.test(
  'an unused image whose GC deadline passed while the agent was down is collected at start; one due while it runs, by its timer',
  async (t) => {
    const docker = await requireDocker(t);
    if (!docker) return;
    const { start } = setup(t, docker);
    const image = await uniqueImage(t, docker);
    let agent = await start('1h');
    const task = await submit(agent, dockerTask('once', image, ['true']));
    await agent.supervisor.wait('default', task.id);
    const record = await eventually(async () => {
      const now = named(await images(agent), image);
      return now?.removeAfter ? now : undefined;
    }, 'the unused record');
    await agent.close();
    t.ok(await imageExists(docker, image), 'still there when the agent stopped');

    // The delay in force at start applies to the last use: 1 s, long past once this wait is over.
    await eventually(() => Date.now() > Date.parse(record.lastUsedAt!) + 1_500, 'the deadline to pass');
    agent = await start('1s');
    await eventually(async () => !(await imageExists(docker, image)), 'the image collected');
    await eventually(async () => !named(await images(agent), image), 'its record dropped');
    t.ok(await imageExists(docker, BUSYBOX_NEXT_IMAGE), 'only the name was removed: busybox:1.36 itself stays');

    const second = await uniqueImage(t, docker);
    const next = await submit(agent, dockerTask('again', second, ['true']));
    await agent.supervisor.wait('default', next.id);
    await eventually(async () => !(await imageExists(docker, second)), 'the second image collected by its timer');
    await eventually(async () => !named(await images(agent), second), 'and its record dropped');
  },
);

t.test('GC never forces: an image a container still uses keeps its record, without a deadline', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const { start } = setup(t, docker);
  // An image of its own id, whose one name is ours: untagging it would delete it.
  const repo = `taskhost-imgrec-own-${process.pid}-${randomBytes(4).toString('hex')}`;
  const maker = await docker.createContainer({ Image: BUSYBOX_NEXT_IMAGE, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
  await maker.commit({ repo, tag: '1' });
  await maker.remove({ force: true });
  const image = `${repo}:1`;
  const user = await docker.createContainer({ Image: image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
  t.teardown(async () => {
    await user.remove({ force: true }).catch(() => undefined);
    await removeImageRefs(docker, [image]);
  });
  const agent = await start('1s');
  const task = await submit(agent, dockerTask('once', image, ['true']));
  await agent.supervisor.wait('default', task.id);
  const kept = await eventually(async () => {
    const now = named(await images(agent), image);
    return now && now.users.length === 0 && !now.removeAfter && now;
  }, 'the engine to refuse the removal');
  t.ok(kept, 'kept, with no deadline');
  t.ok(await imageExists(docker, image), 'the image stays under its container');
});

t.test('under the agent the docker driver collects no images itself; the agent applies gc.image and gc.imageDelay', async (t) => {
  const base = { dataDir: '/tmp/x', pluginDir: '/tmp/x/plugins' };
  const plain = agentDockerConfig(parseAgentConfig(base), true);
  t.same(plain.gc, { enabled: true, delayMs: 180_000 }, "the driver's defaults");
  t.same(plain.loaderConfig.plugins.docker, { enabled: true, config: { gc: { image: false } } }, 'the driver is told gc.image: false');

  const off = agentDockerConfig(
    parseAgentConfig({
      ...base,
      plugins: { docker: { config: { endpoint: 'unix:///run/d.sock', gc: { image: false, container: false } } } },
    }),
    true,
  );
  t.same(off.gc, { enabled: false, delayMs: 180_000 });
  t.equal(off.endpoint, 'unix:///run/d.sock');
  t.same(
    off.loaderConfig.plugins.docker!.config,
    { endpoint: 'unix:///run/d.sock', gc: { image: false, container: false } },
    'other keys kept',
  );

  const none = parseAgentConfig(base);
  t.equal(agentDockerConfig(none, false).loaderConfig, none, 'no docker driver: nothing to tell it');
  const invalid = parseAgentConfig({ ...base, plugins: { docker: { config: 'nonsense' } } });
  const bad = agentDockerConfig(invalid, true);
  t.equal(bad.loaderConfig, invalid, 'an invalid docker config is left for the plugin to refuse, with its paths');
  t.same(bad.gc, { enabled: true, delayMs: 180_000 });
});

t.test('an image the engine knows by digest is recorded as name:tag@digest; a stale id is filled in at start', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const { dataDir, start } = setup(t, docker);
  // Pushed to the loopback registry, the image gets a repository digest (nothing leaves the host).
  const repo = `${PLAIN_REGISTRY}/taskhost-test/imgrec-${process.pid}-${randomBytes(4).toString('hex')}`;
  const image = `${repo}:1`;
  await docker.getImage(BUSYBOX_NEXT_IMAGE).tag({ repo, tag: '1' });
  t.teardown(async () => {
    await removeImageRefs(docker, [image]);
    await deleteFromRegistry(image);
  });
  await followToEnd(docker, await docker.getImage(image).push({ authconfig: { serveraddress: PLAIN_REGISTRY } }));
  const engine = await docker.getImage(image).inspect();
  const digest = engine.RepoDigests.find((d) => d.startsWith(`${repo}@`))!.slice(repo.length + 1);
  t.match(digest, /^sha256:[0-9a-f]{64}$/);

  let agent = await start('1h');
  const task = await submit(agent, dockerTask('web', image, ['sleep', '300']));
  await runningRecord(agent, task.id);
  const recorded = await eventually(async () => named(await images(agent), image), 'the image record');
  t.match(recorded, { ref: `${image}@${digest}`, name: image, id: engine.Id, digest, users: [task.id] });
  await agent.close();

  // A record whose id the engine no longer has, under a digest it still has (re-pulled, say).
  const store = await AgentStore.open({ dataDir });
  await store.images.update('default', recorded.ref, (r) => ({ ...r, id: `sha256:${'0'.repeat(64)}` }));
  await store.close();
  agent = await start('1h');
  t.match(named(await images(agent), image), { id: engine.Id, users: [task.id] }, "the engine's id is filled in");
});

t.test('with the engine away at start no record is dropped; users that ended while the agent was down are let go', async (t) => {
  const { dataDir, start } = setup(t, undefined);
  const store = await AgentStore.open({ dataDir });
  const completedAt = '2030-01-01T00:00:00.000Z';
  // The agent was killed between recording the exit and letting go of the image.
  await store.tasks.create({
    id: 'done',
    namespace: 'default',
    name: 'done',
    driver: 'docker',
    state: 'exited',
    labels: {},
    spec: {} as never,
    completedAt,
  });
  await store.images.put({
    ref: 'docker.io/library/kept:1',
    namespace: 'default',
    name: 'kept:1',
    id: `sha256:${'1'.repeat(64)}`,
    sizeBytes: 1,
    users: ['done', 'vanished'],
    labels: {},
    lastUsedAt: new Date(0).toISOString(),
  });
  await store.close();
  const agent = await start('1h', { endpoint: `unix://${path.join(dataDir, 'no-engine.sock')}` });
  t.match(
    await images(agent),
    [{ name: 'kept:1', users: [], lastUsedAt: completedAt, removeAfter: '2030-01-01T01:00:00.000Z' }],
    'kept until the engine can say; its last use is when its last user ended',
  );
});

t.test('a name that moved to another image before its GC deadline: only the record is dropped', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const { start } = setup(t, docker);
  const image = await uniqueImage(t, docker);
  const agent = await start('6s');
  const task = await submit(agent, dockerTask('once', image, ['true']));
  await agent.supervisor.wait('default', task.id);
  const unused = await eventually(async () => {
    const now = named(await images(agent), image);
    return now?.users.length === 0 ? now : undefined;
  }, 'the unused record');
  const [repo, tag] = image.split(':') as [string, string];
  await docker.getImage(BUSYBOX_IMAGE).tag({ repo, tag });
  t.ok(Date.now() < Date.parse(unused.removeAfter!), 'moved before the deadline');
  await eventually(async () => !named(await images(agent), image), 'the record dropped at its deadline');
  const now = await docker.getImage(image).inspect();
  t.equal(now.Id, (await docker.getImage(BUSYBOX_IMAGE).inspect()).Id, 'the name, now of another image, stays');
});
