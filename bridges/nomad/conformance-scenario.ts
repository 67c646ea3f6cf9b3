/**
 * A driver's conformance.json (docs/writing-a-driver.md) as a scenario for the Go client's
 * `driver` subcommand (test/bridges/nomad/go-client/driver.go), so the tasks that pass
 * `taskhost conformance` are also run the way Nomad's client runs them, through the bridge.
 *
 * conformance.json is written in the plugin's own names (camelCase JSON, as taskhost gives the
 * driver its config); Nomad sends what a job's HCL `config` block says, in the names of the
 * hclspec the bridge generates (snake_case, hclspec.ts). The task configs and the bad config's
 * path are turned into those names here, with the driver's task config schema; the Go client
 * then encodes them as Nomad does (every attribute of the spec, msgpack).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { InvalidConfigError, PluginNotFoundError } from '../../shared/errors.js';
import { compileSchema, parseWith, type JsonSchema } from '../../shared/schema.js';
import { DriverScenarios } from '../../conformance/driver-conformance.js';
import type { AgentConfig } from '../../plugin-loader/agent-config.js';
import { DriverClient } from '../../drivers/driver-client.js';
import { NomadPluginHost } from './nomad-plugin-host.js';
import { additional, hclNames, itemsOf, kindOf, properties } from './hclspec.js';
import { hclPath } from './msgpack-config.js';

/** An exit a task must end with; an unset field is not checked. */
export interface ExitExpect {
  exitCode?: number;
  /** The signal's number (9 for SIGKILL). */
  signal?: number;
}

/** How a task is stopped (a job's kill_signal and kill_timeout) and how it must end. */
export interface StopExpect {
  /** Empty: Nomad's default, SIGINT. */
  stopSignal?: string;
  stopTimeoutMs: number;
  stopped: ExitExpect;
}

/** A task that ends on its own; unset stdout/stderr are not compared (only their EOF is awaited). */
export interface ExitTaskScenario {
  config: Record<string, unknown>;
  exitCode: number;
  stdout?: string;
  stderr?: string;
}

/** The Go client's driverScenario (test/bridges/nomad/go-client/driver.go); configs in HCL names. */
export interface NomadDriverScenario {
  /** The plugin's config for SetConfig. */
  config: Record<string, unknown>;
  attribute?: { name: string; type: 'bool' | 'int' | 'float' | 'string'; value: unknown };
  exitTask?: ExitTaskScenario;
  outputTask?: ExitTaskScenario;
  /** StartTask must fail with InvalidArgument naming `path`. */
  badConfig?: { config: Record<string, unknown>; path: string };
  longTask: StopExpect & {
    config: Record<string, unknown>;
    /** Stdout text showing it runs ("" any output); unset: InspectTask RUNNING. */
    ready?: string;
    signal?: string;
    signalOutput?: string;
    signalEvent?: string;
    exec?: { command: string[]; stdout: string };
    output?: string[];
    keepsWriting: boolean;
  };
  stubbornTask?: StopExpect & { config: Record<string, unknown> };
}

const parseScenarios = compileSchema<DriverScenarios>(DriverScenarios, 'conformance.json');

/**
 * The Go client's scenario for a driver's conformance.json (parsed JSON; invalid ones throw
 * InvalidConfigError naming the path), given the driver's `taskConfigSchema()`.
 *
 * Stops send SIGTERM, as a job with `kill_signal = "SIGTERM"` would: conformance.json's
 * longRunning stops on, and ignoresStop ignores, the driver's default kill signal, which is
 * SIGTERM, not Nomad's default SIGINT. The timeouts are the conformance suite's (2 s, and 1 s for
 * ignoresStop, which must then end killed: signal 9).
 */
export function conformanceScenario(conformance: unknown, taskConfigSchema: JsonSchema): NomadDriverScenario {
  const sc = parseWith(parseScenarios, conformance, 'conformance.json');
  const hcl = (config: Record<string, unknown>) => hclConfig(config, taskConfigSchema) as Record<string, unknown>;
  const scenario: NomadDriverScenario = {
    config: {},
    exitTask: { config: hcl(sc.fastExit.config), exitCode: sc.fastExit.exitCode },
    badConfig: { config: hcl(sc.badConfig.config), path: hclPath(taskConfigSchema, sc.badConfig.path) },
    longTask: {
      config: hcl(sc.longRunning),
      stopSignal: 'SIGTERM',
      stopTimeoutMs: 2_000,
      stopped: {},
      keepsWriting: false,
    },
  };
  if (sc.output) scenario.outputTask = { config: hcl(sc.output.config), exitCode: 0, stdout: sc.output.stdout };
  if (sc.exec) scenario.longTask.exec = { command: sc.exec.command, stdout: sc.exec.stdout };
  if (sc.ignoresStop) {
    scenario.stubbornTask = { config: hcl(sc.ignoresStop), stopSignal: 'SIGTERM', stopTimeoutMs: 1_000, stopped: { signal: 9 } };
  }
  return scenario;
}

/**
 * A config in the schema's names as the HCL names Nomad sends it with: the reverse of
 * msgpack-config.ts's fromHcl. Record keys, and keys the schema does not know (as in a bad
 * config), stay as they are.
 */
export function hclConfig(value: unknown, schema: JsonSchema | undefined): unknown {
  if (Array.isArray(value)) {
    const items = schema && kindOf(schema) === 'array' ? itemsOf(schema) : undefined;
    return value.map((v) => hclConfig(v, items));
  }
  if (typeof value !== 'object' || value === null || !schema) return value;
  const props = properties(schema);
  if (props) {
    const names = hclNames(schema);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [names.get(k) ?? k, hclConfig(v, props[k])]));
  }
  const values = additional(schema);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, hclConfig(v, values)]));
}

/**
 * The scenario of a driver the agent config finds: its folder's conformance.json, and its
 * taskConfigSchema() from the driver itself, hosted alone (as `nomad serve` hosts it) and shut
 * down again. `taskhost nomad scenario <driver>` prints it.
 */
export async function loadConformanceScenario(options: {
  name: string;
  config: AgentConfig;
  logger: Logger;
}): Promise<NomadDriverScenario> {
  const host = await NomadPluginHost.open(options);
  try {
    const { type, dir } = host.candidate;
    if (type !== 'driver') {
      throw new PluginNotFoundError(
        `plugin "${options.name}" is a ${type} plugin: scenarios from conformance.json are for drivers (a device plugin's checks are the Go client's device subcommand, docs/nomad.md)`,
      );
    }
    const file = path.join(dir, 'conformance.json');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new InvalidConfigError(`${file} is missing: describe the driver's test tasks there (docs/writing-a-driver.md)`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new InvalidConfigError(`${file} is not JSON: ${(err as Error).message}`);
    }
    const schema = await new DriverClient(await host.ready()).taskConfigSchema();
    return conformanceScenario(parsed, schema);
  } finally {
    await host.close();
  }
}
