// The docker driver passes the conformance suite on the real engine, and no container of the
// run is left behind (each one's processes carry the run's alloc id, and the driver removes
// what it started).
import { pino } from 'pino';
import t from 'tap';
import { runDriverConformance } from '../../../conformance/driver-conformance.js';
import { taskLabels } from '../../../drivers/docker/container-spec.js';
import { requireDocker } from '../../helpers/docker.js';

t.test('the docker driver passes every check, and leaves no container of the run behind', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const report = await runDriverConformance({ target: 'docker', logger: pino({ level: 'silent' }) });
  t.same(
    report.checks.filter((c) => c.status !== 'pass').map((c) => [c.name, c.status, c.message]),
    [],
  );
  t.equal(report.passed, 26);
  const left = await docker.listContainers({ all: true, filters: { label: [`${taskLabels.allocId}=${report.runId}`] } });
  t.same(
    left.map((c) => `${c.Id.slice(0, 12)} ${c.State}`),
    [],
    'no container of the run remains, running or not',
  );
});
