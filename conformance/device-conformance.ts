/**
 * The device conformance suite behind `taskhost conformance` for device plugins: loads the plugin
 * through the real loader and checks the contract of shared/device.ts, each failure saying what
 * the plugin did and what to do instead. Same report as the driver suite.
 *
 * The plugin runs with the config in its folder's `conformance.json` (`{ "config": {…} }`), or
 * with the one in the file named by `pluginConfigFile` (`taskhost conformance --plugin-config F`),
 * which takes precedence. In either, a string that starts with "./" or "../" is a path relative
 * to the file it is written in, so a config can point at a fake beside it.
 *
 * The checks that need devices (reserve of known ids, which stats name) are skipped, saying so,
 * when the plugin reports none: no devices is a valid answer ("undetected").
 *
 * As the driver suite does, it also checks what only shows in production: that fingerprint()
 * and stats() settle when their signal aborts, that closing the streams and shutdown() leave no
 * timers or handles in the worker, and that nothing the plugin spawned is left running.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import {
  ContainerReservation,
  DeviceFingerprint,
  DeviceStats,
  deviceMethods,
  groupId,
  units,
  type DeviceGroup,
  type FilledContainerReservation,
  type FilledDeviceFingerprint,
  type FilledDeviceStats,
} from '../shared/device.js';
import { InvalidConfigError, type TaskhostError } from '../shared/errors.js';
import { compileSchema, formatIssues, parseWith } from '../shared/schema.js';
import { parseAgentConfig, type AgentConfig } from '../plugin-loader/agent-config.js';
import {
  checkRunner,
  conformanceRunId,
  describe,
  drain,
  findConformanceTarget,
  isPathTarget,
  Miss,
  setUp,
  Skip,
  withTimeout,
  type ConformanceOptions,
  type ConformanceReport,
} from './check-runner.js';
import { PluginLoader } from '../plugin-loader/loader.js';
import type { PluginInstance } from '../plugin-loader/plugin-instance.js';
import { describeLeak, leakedResources, shutdownLeftovers } from './leaked-resources.js';
import { leftoverProblem } from './leftover-processes.js';
import { describeUnsettled, inFlightIds, opened, stillInFlight } from './unsettled-calls.js';

export interface DeviceConformanceOptions extends ConformanceOptions {
  /** A JSON file holding the plugin config to test with, instead of conformance.json's "config". */
  pluginConfigFile?: string;
}

/**
 * The stats cadence the suite asks for and what it accepts. The margins are wide so a busy
 * machine passes a correct plugin (a 2 s gap at a 200 ms interval is a stall, not jitter), and
 * narrow enough that a plugin ignoring the interval (one sample a second or slower) fails.
 */
export const statsCadence = { intervalMs: 200, windowMs: 4_000, minSamples: 4, maxGapIntervals: 10 } as const;

const checkTimeoutMs = 30_000;
/** Loading has its own deadline (supervision's startTimeout, 30 s by default): the check waits past it. */
const loadTimeoutMs = 60_000;
const firstFingerprintMs = 10_000;
const unknownId = 'taskhost-conformance-no-such-device';

const ConformanceFile = Type.Object({ config: Type.Optional(Type.Unknown()) });
const validateConformanceFile = compileSchema(ConformanceFile);
const validateFingerprint = compileSchema<FilledDeviceFingerprint>(DeviceFingerprint);
const validateReservation = compileSchema<FilledContainerReservation>(ContainerReservation);
const validateStats = compileSchema<FilledDeviceStats>(DeviceStats);

interface ConfigSource {
  config: unknown;
  /** Where it came from, for messages. */
  from: string;
}

export async function runDeviceConformance(options: DeviceConformanceOptions): Promise<ConformanceReport> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'taskhost-device-conformance-'));
  const base: AgentConfig = { ...(options.config ?? parseAgentConfig({ pluginDir: path.join(dataDir, 'no-plugins') })), dataDir };
  const runId = conformanceRunId();
  const report: ConformanceReport = { plugin: { name: options.target }, checks: [], passed: 0, failed: 0, skipped: 0, runId };
  const check = checkRunner(report, options.onCheck, options.checkTimeoutMs ?? checkTimeoutMs);
  let loader: PluginLoader | undefined;
  // Whatever the plugin spawns inherits the mark, so what it leaves running can be found.
  const marks = [`TASKHOST_CONFORMANCE_RUN=${runId}`];
  let hosted = false;

  try {
    let instance: PluginInstance | undefined;
    let source: ConfigSource | undefined;
    await check(
      'loads through the plugin loader as a device plugin',
      async () => {
        const { found, discovery } = await findConformanceTarget(options.target, base);
        if (!found)
          throw new Miss(`no plugin found at ${options.target} (a folder with a package.json "taskhost" manifest, or a plugin name)`);
        report.plugin = { name: found.name, dir: found.dir, source: found.source };
        if ('reason' in found) throw new Miss(`the loader skipped it: ${found.reason}`);
        report.plugin.version = found.version;
        report.plugin.apiVersion = found.apiVersion;
        if (found.type !== 'device') throw new Miss(`its manifest says type "${found.type}"; this suite checks device plugins`);
        source = await configSource(found.dir, options.pluginConfigFile);
        // Only the plugin under test is hosted: the others are switched off.
        const plugins: AgentConfig['plugins'] = Object.fromEntries(
          discovery.plugins.filter((p) => p.name !== found.name).map((p) => [p.name, { ...base.plugins[p.name], enabled: false }]),
        );
        plugins[found.name] = { ...base.plugins[found.name], enabled: true, ...(source ? { config: source.config } : {}) };
        loader = new PluginLoader({
          config: { ...base, plugins },
          ...(options.logger ? { logger: options.logger } : {}),
          ...(isPathTarget(options.target) ? { extraDirs: [found.dir] } : {}),
          probe: { trackTimers: true, env: { TASKHOST_CONFORMANCE_RUN: runId } },
        });
        await loader.start();
        instance = loader.get(found.name);
        hosted = instance.state === 'running';
        const err = instance.lastError;
        // A rejected config is the next check's finding; anything else means it did not load.
        if (instance.state !== 'running' && err?.code !== InvalidConfigError.code) {
          throw new Miss(`it did not start: ${err ? describe(err) : instance.state}`);
        }
      },
      loadTimeoutMs,
    );
    if (!instance) return report;
    const inst = instance;

    await check('accepts the config it is tested with', async () => {
      const err = inst.lastError;
      if (inst.state !== 'running' && err?.code === InvalidConfigError.code) {
        const issues = err instanceof InvalidConfigError && err.errors.length ? formatIssues(err.errors).join('; ') : err.message;
        const where = source?.from ?? 'the agent config';
        throw new Miss(`the config from ${where} was rejected: ${issues}; make it valid for configSchema()`);
      }
      if (!source) throw new Skip('no conformance.json "config" and no --plugin-config: the plugin ran with its defaults');
    });
    if (inst.state !== 'running') return report;
    /** What the worker holds once the plugin is up: what it holds later is measured against it. */
    const baseline = (await inst.diagnostics()).resources;

    await check('implements fingerprint, reserve and stats', async () => {
      const missing = deviceMethods.filter((m) => !inst.implements(m));
      if (missing.length)
        throw new Miss(
          `missing: ${missing.join(', ')}; a device plugin implements fingerprint(signal), reserve(deviceIds) and stats(intervalMs, signal)`,
        );
    });

    // The first fingerprint as sent, valid or not: later checks still need its device ids.
    let groups: Partial<DeviceGroup>[] | undefined;
    await check('fingerprint() reports valid device groups at once', async () => {
      const stop = new AbortController();
      let first: IteratorResult<unknown>;
      try {
        const stream = inst.stream('fingerprint', [], { signal: stop.signal, window: 4 })[Symbol.asyncIterator]();
        first = await withTimeout(
          stream.next(),
          firstFingerprintMs,
          `no fingerprint within ${firstFingerprintMs / 1000}s: yield the first message at once, { groups: [] } when there are no devices`,
        );
      } finally {
        stop.abort();
      }
      if (first.done)
        throw new Miss('the fingerprint stream ended without a message: keep it open and yield again when the devices change');
      const value = first.value as { groups?: unknown };
      if (Array.isArray(value?.groups)) groups = value.groups as Partial<DeviceGroup>[];
      const problems = fingerprintProblems(first.value);
      if (problems.length) throw new Miss(problems.join('; '));
    });

    await check('reserve() of known devices returns a valid reservation', async () => {
      if (!groups) throw new Skip('there is no fingerprint to take device ids from');
      const group = groups.find((g) => Array.isArray(g.devices) && g.devices.some((d) => d?.healthy));
      if (!group) {
        throw new Skip(
          'the plugin reported no healthy devices, so there is nothing to reserve; test it with a config that finds some (conformance.json "config", or --plugin-config)',
        );
      }
      const ids = [...new Set(group.devices!.filter((d) => d?.healthy).map((d) => d.id))];
      let reservation: unknown;
      try {
        reservation = await inst.call('reserve', [ids]);
      } catch (err) {
        throw new Miss(`reserve(${JSON.stringify(ids)}), devices of its own group ${label(group)}, failed with ${describe(err)}`);
      }
      const problems = reservationProblems(reservation);
      if (problems.length) throw new Miss(`reserve(${JSON.stringify(ids)}) returned ${problems.join('; ')}`);
    });

    await check('reserve() of an unknown id is rejected with UNKNOWN_DEVICE', async () => {
      const err = await inst.call('reserve', [[unknownId]]).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!err)
        throw new Miss(`reserve(["${unknownId}"]) succeeded; throw UnknownDeviceError (UNKNOWN_DEVICE) for an id the plugin does not have`);
      const code = (err as TaskhostError).code;
      if (code !== 'UNKNOWN_DEVICE')
        throw new Miss(
          `reserve(["${unknownId}"]) failed with ${code}; use UnknownDeviceError (UNKNOWN_DEVICE) so the host can tell a wrong id apart`,
        );
    });

    const { intervalMs, windowMs, minSamples, maxGapIntervals } = statsCadence;
    const samples: { at: number; value: unknown }[] = [];
    await check('stats() streams at the interval', async () => {
      const stop = new AbortController();
      const timer = setTimeout(() => stop.abort(), windowMs);
      const t0 = performance.now();
      try {
        for await (const value of inst.stream('stats', [intervalMs], { signal: stop.signal, window: 4 })) {
          samples.push({ at: performance.now(), value });
        }
      } catch (err) {
        if (!stop.signal.aborted) throw new Miss(`stats(${intervalMs}) failed with ${describe(err)}`);
      } finally {
        clearTimeout(timer);
        stop.abort();
      }
      const ended = Math.min(performance.now(), t0 + windowMs);
      const at = (s: number) => `${s} sample${s === 1 ? '' : 's'}`;
      if (samples.length < minSamples) {
        throw new Miss(
          `${at(samples.length)} in ${windowMs / 1000}s at a ${intervalMs}ms interval, expected at least ${minSamples}: yield one at once, then one every intervalMs until the signal aborts`,
        );
      }
      // The time from the last sample to the end of the window counts too: a stream that stalls
      // for good after a few samples is the worst gap of all.
      const times = [t0, ...samples.map((s) => s.at), ended];
      const gaps = times.slice(1).map((t, i) => t - times[i]!);
      const worst = gaps.indexOf(Math.max(...gaps));
      if (gaps[worst]! > maxGapIntervals * intervalMs) {
        const after =
          worst === 0
            ? 'before the first sample'
            : worst === samples.length
              ? `after sample ${worst}, to the end of the window`
              : `after sample ${worst}`;
        throw new Miss(
          `a gap of ${Math.round(gaps[worst]!)}ms ${after} at a ${intervalMs}ms interval (at most ${maxGapIntervals * intervalMs}ms allowed): sample on a schedule, and skip a tick rather than stall`,
        );
      }
    });

    await check('stats() samples are valid DeviceStats', async () => {
      if (samples.length === 0) throw new Skip('stats() sent no samples');
      samples.forEach(({ value }, i) => {
        const checked = validateStats(value);
        if (!checked.ok) throw new Miss(`sample ${i + 1} is not a DeviceStats: ${formatIssues(checked.issues).join('; ')}`);
        if (checked.value.timestamp < 1e12)
          throw new Miss(`sample ${i + 1} has timestamp ${checked.value.timestamp}, which is not unix milliseconds: use Date.now()`);
      });
    });

    await check('stats() reports only fingerprinted devices', async () => {
      if (samples.length === 0) throw new Skip('stats() sent no samples');
      if (!groups) throw new Skip('there is no fingerprint to compare with');
      const known = new Map(groups.map((g) => [label(g), new Set((g.devices ?? []).map((d) => d?.id))]));
      for (const { value } of samples) {
        for (const g of (value as { groups?: Partial<DeviceGroup>[] }).groups ?? []) {
          const devices = known.get(label(g));
          if (!devices)
            throw new Miss(
              `stats name group ${label(g)}, which the fingerprint does not list; report stats under the groups of the fingerprint`,
            );
          const instances = Object.keys((g as { instances?: object }).instances ?? {});
          const stray = instances.find((id) => !devices.has(id));
          if (stray !== undefined)
            throw new Miss(
              `stats name device "${stray}" in ${label(g)}, which the fingerprint does not list there; report only fingerprinted devices, under their own group`,
            );
        }
      }
    });
    await check('fingerprint() and stats() settle when their signal aborts', async () => {
      const diagnose = () => inst.diagnostics();
      const before = await inFlightIds(diagnose);
      const stop = new AbortController();
      const open = [
        drain(inst.stream('fingerprint', [], { signal: stop.signal, window: 4 })),
        drain(inst.stream('stats', [intervalMs], { signal: stop.signal, window: 4 })),
      ].map((p) => p.catch(() => undefined));
      const calls = await opened(diagnose, ['fingerprint', 'stats'], before);
      stop.abort();
      await Promise.all(open);
      const left = await stillInFlight(diagnose, calls);
      if (left.length) throw new Miss(describeUnsettled(left));
    });

    await check('closing its streams leaves no timers or handles behind', async () => {
      // What init() started may run on while the plugin is up; what a stream started may not.
      const leak = await leakedResources(diagnose(inst), { baseline, mayRun: (origin) => setUp.has(origin) });
      if (leak) {
        throw new Miss(
          `${describeLeak(leak)} still active after every fingerprint() and stats() stream was closed: stop what a stream started when its signal aborts (clear its timers, kill what it spawned)`,
        );
      }
    });

    await check('shutdown() leaves no timers or handles behind', async () => {
      const left = await shutdownLeftovers(inst, 'the streams');
      if (left === 'not running') throw new Skip('the plugin was not running at the end of the suite');
      if (left) throw new Miss(left);
    });
    return report;
  } finally {
    await check.settle(checkTimeoutMs);
    await loader?.close();
    if (hosted) {
      await check('nothing it spawned is left running', async () => {
        const left = await leftoverProblem(marks, {
          whose: ', started by the plugin,',
          after: 'it shut down',
          fix: 'stop what you spawn in shutdown(), or when the stream that spawned it ends',
        });
        if (left === 'no /proc') throw new Skip('there is no /proc here to look for processes in');
        if (left) throw new Miss(left);
      });
    }
    await rm(dataDir, { recursive: true, force: true });
  }
}

function diagnose(inst: PluginInstance) {
  return () => inst.diagnostics();
}

/** The plugin config to test with, from `file` or else conformance.json; undefined when neither gives one. */
async function configSource(dir: string, file: string | undefined): Promise<ConfigSource | undefined> {
  if (file !== undefined) {
    const abs = path.resolve(file);
    return { config: relativePaths(await readJson(abs, `the --plugin-config file ${abs}`), path.dirname(abs)), from: abs };
  }
  const spec = path.join(dir, 'conformance.json');
  let doc: unknown;
  try {
    doc = await readJson(spec, spec);
  } catch (err) {
    if ((err as { missing?: boolean }).missing) return undefined;
    throw err;
  }
  const { config } = parseWith(validateConformanceFile, doc, spec) as { config?: unknown };
  return config === undefined ? undefined : { config: relativePaths(config, dir), from: `${spec} "config"` };
}

async function readJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const miss = new Miss(`cannot read ${what}: ${(err as Error).message}`);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') Object.assign(miss, { missing: true });
    throw miss;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Miss(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** `value` with every string that starts with "./" or "../" made absolute against `base`. */
function relativePaths(value: unknown, base: string): unknown {
  if (typeof value === 'string') return /^\.\.?\//.test(value) ? path.resolve(base, value) : value;
  if (Array.isArray(value)) return value.map((v) => relativePaths(v, base));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, relativePaths(v, base)]));
  }
  return value;
}

function label(group: Partial<DeviceGroup>): string {
  return groupId({ vendor: String(group.vendor), type: String(group.type), name: String(group.name) });
}

/** What is wrong with a fingerprint message, in words a plugin author can act on; empty when nothing. */
export function fingerprintProblems(message: unknown): string[] {
  const groups = (message as { groups?: unknown } | null)?.groups;
  if (!Array.isArray(groups)) return [`a fingerprint is { groups: [...] }, got ${JSON.stringify(message)}`];
  const problems: string[] = [];
  const groupAt = new Map<string, number>();
  const deviceAt = new Map<string, string>();
  (groups as Partial<DeviceGroup>[]).forEach((group, g) => {
    const id = label(group ?? {});
    if (groupAt.has(id))
      problems.push(`group ${id} is listed twice (/groups/${groupAt.get(id)} and /groups/${g}): put all its devices in one group`);
    else groupAt.set(id, g);
    for (const [key, attribute] of Object.entries(group?.attributes ?? {})) {
      const { value, unit } = (attribute ?? {}) as { value?: unknown; unit?: unknown };
      if (unit === undefined) continue;
      if (typeof value !== 'number') {
        problems.push(
          `attribute "${key}" of ${id} has unit ${JSON.stringify(unit)} on a ${typeof value} value: only numbers carry a unit, e.g. { "value": 80, "unit": "GiB" }`,
        );
      } else if (!(units as readonly unknown[]).includes(unit)) {
        problems.push(
          `attribute "${key}" of ${id} has unit ${JSON.stringify(unit)}, which is not a unit taskhost knows (${units.join(' ')})`,
        );
      }
    }
    (Array.isArray(group?.devices) ? group.devices : []).forEach((device, d) => {
      const where = `/groups/${g}/devices/${d}`;
      const seen = deviceAt.get(String(device?.id));
      if (seen !== undefined)
        problems.push(`device id "${device?.id}" is used twice (${seen} and ${where}): ids must be unique across the plugin's groups`);
      else deviceAt.set(String(device?.id), where);
    });
  });
  if (problems.length) return problems;
  const checked = validateFingerprint(message);
  return checked.ok ? [] : formatIssues(checked.issues).map((issue) => `not a valid DeviceFingerprint at ${issue}`);
}

/** What is wrong with a reserve() result; empty when nothing. */
export function reservationProblems(reservation: unknown): string[] {
  if (typeof reservation !== 'object' || reservation === null || Array.isArray(reservation)) {
    return [`${JSON.stringify(reservation)}, not a ContainerReservation { envs, mounts, devices }`];
  }
  const problems: string[] = [];
  const r = reservation as { mounts?: unknown; devices?: unknown };
  const entries = (list: unknown) => (Array.isArray(list) ? (list as Record<string, unknown>[]) : []);
  const relative = (where: string, entry: Record<string, unknown>) => {
    for (const key of ['taskPath', 'hostPath']) {
      const p = entry?.[key];
      if (typeof p === 'string' && !p.startsWith('/'))
        problems.push(`${where}.${key} "${p}", a relative path: make it absolute (start with "/")`);
    }
  };
  entries(r.mounts).forEach((m, i) => relative(`mounts[${i}]`, m));
  entries(r.devices).forEach((d, i) => {
    relative(`devices[${i}]`, d);
    const perms = d?.permissions;
    if (typeof perms === 'string' && !/^(?!.*(.).*\1)[rwm]{1,3}$/.test(perms)) {
      problems.push(
        `devices[${i}].permissions "${perms}", which are not cgroup device permissions: use the letters r (read), w (write), m (mknod), each at most once, e.g. "rw"`,
      );
    }
  });
  if (problems.length) return problems;
  const checked = validateReservation(reservation);
  return checked.ok ? [] : formatIssues(checked.issues).map((issue) => `an invalid ContainerReservation at ${issue}`);
}
