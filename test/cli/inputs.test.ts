// Each input of issue 9 section 4, as a user meets it: one clear line naming the JSON path, from
// `taskhost validate` and from `taskhost run` alike, never a stack trace. In-process; the
// signals to a real `taskhost run` process are in run-signals.test.ts.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { ociArch } from '../../shared/oci-arch.js';
import { requireDocker } from '../helpers/docker.js';
import { runCli } from '../helpers/run-cli.js';

const work = mkdtempSync(path.join(tmpdir(), 'taskhost-inputs-'));
const json = (doc: unknown, name = 'doc.json'): string => {
  const file = path.join(mkdtempSync(path.join(work, 'f-')), name);
  writeFileSync(file, JSON.stringify(doc));
  return file;
};
const agentDoc = { pluginDir: path.join(work, 'no-plugins'), dataDir: path.join(work, 'data'), plugins: { nvidia: { enabled: false } } };
const agent = json(agentDoc);
const nested = (levels: number): Record<string, unknown> => (levels === 1 ? {} : { a: nested(levels - 1) });
const raw = (extra: Record<string, unknown> = {}, config: Record<string, unknown> = {}) =>
  json({ name: 'in', driver: 'raw_exec', config: { command: '/bin/true', ...config }, ...extra });

/** The one error line each command prints: validate on stdout after the file name, run on stderr. */
async function bothSay(t: Test, file: string, line: string): Promise<void> {
  const validate = await runCli(['--config', agent, 'validate', '--task', file]);
  t.equal(validate.stdout, `${file}: ${line}\n`, 'validate --task');
  t.equal(validate.code, 1);
  const run = await runCli(['--config', agent, 'run', file]);
  t.equal(run.stderr, `error: ${line}\n`, 'run');
  t.equal(run.code, 1);
}

t.test('a spec nested 3,000 levels deep', async (t) => {
  await bothSay(
    t,
    raw({}, { nest: nested(3000) }),
    '/config/nest/a/a/a/a/…/a/a: is nested 65 levels deep; at most 64 levels of objects and arrays are allowed',
  );
});

t.test('an agent config nested 3,000 levels deep, and durations over what a timer holds in it', async (t) => {
  const deep = json({ ...agentDoc, plugins: { mock: { config: nested(3000) } } });
  const line = '/plugins/mock/config/a/a/a/…/a/a: is nested 65 levels deep; at most 64 levels of objects and arrays are allowed';
  t.match(await runCli(['validate', '--config', deep]), { code: 1, stdout: `${deep}: ${line}\n` });
  t.match(await runCli(['--config', deep, 'run', raw()]), { code: 1, stderr: `error: ${line}\n` });
  const slow = json({ ...agentDoc, supervision: { livenessTimeout: '9999h' } });
  const limit = '/supervision/livenessTimeout: must be at most 596h31m23.647s (about 24.8 days): a longer wait does not fit in a timer';
  t.match(await runCli(['validate', '--config', slow]), { code: 1, stdout: `${slow}: ${limit}\n` });
  t.match(await runCli(['--config', slow, 'run', raw()]), { code: 1, stderr: `error: ${limit}\n` });
});

t.test('killTimeout over the limit, and a malformed one', async (t) => {
  await bothSay(
    t,
    raw({ killTimeout: '600h' }),
    '/killTimeout: must be at most 596h31m23.647s (about 24.8 days): a longer wait does not fit in a timer',
  );
  await bothSay(
    t,
    raw({ killTimeout: '5 sec' }),
    '/killTimeout: must be a duration: a number and a unit (ms, s, m, h), e.g. "5s" or "1m30s"',
  );
});

t.test('a 300-character task name, and one that climbs out of its directory', async (t) => {
  await bothSay(t, raw({ name: 'n'.repeat(300) }), '/name: must be at most 128 characters');
  await bothSay(t, raw({ name: '../../x' }), '/name: must start with a letter or digit and hold only letters, digits, "_", "." and "-"');
});

t.test('memoryMB 1e308, and an env value with a NUL', async (t) => {
  await bothSay(t, raw({ resources: { memoryMB: 1e308 } }), '/resources/memoryMB: must be <= 16777216');
  await bothSay(
    t,
    raw({ env: { A: 'x\u0000y' } }),
    '/env/A: the value contains a NUL character (\\u0000), which no file name, argument or environment variable can hold',
  );
});

t.test('raw_exec: a user, and a cwd outside the task directory, are refused by validate as by run', async (t) => {
  await bothSay(
    t,
    raw({ user: 'nobody' }),
    `/user: raw_exec runs tasks as the agent's own user and cannot run them as "nobody": remove "user"`,
  );
  await bothSay(
    t,
    raw({}, { cwd: '../../..' }),
    '/config/cwd: working directory "../../.." is outside the task directory: name one inside it, or set allowCwdOutsideTaskDir in the raw_exec plugin config',
  );
  const allowing = json({ ...agentDoc, plugins: { ...agentDoc.plugins, raw_exec: { config: { allowCwdOutsideTaskDir: true } } } });
  const outside = raw({}, { command: '/bin/pwd', cwd: '/' });
  t.match(await runCli(['--config', allowing, 'validate', '--task', outside]), { code: 0, stdout: `${outside}: valid\n` });
  t.match(await runCli(['--config', allowing, 'run', outside]), { code: 0, stdout: '/\n' });
});

const privileged = json({
  name: 'priv',
  driver: 'docker',
  config: {
    image: 'busybox:1.35',
    privileged: true,
    capAdd: ['SYS_ADMIN'],
    volumes: ['/etc:/host-etc'],
    labels: { 'com.taskhost.x': 'y' },
  },
});
const refusals = [
  '/config/volumes/0: cannot mount "/etc:/host-etc": host paths can only be mounted when the docker plugin config sets volumes.enabled',
  '/config/privileged: privileged containers are not allowed: the docker plugin config must set allowPrivileged',
  /^\/config\/capAdd\/0: capability SYS_ADMIN is not allowed: add it to allowCaps in the docker plugin config \(allowed: CHOWN, /,
  '/config/labels/com.taskhost.x: labels under "com.taskhost." are set by taskhost itself',
];

t.test('docker: validate --task applies the admission checks run does (privileged, caps, volumes, labels)', async (t) => {
  const validate = await runCli(['--config', agent, 'validate', '--task', privileged, '--json']);
  t.equal(validate.code, 1);
  const doc = JSON.parse(validate.stdout) as { valid: boolean; issues: { path: string; message: string }[] };
  t.equal(doc.valid, false);
  t.match(
    doc.issues.map((i) => `${i.path}: ${i.message}`),
    refusals,
  );
});

t.test('docker: run refuses the same spec with the same lines, before any pull', async (t) => {
  if (!(await requireDocker(t))) return;
  const run = await runCli(['--config', agent, 'run', privileged]);
  t.equal(run.code, 1);
  t.match(
    run.stderr.trim().split('\n'),
    refusals.map((r) => (typeof r === 'string' ? `error: ${r}` : new RegExp(`^error: ${r.source.slice(1)}`))),
  );
});

t.test('a driver the agent config disables is named as disabled, not as unknown', async (t) => {
  const disabled = json({ ...agentDoc, plugins: { ...agentDoc.plugins, docker: { enabled: false } } });
  const spec = json({ name: 'x', driver: 'docker', config: { image: 'busybox:1.35' } });
  const line = '/driver: driver "docker" is disabled in the agent config (plugins.docker.enabled is false); drivers: mock, raw_exec';
  t.match(await runCli(['--config', disabled, 'validate', '--task', spec]), { code: 1, stdout: `${spec}: ${line}\n` });
  t.match(await runCli(['--config', disabled, 'run', spec]), { code: 1, stderr: `error: ${line}\n` });
});

t.test('an unknown driver: validate and run list every driver, with a did-you-mean', async (t) => {
  await bothSay(
    t,
    json({ name: 'x', driver: 'raw_exce', config: {} }),
    '/driver: no driver named "raw_exce" (did you mean "raw_exec"?); drivers: docker, mock, raw_exec',
  );
});

t.test('a plugin-dir plugin named as a built-in replaces it only when asked', async (t) => {
  const pluginDir = mkdtempSync(path.join(work, 'plugins-'));
  mkdirSync(path.join(pluginDir, 'impostor'));
  writeFileSync(
    path.join(pluginDir, 'impostor', 'package.json'),
    JSON.stringify({
      name: 'impostor',
      version: '9.9.9',
      type: 'module',
      taskhost: { type: 'driver', name: 'raw_exec', apiVersions: ['1.0'] },
    }),
  );
  writeFileSync(
    path.join(pluginDir, 'impostor', 'index.js'),
    "export default { info: () => ({ type: 'driver', name: 'raw_exec', pluginVersion: '9.9.9', apiVersions: ['1.0'] }), configSchema: () => null, setConfig() {} };\n",
  );
  const plain = json({ ...agentDoc, pluginDir });
  const listed = JSON.parse((await runCli(['--config', plain, 'plugins', '--json'])).stdout) as {
    plugins: { name: string; source: string; state: string; reason?: string }[];
  };
  t.match(
    listed.plugins.filter((p) => p.name === 'raw_exec'),
    [
      { source: 'builtin', state: 'running' },
      {
        source: 'plugin-dir',
        state: 'skipped',
        reason:
          'a built-in plugin is named "raw_exec" too, and a plugin-dir plugin replaces a built-in only when asked: set plugins.raw_exec.replaceBuiltin to true in the agent config',
      },
    ],
  );
  const hello = fileURLToPath(new URL('../../examples/hello.json', import.meta.url));
  const run = await runCli(['--config', plain, 'run', hello]);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^hello from hello \(raw_exec says hi\)\n/, 'the built-in ran it');
  const asking = json({ ...agentDoc, pluginDir, plugins: { ...agentDoc.plugins, raw_exec: { replaceBuiltin: true } } });
  const replaced = JSON.parse((await runCli(['--config', asking, 'plugins', '--json'])).stdout) as typeof listed;
  t.match(
    replaced.plugins.filter((p) => p.name === 'raw_exec'),
    [
      { source: 'plugin-dir', state: 'running' },
      {
        source: 'builtin',
        state: 'skipped',
        reason: /^replaced by .*impostor \(version 9\.9\.9, plugin-dir\), as plugins\.raw_exec\.replaceBuiltin asks$/,
      },
    ],
  );
});

t.test('${node.attr.kernel.name}, the README’s own example, is filled in by run; cpu.arch as images name it', async (t) => {
  const spec = raw(
    { env: { K: '${node.attr.kernel.name}', A: '${node.attr.cpu.arch}' } },
    { command: '/bin/sh', args: ['-c', 'echo "$K $A"'] },
  );
  const run = await runCli(['--config', agent, 'run', spec]);
  t.equal(run.code, 0, run.stderr);
  t.equal(run.stdout, `linux ${ociArch()}\n`);
});
