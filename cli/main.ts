/**
 * The `taskhost` command line (contract, design.md section 8). `main()` takes its output
 * streams so tests can run it in-process; the bin script passes the real ones.
 */
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { InvalidConfigError, TaskhostError } from '../shared/errors.js';
import { formatIssues } from '../shared/schema.js';
import { loadAgentConfig, logLevels, parseAgentConfig, type AgentConfig } from '../plugin-loader/agent-config.js';
import { PluginLoader, type PluginListing } from '../plugin-loader/loader.js';
import { validateAgentConfigFile } from '../plugin-loader/validate.js';
import { DriverManager } from '../drivers/driver-manager.js';
import { validateTaskFile } from '../drivers/validate-task.js';
import { runDriverConformance, type CheckResult } from '../drivers/conformance.js';
import { benchCommand } from './bench/bench-command.js';
import { runTask } from './run-task.js';
import { cliLogger } from './log.js';
import { table } from './table.js';

export interface CliIO {
  stdout: { write(text: string | Uint8Array): unknown };
  stderr: { write(text: string | Uint8Array): unknown };
  /** Where Ctrl-C comes from: the process, or a test. */
  interrupts?: { on(event: 'SIGINT', fn: () => void): unknown; off(event: 'SIGINT', fn: () => void): unknown };
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
      new Option('--log-level <level>', 'log level for messages on stderr (default: warn; silent for plugins and validate)').choices(logLevels),
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
  taskhost plugins                       list built-in plugins and those in ./plugins
  taskhost fingerprint                   each driver's health and attributes
  taskhost validate --config agent.json  check an agent config and every plugin's config
  taskhost validate --task task.json     check a task spec and its driver config
  taskhost conformance ./plugins/my-drv  check a driver against the contract, with what to fix
  taskhost bench -n 50 -c 4              container lifecycles: docker driver vs Engine API vs CLI`,
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
    .description("run one task to completion: its output streams to the terminal, events to stderr, and taskhost exits with the task's exit code")
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
    .command('conformance')
    .argument('<plugin>', 'a plugin folder (./plugins/my-driver) or the name of a plugin taskhost finds (raw_exec)')
    .description('run the conformance suite against a driver: each check of the contract, and what to fix when one fails')
    .option('--json', 'print one JSON document')
    .action(async (target: string, opts: { json?: boolean }) => {
      const globals = program.opts<GlobalOptions>();
      const config = globals.config || globals.pluginDir ? await agentConfig(globals) : undefined;
      const mark: Record<CheckResult['status'], string> = { pass: 'ok  ', fail: 'FAIL', skip: 'skip' };
      if (!opts.json) io.stdout.write(`taskhost conformance: ${target}\n`);
      const report = await runDriverConformance({
        target,
        ...(config ? { config } : {}),
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
        const what = [p.name, p.version && `version ${p.version}`, p.apiVersion && `API ${p.apiVersion}`, p.source].filter(Boolean).join(', ');
        io.stdout.write(`${what}: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped\n`);
      }
      if (report.failed > 0) exitCode = 1;
    });

  program
    .command('bench')
    .description('container lifecycle benchmark (after bucketbench): the docker driver against the raw Engine API and the docker CLI, in one run')
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
    .description("each driver's health, description and attributes")
    .option('--json', 'print one JSON document')
    .action(async (opts: { json?: boolean }) => {
      const config = await agentConfig(program.opts<GlobalOptions>());
      const logger = cliLogger(config.logLevel ?? 'silent', io);
      const loader = new PluginLoader({ config, logger });
      const manager = new DriverManager({ loader, logger });
      try {
        await manager.waitForFirstFingerprint(10_000);
        const drivers = manager.health().sort((a, b) => a.name.localeCompare(b.name));
        if (opts.json) io.stdout.write(JSON.stringify({ drivers }, null, 2) + '\n');
        else {
          const rows = drivers.map((d) => [
            d.name,
            d.health,
            d.healthDescription,
            Object.entries(d.attributes).map(([k, v]) => `${k}=${v}`).join(' '),
          ]);
          io.stdout.write(table(['DRIVER', 'HEALTH', 'DESCRIPTION', 'ATTRIBUTES'], rows) + '\n');
        }
      } finally {
        await manager.close();
        await loader.close();
      }
    });

  program
    .command('validate')
    .description('validate an agent config (and each plugin config in it) or a task spec; one line per error, each with its JSON path')
    .option('--config <file>', 'the agent config file to validate')
    .option('--task <file>', 'a task spec to validate (against its driver\'s schema too)')
    .option('--json', 'print one JSON document')
    .action(async (opts: { config?: string; task?: string; json?: boolean }) => {
      if (opts.task) {
        const globals = program.opts<GlobalOptions>();
        const config = await agentConfig(globals);
        const logger = cliLogger(globals.logLevel ?? 'silent', io);
        const loader = new PluginLoader({ config, logger });
        const manager = new DriverManager({ loader, logger });
        try {
          const issues = await validateTaskFile(opts.task, manager);
          if (opts.json) io.stdout.write(JSON.stringify({ file: opts.task, valid: issues.length === 0, issues }, null, 2) + '\n');
          else {
            for (const line of formatIssues(issues)) io.stdout.write(`${opts.task}: ${line}\n`);
            if (issues.length === 0) io.stdout.write(`${opts.task}: valid\n`);
          }
          if (issues.length > 0) exitCode = 1;
        } finally {
          await manager.close();
          await loader.close();
        }
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
  if (!Number.isInteger(n) || n < 1) throw new CommanderError(2, 'taskhost.usage', `error: ${flag} must be a positive integer, got "${value}"`);
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
