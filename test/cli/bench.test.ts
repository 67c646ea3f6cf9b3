// `taskhost bench` on the real engine, with tiny counts: the numbers are not judged here (the
// machine is shared), only that every arm runs every operation and the report says so.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { BUSYBOX_IMAGE, requireDocker } from '../helpers/docker.js';
import { runCli } from '../helpers/run-cli.js';
import { fastSupervision } from '../helpers/fixture-plugins.js';

const work = mkdtempSync(path.join(tmpdir(), 'taskhost-bench-'));
const agent = path.join(work, 'agent.json');
writeFileSync(
  agent,
  JSON.stringify({ pluginDir: path.join(work, 'plugins'), dataDir: path.join(work, 'data'), supervision: fastSupervision }),
);

t.test('bench runs lifecycles on all three arms and reports ratios', async (t) => {
  if (!(await requireDocker(t))) return;
  const args = ['--config', agent, 'bench', '--image', BUSYBOX_IMAGE, '-n', '2', '-c', '2', '--warmup', '1'];
  const json = await runCli([...args, '--json']);
  t.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout) as {
    results: { name: string; errors: number; throughput: number; lifecycle: { n: number }; operations: Record<string, { n: number }> }[];
    ratios: { name: string; value: number; pass: boolean }[];
  };
  t.same(
    doc.results.map((r) => r.name),
    ['taskhost', 'engine-api', 'docker-cli'],
  );
  for (const r of doc.results) {
    t.equal(r.errors, 0, `${r.name}: no failed lifecycle`);
    t.equal(r.lifecycle.n, 2);
    t.ok(r.throughput > 0);
    t.ok(r.operations['create+start'] && r.operations.remove, `${r.name}: timed create+start and remove`);
  }
  t.notOk('pause' in doc.results[0]!.operations, 'the driver contract has no pause');
  t.ok(doc.results[1]!.operations.pause, 'the Engine API arm pauses');
  t.equal(doc.ratios.length, 4);
  t.ok(doc.ratios.every((r) => Number.isFinite(r.value)));
  const human = await runCli(args);
  t.equal(human.code, 0);
  t.match(human.stdout, /DETAILED COMMAND TIMINGS/);
  t.match(human.stdout, /\ntaskhost\s+create\+start\s+[\d.]+/);
  t.match(human.stdout, /lifecycle median, taskhost ÷ engine API\s+[\d.]+\s+<= 1\.05\s+(PASS|MISS)/);
});

t.test('bench refuses bad counts and an unhealthy driver', async (t) => {
  const bad = await runCli(['bench', '-n', '0']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--lifecycles must be a positive integer/);
  const agentBad = path.join(work, 'agent-bad.json');
  writeFileSync(
    agentBad,
    JSON.stringify({
      pluginDir: path.join(work, 'plugins'),
      dataDir: path.join(work, 'data'),
      plugins: { docker: { config: { endpoint: 'unix:///nonexistent.sock' } } },
    }),
  );
  const down = await runCli(['--config', agentBad, 'bench', '-n', '1']);
  t.equal(down.code, 1);
  t.match(down.stderr, /the docker driver is (undetected|unhealthy)/);
});
