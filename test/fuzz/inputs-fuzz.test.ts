// Thousands of mutated task specs and agent configs, from valid ones, through every place the
// library and the CLI read them: each outcome must be a value or an InvalidConfigError whose every
// issue has a string path and message. Anything else (a RangeError from deep nesting, a TypeError,
// a DataCloneError, an error without a path) fails the test, naming the seed and the case.
// Deterministic: TASKHOST_FUZZ_SEED picks another seed; TASKHOST_FUZZ_CASES scales the run.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import createDockerDriver from '../../drivers/docker/index.js';
import { hostAttributes } from '../../drivers/host-attributes.js';
import createMockDriver from '../../drivers/mock/index.js';
import { buildTaskConfig, loadTaskSpec, parseTaskSpec } from '../../drivers/prepare-task.js';
import rawExecDriver from '../../drivers/raw_exec/index.js';
import exampleFileDevice from '../../devices/example-file/index.js';
import nvidiaDevice from '../../devices/nvidia/index.js';
import { fillSupervision, loadAgentConfig, parseAgentConfig } from '../../plugin-loader/agent-config.js';
import { validatePluginConfig } from '../../plugin-loader/plugin-instance.js';
import type { DriverCapabilities, DriverPlugin, TaskConfig } from '../../shared/driver.js';
import { InvalidConfigError } from '../../shared/errors.js';
import type { BasePlugin } from '../../shared/plugin.js';
import type { JsonSchema } from '../../shared/schema.js';
import { fileText, mutate, nest, prng, type Random } from '../helpers/mutate.js';
import { runCli } from '../helpers/run-cli.js';

const seed = Number(process.env.TASKHOST_FUZZ_SEED ?? 0x7a5c0009);
const scale = Number(process.env.TASKHOST_FUZZ_CASES ?? 4000) / 4000;
const specCases = Math.round(2500 * scale);
const configCases = Math.round(1500 * scale);
const cliSample = { specs: 8, configs: 4 };

const work = mkdtempSync(path.join(tmpdir(), 'taskhost-fuzz-'));
const dataDir = path.join(work, 'data');
const hello = fileURLToPath(new URL('../../examples/hello.json', import.meta.url));

const specBases: unknown[] = [
  (await import(hello, { with: { type: 'json' } })).default,
  {
    name: 'web',
    driver: 'docker',
    job: 'shop',
    group: 'front',
    config: {
      image: 'busybox:1.35',
      command: 'sh',
      args: ['-c', 'echo ${node.attr.kernel.name}'],
      env: { A: 'b' },
      labels: { team: 'a' },
      networkMode: 'none',
      capAdd: ['CHOWN'],
      capDrop: ['ALL'],
      volumes: ['data:/data:ro'],
      mounts: [{ source: 'x', target: '/x', readOnly: true }],
      pullPolicy: 'missing',
    },
    env: { GREETING: 'hi ${TASKHOST_TASK_NAME}' },
    resources: { cpuShares: 100, memoryMB: 64 },
    devices: [{ name: 'example/file/mock', count: 1 }],
    killTimeout: '5s',
    killSignal: 'SIGTERM',
  },
  {
    name: 'scripted',
    driver: 'mock',
    config: { runFor: '1s', exitCode: 3, stdout: 'out', stats: { cpuPercent: 1, rssBytes: 1024 }, exec: { stdout: 'x', exitCode: 1 } },
    killTimeout: '250ms',
  },
  { name: 'cmd', driver: 'raw_exec', config: { command: '/bin/sh', args: ['-c', 'pwd'], cwd: 'work' }, env: { X: '1' }, user: 'nobody' },
];

const configBases: unknown[] = [
  {
    pluginDir: './plugins',
    dataDir: './.taskhost',
    logLevel: 'warn',
    hostEnvAllow: ['PATH', 'LC_*'],
    supervision: { heapMB: 128, livenessInterval: '5s', livenessTimeout: '10s', crashLoopRestarts: 3, breakerCooldown: '0s' },
    plugins: {
      docker: {
        enabled: true,
        config: {
          endpoint: 'unix:///nonexistent/docker.sock',
          gc: { image: true, imageDelay: '3m', danglingGrace: '5m', reconcileInterval: '5m' },
          volumes: { enabled: false },
          allowCaps: ['CHOWN'],
          pullTimeout: '10m',
          extraLabels: { team: 'a' },
        },
        supervision: { startTimeout: '30s', concurrency: 8 },
      },
      raw_exec: { config: { fingerprintInterval: '30s', allowCwdOutsideTaskDir: false }, replaceBuiltin: false },
      mock: { config: { healthy: true, fingerprintInterval: '1s' } },
      'example-file': { config: { dir: '/srv/devices', listPeriod: '5s' } },
      nvidia: { enabled: false, config: { nvidiaSmi: 'nvidia-smi', fingerprintPeriod: '1m' } },
    },
  },
  { plugins: { mock: { enabled: false } }, supervision: { shutdownTimeout: '1s', restartBackoff: '250ms', maxRestartBackoff: '30s' } },
];

// The built-in plugins in-process: their real schemas, their real setConfig and validateTask.
const drivers: Record<string, DriverPlugin> = {
  raw_exec: rawExecDriver() as unknown as DriverPlugin,
  docker: createDockerDriver({ log: () => undefined }) as unknown as DriverPlugin,
  mock: createMockDriver() as unknown as DriverPlugin,
};
const plugins: Record<string, BasePlugin> = {
  ...drivers,
  'example-file': exampleFileDevice() as unknown as BasePlugin,
  nvidia: nvidiaDevice() as unknown as BasePlugin,
};
const agentInfo = { dataDir, pluginDataDir: path.join(dataDir, 'plugins') };
// What the host passes every call after its arguments.
const signal = new AbortController().signal;
const configure = async (name: string, config: unknown) =>
  plugins[name]!.setConfig({ apiVersion: '1.0', config, agent: agentInfo }, signal);
const schemas: Record<string, { task: JsonSchema; config: JsonSchema | null; capabilities: DriverCapabilities }> = {};
for (const [name, plugin] of Object.entries(plugins)) {
  const config = (await plugin.configSchema()) as JsonSchema | null;
  await configure(name, validatePluginConfig(name, config, name === 'example-file' ? { dir: work } : undefined));
  const driver = drivers[name];
  schemas[name] = driver
    ? { task: (await driver.taskConfigSchema(signal)) as JsonSchema, config, capabilities: await driver.capabilities(signal) }
    : { task: {}, config, capabilities: await drivers.mock!.capabilities(signal) };
}
t.teardown(async () => {
  for (const plugin of Object.values(plugins)) await plugin.shutdown?.(signal);
});

const failures: string[] = [];
const outcomes = { value: 0, invalid: 0 };

/** What was wrong with a thrown value, or undefined when it is an InvalidConfigError as it should be. */
function unacceptable(err: unknown): string | undefined {
  if (!(err instanceof InvalidConfigError)) {
    const e = err as { name?: string; message?: string; stack?: string } | undefined;
    return `${e?.name ?? typeof err}: ${e?.message ?? String(err)}\n      ${(e?.stack ?? '').split('\n').slice(1, 4).join('\n      ')}`;
  }
  if (err.errors.length === 0) return `InvalidConfigError without issues: ${err.message}`;
  const bad = err.errors.find(
    (i) => typeof i.path !== 'string' || (i.path !== '' && !i.path.startsWith('/')) || typeof i.message !== 'string' || !i.message,
  );
  return bad ? `an issue without a string path and message: ${JSON.stringify(bad)}` : undefined;
}

function show(doc: unknown): string {
  try {
    const text = JSON.stringify(doc, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : typeof v === 'function' ? '[function]' : v));
    return text === undefined ? String(doc) : text.length > 300 ? `${text.slice(0, 300)}…(${text.length} chars)` : text;
  } catch {
    return '[not serialisable: a cycle]';
  }
}

/** Runs one step of a case; an outcome other than a value or an InvalidConfigError is recorded. */
async function step(what: string, caseSeed: number, doc: unknown, work: () => unknown): Promise<boolean> {
  try {
    await work();
    outcomes.value++;
    return true;
  } catch (err) {
    const problem = unacceptable(err);
    if (problem) failures.push(`seed ${caseSeed} (TASKHOST_FUZZ_SEED=${seed}), ${what}: ${problem}\n      input: ${show(doc)}`);
    else outcomes.invalid++;
    return false;
  }
}

let files = 0;
const writeCase = (text: string) => {
  const file = path.join(work, `case-${files++ % 64}.json`);
  writeFileSync(file, text);
  return file;
};

/** A task spec through the parser, the pure builder with the driver's real schema, and the driver's validateTask. */
async function specCase(caseSeed: number, rng: Random): Promise<unknown> {
  const library = rng.chance(0.3);
  const doc = mutate(rng.pick(specBases), rng, { library });
  await step('parseTaskSpec + buildTaskConfig + validateTask', caseSeed, doc, async () => {
    const spec = parseTaskSpec(doc);
    const name = Object.hasOwn(drivers, spec.driver) ? spec.driver : rng.pick(Object.keys(drivers));
    const allocId = rng.chance(0.1) ? rng.pick(['../../x', '', 'a'.repeat(129), 'ok-alloc', '\u0000', '.']) : undefined;
    const task: TaskConfig = buildTaskConfig({
      spec,
      schema: schemas[name]!.task,
      capabilities: schemas[name]!.capabilities,
      dataDir,
      ...(allocId !== undefined ? { allocId } : {}),
      node: { attributes: hostAttributes() },
      hostEnv: { PATH: '/usr/bin:/bin', LANG: 'C' },
      hostEnvAllow: ['PATH', 'LANG'],
    });
    await drivers[name]!.validateTask?.(task, signal);
  });
  if (!library && rng.chance(0.25)) {
    const file = writeCase(fileText(doc, rng));
    await step('loadTaskSpec (file)', caseSeed, doc, () => loadTaskSpec(file));
  }
  return doc;
}

/** An agent config through the parser, the supervision it fills, and each built-in's config schema and setConfig. */
async function configCase(caseSeed: number, rng: Random): Promise<unknown> {
  const library = rng.chance(0.3);
  const doc = mutate(rng.pick(configBases), rng, { library });
  await step('parseAgentConfig + plugin configs + setConfig', caseSeed, doc, async () => {
    const config = parseAgentConfig(doc);
    for (const [name, entry] of Object.entries(config.plugins)) {
      fillSupervision(config.supervision, entry.supervision);
      const schema = schemas[name];
      if (!schema || entry.config === undefined) continue;
      await configure(name, validatePluginConfig(name, schema.config, entry.config));
    }
  });
  if (!library && rng.chance(0.25)) {
    const file = writeCase(fileText(doc, rng));
    await step('loadAgentConfig (file)', caseSeed, doc, () => loadAgentConfig(file));
  }
  return doc;
}

t.test(
  `${specCases} mutated task specs and ${configCases} mutated agent configs: values or InvalidConfigErrors with paths, nothing else`,
  async (t) => {
    const started = performance.now();
    const cliSpecs: unknown[] = [];
    const cliConfigs: unknown[] = [];
    for (let i = 0; i < specCases; i++) {
      const doc = await specCase(seed + i, prng(seed + i));
      if (i % Math.ceil(specCases / cliSample.specs) === 0) cliSpecs.push(doc);
    }
    for (let i = 0; i < configCases; i++) {
      const caseSeed = seed + specCases + i;
      const doc = await configCase(caseSeed, prng(caseSeed));
      if (i % Math.ceil(configCases / cliSample.configs) === 0) cliConfigs.push(doc);
    }
    t.same(failures, [], 'every outcome a value or an InvalidConfigError whose every issue has a path and message');
    t.ok(outcomes.invalid > specCases / 2, `most cases are refused (${outcomes.invalid} refusals, ${outcomes.value} values)`);
    t.ok(outcomes.value > 100, 'and some still pass: the mutations do not only break the root');
    t.comment(
      `${specCases + configCases} cases in ${Math.round(performance.now() - started)} ms: ${outcomes.value} values, ${outcomes.invalid} refusals`,
    );

    // A sample through `taskhost validate`, in-process: one line per issue, exit 0 or 1, no throw.
    const agent = writeCase(JSON.stringify({ pluginDir: path.join(work, 'no-plugins'), dataDir, plugins: { nvidia: { enabled: false } } }));
    for (const [kind, docs] of [
      ['--task', cliSpecs],
      ['--config', cliConfigs],
    ] as const) {
      for (const doc of docs) {
        const file = path.join(mkdtempSync(path.join(work, 'cli-')), 'input.json');
        writeFileSync(file, JSON.stringify(doc) ?? 'null');
        const { code, stdout, stderr } = await runCli(['--config', agent, 'validate', kind, file]);
        const lines = stdout.trim().split('\n');
        const wellFormed = lines.every((l) => l.startsWith(`${file}: `) && /^(\(root\)|\/[^:]*): |^valid/.test(l.slice(file.length + 2)));
        if (![0, 1].includes(code) || !wellFormed) {
          failures.push(
            `validate ${kind}: exit ${code}, stdout ${JSON.stringify(stdout)}, stderr ${JSON.stringify(stderr)}\n      input: ${show(doc)}`,
          );
        }
      }
    }
    t.same(
      failures,
      [],
      `taskhost validate on ${cliSpecs.length} specs and ${cliConfigs.length} configs: exit 0 or 1, each line a path and a message`,
    );
  },
);

t.test('the mutations are deterministic: the same seed, the same document', async (t) => {
  t.same(show(mutate(specBases[1], prng(seed))), show(mutate(specBases[1], prng(seed))));
  t.not(show(mutate(specBases[1], prng(seed))), show(mutate(specBases[1], prng(seed + 1))));
  t.same(nest(2, true), [[1]]);
});
