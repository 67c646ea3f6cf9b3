/**
 * npm run bench:devices: taskhost's device stats pipeline against Nomad's (perf-anchors R6), in
 * one run on one machine. N device plugins with many devices each send stats every interval;
 * ours hosts them in worker threads under a DeviceManager, the peer in child processes streaming
 * over grpc-js. Arms alternate in rounds so that a noisy stretch of the machine hits both.
 *
 * Targets are printed as PASS/MISS; a MISS never fails the run (exit 0). Errors do (exit 1;
 * 2 for bad flags).
 */
import { runArm, type ArmKey, type ArmRun, type ArmSettings } from './device-arms.js';
import { devicesFigures, renderDevicesReport, type DevicesBenchReport, type DevicesSettings } from './devices-report.js';
import { describeEnvironment } from './environment.js';
import { integerFlag, parseBenchFlags, runBenchmark } from './flags.js';

const usage = `Usage: node dist/bench/devices.js [options]   (or: npm run bench:devices -- [options])

  --plugins N          device plugins per arm                     (default 8)
  --groups N           device groups per plugin                   (default 2)
  --devices N          devices per group                          (default 64)
  --interval-ms N      stats interval                             (default 1000)
  --fingerprint-ms N   how often each plugin re-sends its groups  (default 60000; 5000 stresses it)
  --seconds N          measured seconds per arm per round         (default 60)
  --rounds N           rounds; each runs both arms, in turn       (default 2)
  --warmup-ms N        unmeasured time after the first stats      (default 3000)
  --quick              a short smoke run (explicit flags still win)
  --json               print one JSON document instead of the tables
  --help`;

const fullSettings: DevicesSettings = {
  plugins: 8,
  groups: 2,
  devicesPerGroup: 64,
  intervalMs: 1_000,
  fingerprintMs: 60_000,
  seconds: 60,
  rounds: 2,
  warmupMs: 3_000,
  quick: false,
};

const quickSettings: DevicesSettings = { ...fullSettings, seconds: 8, rounds: 1, warmupMs: 1_000, quick: true };

const flagNames = ['plugins', 'groups', 'devices', 'interval-ms', 'fingerprint-ms', 'seconds', 'rounds', 'warmup-ms'] as const;

function parseSettings(argv: string[]): { settings: DevicesSettings; json: boolean } | undefined {
  const flags = parseBenchFlags(argv, usage, flagNames);
  if (!flags) return undefined;
  const { values, quick } = flags;
  const base = quick ? quickSettings : fullSettings;
  const settings: DevicesSettings = {
    plugins: integerFlag('plugins', values.plugins, base.plugins, 1),
    groups: integerFlag('groups', values.groups, base.groups, 1),
    devicesPerGroup: integerFlag('devices', values.devices, base.devicesPerGroup, 1),
    intervalMs: integerFlag('interval-ms', values['interval-ms'], base.intervalMs, 10),
    fingerprintMs: integerFlag('fingerprint-ms', values['fingerprint-ms'], base.fingerprintMs, 100),
    seconds: integerFlag('seconds', values.seconds, base.seconds, 1),
    rounds: integerFlag('rounds', values.rounds, base.rounds, 1),
    warmupMs: integerFlag('warmup-ms', values['warmup-ms'], base.warmupMs, 0),
    quick,
  };
  return { settings, json: flags.json };
}

function progress(message: string): void {
  process.stderr.write(`[bench:devices] ${message}\n`);
}

async function main(): Promise<void> {
  const started = performance.now();
  const parsed = parseSettings(process.argv.slice(2));
  if (!parsed) return;
  const { settings, json } = parsed;
  const environment = describeEnvironment();
  const armSettings: ArmSettings = { ...settings, windowMs: settings.seconds * 1_000 };
  const runs: Record<ArmKey, ArmRun[]> = { ours: [], peer: [] };
  const devices = settings.plugins * settings.groups * settings.devicesPerGroup;
  progress(
    `${settings.rounds} round(s) x 2 arms x ${settings.seconds} s: ${settings.plugins} plugins, ${devices} devices, ` +
      `stats every ${settings.intervalMs} ms`,
  );
  for (let round = 1; round <= settings.rounds; round++) {
    // Alternate which arm goes first, so neither always runs on a machine the other warmed up.
    const order: ArmKey[] = round % 2 === 1 ? ['ours', 'peer'] : ['peer', 'ours'];
    for (const arm of order) {
      progress(`round ${round}/${settings.rounds}: ${arm}`);
      const run = await runArm(arm, armSettings);
      runs[arm].push(run);
      progress(`  ${run.messages} samples, ${(run.cpuMs / run.messages).toFixed(3)} CPU ms per sample, ${run.missedTicks} missed tick(s)`);
    }
  }
  const report: DevicesBenchReport = {
    environment,
    settings,
    devices,
    runs,
    elapsedSeconds: (performance.now() - started) / 1000,
  };
  process.stdout.write(json ? `${JSON.stringify(summarizeForJson(report), null, 2)}\n` : `${renderDevicesReport(report)}\n`);
}

/** The JSON document: every figure, without the raw staleness samples (thousands of numbers). */
function summarizeForJson(report: DevicesBenchReport) {
  const { runs, ...rest } = report;
  const strip = (list: ArmRun[]) => list.map(({ staleness: _staleness, ...figures }) => figures);
  return { ...rest, runs: { ours: strip(runs.ours), peer: strip(runs.peer) }, figures: devicesFigures(report) };
}

runBenchmark('bench:devices', usage, main);
