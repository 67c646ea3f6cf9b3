// Table-driven tests of the one task environment builder.
import t from 'tap';
import { InvalidConfigError } from '../../shared/errors.js';
import {
  buildTaskEnv,
  interpolate,
  interpolateDeep,
  parseEnvList,
  sanitizeEnvName,
  taskLockFile,
  toEnvList,
  variables,
  type TaskEnvInput,
} from '../../shared/env.js';

const base: TaskEnvInput = {
  task: { id: 't-1', name: 'web', allocId: 'a-1', jobName: 'shop', groupName: 'front', driver: 'raw_exec' },
  dirs: { allocDir: '/data/a-1/alloc', taskDir: '/data/a-1/web/local', secretsDir: '/data/a-1/web/secrets' },
};

t.test('runtime variables describe the task; limits only when set', async (t) => {
  const { env, sources } = buildTaskEnv({ ...base, resources: { cpuShares: 250, memoryMB: 64 } });
  t.same(env, {
    TASKHOST_TASK_ID: 't-1',
    TASKHOST_TASK_NAME: 'web',
    TASKHOST_ALLOC_ID: 'a-1',
    TASKHOST_JOB_NAME: 'shop',
    TASKHOST_GROUP_NAME: 'front',
    TASKHOST_DRIVER: 'raw_exec',
    TASKHOST_ALLOC_DIR: '/data/a-1/alloc',
    TASKHOST_TASK_DIR: '/data/a-1/web/local',
    TASKHOST_SECRETS_DIR: '/data/a-1/web/secrets',
    TASKHOST_LOCK_FILE: '/data/a-1/alloc/web.lock',
    TASKHOST_CPU_LIMIT: '250',
    TASKHOST_MEMORY_LIMIT: '64',
  });
  t.ok(Object.values(sources).every((s) => s === 'runtime'));
  const none = buildTaskEnv(base).env;
  t.notOk('TASKHOST_CPU_LIMIT' in none);
  t.notOk('TASKHOST_MEMORY_LIMIT' in none);
});

t.test('the update lock file is in the alloc dir as the task sees it', async (t) => {
  const container = buildTaskEnv({ ...base, dirs: { allocDir: '/alloc', taskDir: '/local', secretsDir: '/secrets' } }).env;
  t.equal(container.TASKHOST_LOCK_FILE, '/alloc/web.lock', 'inside a container');
  t.equal(buildTaskEnv(base).env.TASKHOST_LOCK_FILE, '/data/a-1/alloc/web.lock', 'on the host');
  t.equal(taskLockFile('/alloc/', 'db'), '/alloc/db.lock');
});

t.test('precedence: host < image < runtime < task < device, one value per name', async (t) => {
  const table: { name: string; input: Partial<TaskEnvInput>; key: string; want: string; from: string }[] = [
    {
      name: 'image beats host',
      input: { hostEnv: { A: 'host' }, hostEnvAllow: ['A'], imageEnv: ['A=image'] },
      key: 'A',
      want: 'image',
      from: 'image',
    },
    {
      name: 'task beats image',
      input: { imageEnv: ['PATH=/img', 'A=image'], taskEnv: { A: 'task' } },
      key: 'A',
      want: 'task',
      from: 'task',
    },
    {
      name: 'task can override a runtime variable',
      input: { taskEnv: { TASKHOST_TASK_NAME: 'mine' } },
      key: 'TASKHOST_TASK_NAME',
      want: 'mine',
      from: 'task',
    },
    { name: 'device beats task', input: { taskEnv: { GPU: 'all' }, deviceEnv: { GPU: '0' } }, key: 'GPU', want: '0', from: 'device' },
    { name: 'image env list: last entry of a name wins', input: { imageEnv: ['X=1', 'X=2'] }, key: 'X', want: '2', from: 'image' },
    { name: 'image flag without value', input: { imageEnv: ['FLAG'] }, key: 'FLAG', want: '', from: 'image' },
  ];
  for (const row of table) {
    const { env, sources } = buildTaskEnv({ ...base, ...row.input });
    t.equal(env[row.key], row.want, row.name);
    t.equal(sources[row.key], row.from, `${row.name}: source`);
    t.equal(toEnvList(env).filter((l) => l.startsWith(`${row.key}=`)).length, 1, `${row.name}: once in the list`);
  }
});

t.test('the agent’s environment is withheld unless allowed by name or prefix', async (t) => {
  const hostEnv = { PATH: '/usr/bin', AWS_SECRET_ACCESS_KEY: 's3cr3t', LC_ALL: 'C', LC_TIME: 'C', HOME: '/root', NOPE: undefined };
  t.same(
    Object.keys(buildTaskEnv({ ...base, hostEnv }).env).filter((k) => !k.startsWith('TASKHOST_')),
    [],
  );
  const { env } = buildTaskEnv({ ...base, hostEnv, hostEnvAllow: ['PATH', 'LC_*', 'NOPE'] });
  t.same(
    Object.keys(env)
      .filter((k) => !k.startsWith('TASKHOST_'))
      .sort(),
    ['LC_ALL', 'LC_TIME', 'PATH'],
  );
  t.notOk('AWS_SECRET_ACCESS_KEY' in env);
});

t.test('interpolation in task env values: env, node attributes, meta; unknown stays as written', async (t) => {
  const node = { attributes: { 'kernel.name': 'linux', 'unique.name': 'n1' }, meta: { rack: 'r7' } };
  const table: [string, string][] = [
    ['${TASKHOST_TASK_NAME}-x', 'web-x'],
    ['${node.attr.kernel.name}', 'linux'],
    ['${meta.rack}/${node.meta.rack}', 'r7/r7'],
    ['${PATH}:/opt/bin', '/usr/bin:/opt/bin'],
    ['${UNKNOWN} and ${node.attr.nope} and ${meta.nope}', '${UNKNOWN} and ${node.attr.nope} and ${meta.nope}'],
    ['$PLAIN ${} ${a b}', '$PLAIN ${} ${a b}'],
    ['${IMG}', 'from-image'],
  ];
  for (const [value, want] of table) {
    const { env } = buildTaskEnv({
      ...base,
      node,
      hostEnv: { PATH: '/usr/bin' },
      hostEnvAllow: ['PATH'],
      imageEnv: { IMG: 'from-image' },
      taskEnv: { V: value },
    });
    t.equal(env.V, want, value);
  }
  const { env } = buildTaskEnv({ ...base, taskEnv: { A: 'a', B: '${A}' } });
  t.equal(env.B, '${A}', 'task env values see the layers below, not each other (order does not matter)');
});

t.test('driver config strings are interpolated deep, keys and non-strings untouched', async (t) => {
  const lookup = variables({ TASKHOST_TASK_NAME: 'web' }, { attributes: { arch: 'amd64' } });
  const config = { command: 'run-${TASKHOST_TASK_NAME}', args: ['--arch=${node.attr.arch}', 3, true], nested: { '${k}': null } };
  t.same(interpolateDeep(config, lookup), { command: 'run-web', args: ['--arch=amd64', 3, true], nested: { '${k}': null } });
  t.equal(
    interpolate('${x}', () => undefined),
    '${x}',
  );
  t.equal(variables({}, undefined)('node.attr.x'), undefined);
});

t.test('names are sanitised; two names that become one are an error naming both', async (t) => {
  const table: [string, string][] = [
    ['simple', 'simple'],
    ['with-dash', 'with_dash'],
    ['dotted.name', 'dotted.name'],
    ['1st', '_1st'],
    ['spa ce', 'spa_ce'],
    ['', '_'],
  ];
  for (const [raw, want] of table) t.equal(sanitizeEnvName(raw), want, JSON.stringify(raw));
  t.equal(buildTaskEnv({ ...base, taskEnv: { 'my-var': 'x' } }).env.my_var, 'x');
  try {
    buildTaskEnv({ ...base, taskEnv: { 'my-var': 'a', my_var: 'b' } });
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof InvalidConfigError);
    t.same((err as InvalidConfigError).errors, [
      { path: '/env/my_var', message: '"my_var" and "my-var" both become the variable my_var; rename one' },
    ]);
  }
});

t.test('env lists: sorted K=V, parsed back with the last value of a name', async (t) => {
  t.same(toEnvList({ B: '2', A: '1=1' }), ['A=1=1', 'B=2']);
  t.same(parseEnvList(['A=1=1', 'B=2', 'B=3', 'C']), { A: '1=1', B: '3', C: '' });
  t.same(parseEnvList({ A: '1' }), { A: '1' });
});

t.test('device env is reported apart', async (t) => {
  const { deviceEnv } = buildTaskEnv({ ...base, deviceEnv: { 'VISIBLE-DEVICES': '0,1' } });
  t.same(deviceEnv, { VISIBLE_DEVICES: '0,1' });
});
