/**
 * The `taskhost` command line (contract, design.md section 8). `main()` takes its output
 * streams so tests can run it in-process; the bin script passes the real ones.
 */
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import type { Attribute, StatValue } from '../shared/device.js';
import { formatDuration } from '../shared/duration.js';
import { InvalidConfigError, TaskhostError } from '../shared/errors.js';
import { formatIssues } from '../shared/schema.js';
import { loadAgentConfig, logLevels, parseAgentConfig, type AgentConfig } from '../plugin-loader/agent-config.js';
import { PluginLoader, type PluginListing } from '../plugin-loader/loader.js';
import { validateAgentConfigFile } from '../plugin-loader/validate.js';
import { DriverManager } from '../drivers/driver-manager.js';
import { DeviceManager, type DevicePluginHealth, type DeviceStatsSnapshot, type NodeDeviceGroup } from '../devices/device-manager.js';
import { validateTaskFile } from '../drivers/validate-task.js';
import { runDriverConformance, type CheckResult } from '../conformance/driver-conformance.js';
import { runDeviceConformance } from '../conformance/device-conformance.js';
import { findConformanceTarget } from '../conformance/check-runner.js';
import { benchCommand } from './bench/bench-command.js';
import { runTask, stopSignals, type Interrupts, type StopSignal } from './run-task.js';
import { Agent } from '../agent/agent.js';
import { addAgentCommands } from './agent-commands.js';
import { defaultKubeletDir } from '../bridges/kubelet/device-plugin-messages.js';
import { cliLogger } from './log.js';
import { table } from './table.js';

export interface CliIO {
  stdout: { write(text: string | Uint8Array): unknown };
  stderr: { write(text: string | Uint8Array): unknown };
  /** Where Ctrl-C, SIGTERM and SIGHUP come from: the process, or a test. */
  interrupts?: Interrupts;
}

interface GlobalOptions {
  config?: string;
  pluginDir?: string;
  logLevel?: AgentConfig['logLevel'];
}

/** Exit codes: 0 ok, 1 invalid input or failed check, 2 usage error. */
export async function main(argv: string[], io: CliIO = process): Promise<number> {
  let exitCode = 0;
  const program = new Command('taskhost')
    .description('Host task-driver and device plugins in supervised worker threads.')
    .option('--config <file>', 'agent config file (JSON)')
    .option('--plugin-dir <dir>', 'plugin directory (overrides the config; default ./plugins)')
    .addOption(
      new Option('--log-level <level>', 'log level for messages on stderr (default: warn; silent for plugins and validate)').choices(
        logLevels,
      ),
    )
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride()
    .showHelpAfterError('(run "taskhost --help" for usage)')
    .addHelpText(
      'after',
      `
Examples:
  taskhost run examples/hello.json       run a task; its output streams here, its exit code is ours
  taskhost run task.json --json          the same, with one JSON result document on stdout
  taskhost submit task.json --wait       run a task on the running agent; its exit code is ours
  taskhost tasks --filter name~=^web     the agent's tasks whose name starts with web
  taskhost plugins                       list built-in plugins and those in ./plugins
  taskhost fingerprint                   each driver's health and attributes, and the device groups
  taskhost devices                       every device with its health, and each device plugin's state
  taskhost devices stats --json          the latest device stats, and how old each sample is
  taskhost validate --config agent.json  check an agent config and every plugin's config
  taskhost validate --task task.json     check a task spec and its driver config
  taskhost kubelet serve example-file --resource example.com/file
                                         serve a device plugin to the kubelet of this node
  taskhost conformance ./plugins/my-drv  check a driver or device plugin against its contract, with what to fix
  taskhost bench -n 50 -c 4              container lifecycles: docker driver vs Engine API vs CLI
  taskhost nomad install /opt/nomad/plugins raw_exec   offer taskhost's raw_exec to Nomad as an external plugin`,
    );

  program
    .command('plugins')
    .description('list every plugin found: type, version, API version, source, state, or why it was skipped')
    .option('--json', 'print one JSON document')
    .action(async (opts: { json?: boolean }) => {
      const config = await agentConfig(program.opts<GlobalOptions>());
      // The table already says why a plugin is skipped or failed: no log lines unless asked for.
      const loader = new PluginLoader({ config, logger: cliLogger(config.logLevel ?? 'silent', io) });
      try {
        await loader.start();
        const rows = loader.list();
        if (opts.json) io.stdout.write(JSON.stringify({ pluginDir: config.pluginDir, plugins: rows }, null, 2) + '\n');
        else io.stdout.write(pluginsTable(rows, config.pluginDir) + '\n');
      } finally {
        await loader.close();
      }
    });

  program
    .command('run')
    .argument('<file>', 'task spec (JSON)')
    .description(
      "run one task to completion: its output streams to the terminal, events to stderr, and taskhost exits with the task's exit code",
    )
    .option('--json', 'print only a JSON result document on stdout (task output and events go to stderr)')
    .action(async (file: string, opts: { json?: boolean }) => {
      const globals = program.opts<GlobalOptions>();
      const config = await agentConfig(globals);
      exitCode = await runTask({
        file,
        json: Boolean(opts.json),
        config,
        logger: cliLogger(config.logLevel ?? 'warn', io),
        io,
        ...(io.interrupts ? { interrupts: io.interrupts } : {}),
      });
    });

  program
    .command('agent')
    .description(
      'run the node agent: it keeps every task in its store under dataDir and serves the API on <dataDir>/agent.sock; SIGINT or SIGTERM stops it and leaves its tasks running',
    )
    .option('--socket <path>', 'the unix socket (default <dataDir>/agent.sock)')
    .option('--listen <host:port>', 'also serve loopback TCP, with the bearer token of <dataDir>/agent.token')
    .action(async (opts: { socket?: string; listen?: string }) => {
      const config = await agentConfig(program.opts<GlobalOptions>());
      const agent = await Agent.start({
        config,
        logger: cliLogger(config.logLevel ?? 'warn', io),
        ...(opts.socket ? { socket: opts.socket } : {}),
        ...(opts.listen ? { listen: opts.listen } : {}),
      });
      const where = agent.addresses.tcp ? ` and ${agent.addresses.tcp.host}:${agent.addresses.tcp.port}` : '';
      io.stderr.write(`taskhost: agent listening on ${agent.addresses.socket}${where}\n`);
      const interrupts = io.interrupts ?? process;
      const signal = await new Promise<StopSignal>((resolve) => {
        const handlers = stopSignals.map((s) => {
          const handler = () => {
            for (const [name, fn] of handlers) interrupts.off(name, fn);
            resolve(s);
          };
          interrupts.on(s, handler);
          return [s, handler] as const;
        });
      });
      io.stderr.write(`taskhost: ${signal}: stopping the agent (its tasks keep running)\n`);
      await agent.close();
    });

  // The Nomad bridge is loaded only for its commands: gRPC and protobuf cost the rest nothing.
  const nomad = program
    .command('nomad')
    .description("serve taskhost plugins to Nomad as external plugins, over Nomad's own plugin protocol (docs/nomad.md)");
  nomad
    .command('serve')
    .argument('<plugin>', 'the taskhost plugin to serve (a driver or a device plugin)')
    .description(
      'run one plugin as a Nomad external plugin: Nomad starts this (through a launcher from "taskhost nomad install"), not a person',
    )
    .action(async (plugin: string) => {
      const config = await agentConfig(program.opts<GlobalOptions>());
      const { nomadServeCommand } = await import('../bridges/nomad/nomad-serve.js');
      exitCode = await nomadServeCommand({ plugin, config, io: { stdout: io.stdout, stderr: io.stderr } });
    });
  nomad
    .command('scenario')
    .argument('<driver>', 'a driver the agent config finds, with a conformance.json in its folder')
    .description(
      "print the driver's conformance.json as a scenario for the Go client's `driver` subcommand (docs/nomad.md): its tasks in Nomad's HCL names",
    )
    .action(async (driver: string) => {
      const config = await agentConfig(program.opts<GlobalOptions>());
      const { loadConformanceScenario } = await import('../bridges/nomad/conformance-scenario.js');
      const scenario = await loadConformanceScenario({ name: driver, config, logger: cliLogger(config.logLevel ?? 'silent', io) });
      io.stdout.write(JSON.stringify(scenario) + '\n');
    });
  nomad
    .command('install')
    .argument('<nomad-plugin-dir>', "Nomad's plugin_dir")
    .argument('<plugins...>', 'the taskhost plugins to offer Nomad')
    .description(
      'write a launcher per plugin into Nomad\'s plugin_dir, named after the plugin, so plugin "<name>" {} in Nomad\'s agent config finds it',
    )
    .action(async (dir: string, plugins: string[]) => {
      const globals = program.opts<GlobalOptions>();
      const config = await agentConfig(globals);
      const { nomadInstall } = await import('../bridges/nomad/nomad-install.js');
      const written = await nomadInstall({
        dir,
        plugins,
        config,
        logger: cliLogger(config.logLevel ?? 'silent', io),
        ...(globals.config ? { configFile: globals.config } : {}),
        ...(globals.pluginDir ? { pluginDir: globals.pluginDir } : {}),
      });
      for (const w of written) io.stdout.write(`${w.path}: launcher for ${w.type} plugin "${w.plugin}"\n`);
      io.stdout.write(
        `\nIn Nomad's agent config:\n  plugin_dir = "${path.resolve(dir)}"\n` +
          written.map((w) => `  plugin "${w.plugin}" {\n    config {}\n  }\n`).join(''),
      );
    });

  // submit, tasks, status, logs, stop, images, events: clients of a running agent.
  addAgentCommands(program, {
    io,
    config: () => agentConfig(program.opts<GlobalOptions>()),
    configFile: () => program.opts<GlobalOptions>().config,
    exit: (code) => (exitCode = code),
  });

  program
    .command('conformance')
    .argument('<plugin>', 'a plugin folder (./plugins/my-driver) or the name of a plugin taskhost finds (raw_exec)')
    .description(
      "run the driver or device conformance suite, as the plugin's type says: each check of the contract, and what to fix when one fails",
    )
    .option('--json', 'print one JSON document')
    .option(
      '--plugin-config <file>',
      'device plugins: a JSON file with the plugin config to test with, instead of conformance.json\'s "config"',
    )
    .action(async (target: string, opts: { json?: boolean; pluginConfig?: string }) => {
      const globals = program.opts<GlobalOptions>();
      const config = globals.config || globals.pluginDir ? await agentConfig(globals) : undefined;
      const { found } = await findConformanceTarget(target, config);
      const type = found && 'type' in found ? found.type : undefined;
      const device = type === 'device';
      if (opts.pluginConfig && type === 'driver')
        throw new CommanderError(2, 'taskhost.usage', 'error: --plugin-config is for device plugins');
      const mark: Record<CheckResult['status'], string> = { pass: 'ok  ', fail: 'FAIL', skip: 'skip' };
      if (!opts.json) io.stdout.write(`taskhost conformance: ${target}\n`);
      const report = await (device ? runDeviceConformance : runDriverConformance)({
        target,
        ...(config ? { config } : {}),
        ...(opts.pluginConfig ? { pluginConfigFile: opts.pluginConfig } : {}),
        logger: cliLogger(globals.logLevel ?? 'silent', io),
        onCheck: (c) => {
          if (opts.json) return;
          io.stdout.write(`  ${mark[c.status]}  ${c.name} (${c.durationMs}ms)\n`);
          if (c.message) io.stdout.write(`        ${c.message}\n`);
        },
      });
      if (opts.json) io.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else {
        const p = report.plugin;
        const what = [p.name, p.version && `version ${p.version}`, p.apiVersion && `API ${p.apiVersion}`, p.source]
          .filter(Boolean)
          .join(', ');
        io.stdout.write(`${what}: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped\n`);
      }
      if (report.failed > 0) exitCode = 1;
    });

  program
    .command('bench')
    .description(
      'container lifecycle benchmark (after bucketbench): the docker driver against the raw Engine API and the docker CLI, in one run',
    )
    .option('--image <image>', 'image to run (a local one: nothing is pulled from the internet)', 'busybox:1.35')
    .option('-n, --lifecycles <n>', 'lifecycles per arm', (v) => positiveInt(v, '--lifecycles'), 30)
    .option('-c, --concurrency <n>', 'lifecycles in flight in the throughput phase', (v) => positiveInt(v, '--concurrency'), 4)
    .option('--warmup <n>', 'lifecycles per arm run first and discarded', (v) => positiveInt(v, '--warmup'), 2)
    .option('--json', 'print one JSON document')
    .action(async (opts: { image: string; lifecycles: number; concurrency: number; warmup: number; json?: boolean }) => {
      const globals = program.opts<GlobalOptions>();
      const config = await agentConfig(globals);
      exitCode = await benchCommand({
        ...opts,
        json: Boolean(opts.json),
        config,
        logger: cliLogger(config.logLevel ?? 'warn', io),
        io,
      });
    });

  program
    .command('fingerprint')
    .description("each driver's health, description and attributes, then the device groups (as `taskhost devices`)")
    .option('--json', 'print one JSON document')
    .action(async (opts: { json?: boolean }) => {
      const config = await agentConfig(program.opts<GlobalOptions>());
      const logger = cliLogger(config.logLevel ?? 'silent', io);
      const loader = new PluginLoader({ config, logger });
      const manager = new DriverManager({ loader, logger });
      const devices = new DeviceManager({ loader, logger });
      try {
        await Promise.all([manager.waitForFirstFingerprint(10_000), devices.waitForFirstFingerprint(10_000)]);
        const drivers = manager.health().sort((a, b) => a.name.localeCompare(b.name));
        const deviceDoc = { groups: devices.devices(), plugins: devices.health() };
        if (opts.json) io.stdout.write(JSON.stringify({ drivers, devices: deviceDoc }, null, 2) + '\n');
        else {
          const rows = drivers.map((d) => [
            d.name,
            d.health,
            d.healthDescription,
            Object.entries(d.attributes)
              .map(([k, v]) => `${k}=${v}`)
              .join(' '),
          ]);
          io.stdout.write(table(['DRIVER', 'HEALTH', 'DESCRIPTION', 'ATTRIBUTES'], rows) + '\n');
          io.stdout.write('\n' + devicesTable(deviceDoc.groups, deviceDoc.plugins) + '\n');
        }
      } finally {
        await devices.close();
        await manager.close();
        await loader.close();
      }
    });

  /** Runs `work` with a device manager that has heard from every device plugin. */
  const withDevices = async (work: (devices: DeviceManager) => Promise<void>) => {
    const config = await agentConfig(program.opts<GlobalOptions>());
    const logger = cliLogger(config.logLevel ?? 'silent', io);
    const loader = new PluginLoader({ config, logger });
    const devices = new DeviceManager({ loader, logger });
    try {
      await devices.waitForFirstFingerprint(10_000);
      await work(devices);
    } finally {
      await devices.close();
      await loader.close();
    }
  };

  const devicesCommand = program
    .command('devices')
    .description('every device group and device with its health, and the state of each device plugin')
    .option('--json', 'print one JSON document')
    .action((opts: { json?: boolean }) =>
      withDevices(async (devices) => {
        const groups = devices.devices();
        const plugins = devices.health();
        io.stdout.write((opts.json ? JSON.stringify({ groups, plugins }, null, 2) : devicesTable(groups, plugins)) + '\n');
      }),
    );
  devicesCommand
    .command('stats')
    .description('the latest stats of every device, and how long ago each group was sampled')
    .option('--json', 'print one JSON document')
    .action((_opts: unknown, command: Command) =>
      withDevices(async (devices) => {
        await devices.waitForFirstStats(10_000);
        const snapshot = devices.stats();
        // `devices --json stats` and `devices stats --json` both ask for JSON.
        const { json } = command.optsWithGlobals<{ json?: boolean }>();
        io.stdout.write((json ? JSON.stringify(snapshot, null, 2) : deviceStatsTable(snapshot)) + '\n');
      }),
    );

  program
    .command('kubelet')
    .description('serve a device plugin to a Kubernetes kubelet (the device plugin API v1beta1)')
    .command('serve')
    .argument('<device-plugin>', 'the taskhost device plugin to serve (configured in --config, as for taskhost devices)')
    .requiredOption('--resource <domain/name>', 'the extended resource name pods ask for, e.g. example.com/file (not under kubernetes.io)')
    .option('--kubelet-dir <dir>', "the kubelet's device plugin directory, where kubelet.sock is", defaultKubeletDir)
    .option('--group <vendor/type/name>', "which of the plugin's device groups the resource is (default: its only one)")
    .description(
      'serve one device group of a taskhost device plugin as a Kubernetes extended resource: listens on <kubelet-dir>/taskhost-<resource>.sock, registers with kubelet.sock, and registers again whenever the kubelet restarts; SIGTERM or SIGINT removes the socket and exits',
    )
    .addHelpText(
      'after',
      `
Progress and errors go to stderr (default log level info); there is no --json: it is a server,
not a report. See docs/kubelet.md for running it on every node (a DaemonSet).

Example:
  taskhost --config agent.json kubelet serve example-file --resource example.com/file`,
    )
    .action(async (plugin: string, opts: { resource: string; kubeletDir: string; group?: string }) => {
      // grpc-js and the .proto load only for this command, so the rest of the CLI stays light.
      const { serveKubelet } = await import('../bridges/kubelet/serve-kubelet.js');
      const config = await agentConfig(program.opts<GlobalOptions>());
      exitCode = await serveKubelet({
        plugin,
        resource: opts.resource,
        kubeletDir: opts.kubeletDir,
        group: opts.group,
        config,
        logger: cliLogger(config.logLevel ?? 'info', io),
        stderr: io.stderr,
        interrupts: io.interrupts ?? process,
      });
    });

  program
    .command('validate')
    .description('validate an agent config (and each plugin config in it) or a task spec; one line per error, each with its JSON path')
    .option('--config <file>', 'the agent config file to validate')
    .option('--task <file>', "a task spec to validate (against its driver's schema too)")
    .option('--json', 'print one JSON document')
    .action(async (opts: { config?: string; task?: string; json?: boolean }) => {
      if (opts.task) {
        const globals = program.opts<GlobalOptions>();
        const config = await agentConfig(globals);
        const issues = await validateTaskFile(opts.task, { config, logger: cliLogger(globals.logLevel ?? 'silent', io) });
        if (opts.json) io.stdout.write(JSON.stringify({ file: opts.task, valid: issues.length === 0, issues }, null, 2) + '\n');
        else {
          for (const line of formatIssues(issues)) io.stdout.write(`${opts.task}: ${line}\n`);
          if (issues.length === 0) io.stdout.write(`${opts.task}: valid\n`);
        }
        if (issues.length > 0) exitCode = 1;
        return;
      }
      const file = opts.config ?? program.opts<GlobalOptions>().config;
      if (!file) throw new CommanderError(2, 'taskhost.usage', 'error: validate needs --config <file> or --task <file>');
      const { pluginDir, logLevel } = program.opts<GlobalOptions>();
      const report = await validateAgentConfigFile(file, {
        logger: cliLogger(logLevel ?? 'silent', io),
        ...(pluginDir ? { pluginDir: path.resolve(pluginDir) } : {}),
      });
      if (opts.json) io.stdout.write(JSON.stringify({ file, valid: report.issues.length === 0, ...report }, null, 2) + '\n');
      else {
        for (const line of formatIssues(report.issues)) io.stdout.write(`${file}: ${line}\n`);
        for (const line of formatIssues(report.warnings)) io.stderr.write(`${file}: warning: ${line}\n`);
        if (report.issues.length === 0) {
          io.stdout.write(`${file}: valid (plugin configs checked: ${report.checked.join(', ') || 'none'})\n`);
        }
      }
      if (report.issues.length > 0) exitCode = 1;
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'taskhost.usage') io.stderr.write(err.message + '\n');
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : err.exitCode || 2;
    }
    if (err instanceof InvalidConfigError) {
      for (const line of formatIssues(err.errors)) io.stderr.write(`error: ${line}\n`);
      if (err.errors.length === 0) io.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    if (err instanceof TaskhostError) {
      io.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  return exitCode;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new CommanderError(2, 'taskhost.usage', `error: ${flag} must be a positive integer, got "${value}"`);
  return n;
}

async function agentConfig(opts: GlobalOptions): Promise<AgentConfig> {
  const base = opts.config ? await loadAgentConfig(opts.config) : resolvedDefaults();
  const config = opts.pluginDir ? { ...base, pluginDir: path.resolve(opts.pluginDir) } : base;
  return opts.logLevel ? { ...config, logLevel: opts.logLevel } : config;
}

function resolvedDefaults(): AgentConfig {
  const config = parseAgentConfig({});
  return { ...config, pluginDir: path.resolve(config.pluginDir), dataDir: path.resolve(config.dataDir) };
}

function pluginsTable(rows: PluginListing[], pluginDir: string): string {
  const body = rows.map((r) => [
    r.name,
    r.type,
    r.version ?? '-',
    r.apiVersion ?? '-',
    r.source,
    r.state + (r.restarts ? ` (${r.restarts} restarts)` : ''),
    r.reason && r.state !== 'running' ? r.reason : '',
  ]);
  const summary = `${rows.filter((r) => r.state === 'running').length} running, ${rows.length} found (plugin dir: ${pluginDir})`;
  return `${table(['NAME', 'TYPE', 'VERSION', 'API', 'SOURCE', 'STATE', 'REASON'], body)}\n\n${summary}`;
}

/** One row per device (attributes on a group's first row), one per plugin that reports no group. */
function devicesTable(groups: NodeDeviceGroup[], plugins: DevicePluginHealth[]): string {
  if (plugins.length === 0) return 'no device plugin is running (taskhost plugins says why)';
  const rows: string[][] = [];
  for (const g of groups) {
    const attributes = Object.entries(g.attributes)
      .map(([k, a]) => `${k}=${formatValue(a)}`)
      .join(' ');
    if (g.devices.length === 0) rows.push([g.id, '-', '-', 'no devices', attributes]);
    g.devices.forEach((d, i) => rows.push([g.id, d.id, d.health, d.healthDescription ?? '', i === 0 ? attributes : '']));
  }
  for (const p of plugins) {
    if (p.groups.length === 0) rows.push(['-', '-', p.health, `device plugin "${p.name}": ${p.healthDescription}`, '']);
  }
  const devices = groups.flatMap((g) => g.devices);
  const healthy = devices.filter((d) => d.health === 'healthy').length;
  const states = plugins.map((p) => `${p.name} ${p.health}`).join(', ');
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  const summary = `${count(devices.length, 'device')} in ${count(groups.length, 'group')}, ${healthy} healthy; device plugins: ${states}`;
  return `${table(['GROUP', 'DEVICE', 'HEALTH', 'DESCRIPTION', 'ATTRIBUTES'], rows)}\n\n${summary}`;
}

/** One row per device: its summary stat, the others, and how old the group's sample is. */
function deviceStatsTable(snapshot: DeviceStatsSnapshot): string {
  if (snapshot.groups.length === 0) return 'no device groups (taskhost devices says why)';
  const rows: string[][] = [];
  for (const g of snapshot.groups) {
    const age = g.staleMs === null ? '-' : formatDuration(g.staleMs);
    const instances = Object.entries(g.stats?.instances ?? {});
    if (instances.length === 0) rows.push([g.id, '-', '-', g.stats ? 'no devices' : 'no stats yet', age]);
    for (const [id, s] of instances) {
      const rest = Object.entries(s.stats)
        .map(([k, v]) => `${k}=${formatValue(v)}`)
        .join(' ');
      rows.push([g.id, id, formatValue(s.summary), rest, age]);
    }
  }
  return table(['GROUP', 'DEVICE', 'SUMMARY', 'STATS', 'AGE'], rows);
}

/** `80GiB`, `true`, `text`: a value and its unit with no space, so a list stays one word per item. */
function formatValue(value: Attribute | StatValue): string {
  return `${value.value}${'unit' in value && value.unit ? value.unit : ''}`;
}
