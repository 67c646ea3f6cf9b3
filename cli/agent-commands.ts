/**
 * The commands that drive a running agent through its API (design.md section 10): `submit`,
 * `tasks`, `status`, `logs`, `stop`, `images` and `events`. Each talks to the socket of
 * `--agent` (default the config's `<dataDir>/agent.sock`) in the namespace of `--namespace`;
 * an agent that does not answer, or answers with an error, is one line per problem on stderr
 * and exit code 1. The agent is the truth: specs go to it as they are, and it validates them.
 */
import { CommanderError, Option, type Command } from 'commander';
import { AgentClient } from '../agent/agent-client.js';
import { agentSocket } from '../agent/agent.js';
import type { TaskRecord } from '../agent/store-records.js';
import { AgentUnreachableError, InvalidConfigError, TaskhostError } from '../shared/errors.js';
import { readJsonFile } from '../shared/input-guard.js';
import type { AgentConfig } from '../plugin-loader/agent-config.js';
import { describeState, eventLine, imagesTable, taskDetails, tasksTable, taskExitCode } from './agent-output.js';
import type { CliIO } from './main.js';

export interface AgentCommandsContext {
  io: CliIO;
  /** The agent config of the global flags: its dataDir names the default socket. */
  config(): Promise<AgentConfig>;
  /** The `--config` file given, for the hint of how to start the agent. */
  configFile(): string | undefined;
  /** Sets the process's exit code. */
  exit(code: number): void;
}

interface ClientFlags {
  agent?: string;
  namespace?: string;
  json?: boolean;
}

/** Adds the agent's client commands to `program`. */
export function addAgentCommands(program: Command, context: AgentCommandsContext): void {
  const { io } = context;
  const print = (text: string) => io.stdout.write(text + '\n');
  const printJson = (doc: unknown) => print(JSON.stringify(doc, null, 2));

  /** Runs `work` with a client of the agent; its result is the exit code. */
  const session = async (flags: ClientFlags, work: (client: AgentClient) => Promise<number>, file?: string) => {
    const socket = flags.agent ?? agentSocket((await context.config()).dataDir);
    const client = new AgentClient({ socket, ...(flags.namespace === undefined ? {} : { namespace: flags.namespace }) });
    try {
      context.exit(await work(client));
    } catch (err) {
      if (!(err instanceof TaskhostError)) throw err;
      for (const line of errorLines(err, { file, agentGiven: flags.agent !== undefined, configFile: context.configFile() }))
        io.stderr.write(line + '\n');
      context.exit(1);
    } finally {
      client.close();
    }
  };

  const clientCommand = (name: string) =>
    program
      .command(name)
      .addOption(
        new Option('--agent <socket>', "the agent's unix socket (default <dataDir>/agent.sock of the config)").env('TASKHOST_AGENT'),
      )
      .addOption(new Option('--namespace <ns>', 'the namespace of the tasks (default "default")').env('TASKHOST_NAMESPACE'));

  clientCommand('submit')
    .argument('<file>', 'task spec (JSON), with optional "labels"')
    .description("submit a task to the agent and print its id; with --wait, wait for its exit and exit with the task's code")
    .option('--wait', 'wait until the task has completed, then exit with its exit code (Ctrl-C stops waiting, not the task)')
    .option('--json', 'print the task record (with --wait, the completed one)')
    .action((file: string, flags: ClientFlags & { wait?: boolean }) =>
      session(
        flags,
        async (client) => {
          const spec = await readJsonFile(file);
          const record = await client.submit(spec);
          if (!flags.wait) {
            if (flags.json) printJson(record);
            else print(record.id);
            return 0;
          }
          if (!flags.json) print(record.id);
          const done = await client.wait(record.id);
          if (flags.json) printJson(done);
          else io.stderr.write(`taskhost: task ${done.name} ${describeState(done)}\n`);
          return taskExitCode(done);
        },
        file,
      ),
    );

  clientCommand('tasks')
    .description('list the tasks of the namespace: ID, DRIVER, STATE, EXIT, AGE')
    .option(
      '--filter <filter>',
      'containerd filter: labels.team==a, name~=^web, state!=exited (comma = AND; repeat --filter for OR)',
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option('--json', 'print one JSON document: { tasks: [...] }')
    .action((flags: ClientFlags & { filter: string[] }) =>
      session(flags, async (client) => {
        const tasks = await client.list(flags.filter);
        if (flags.json) printJson({ tasks });
        else if (tasks.length === 0) print(`no tasks in namespace "${flags.namespace ?? 'default'}"${flags.filter.length ? ' match' : ''}`);
        else print(tasksTable(tasks));
        return 0;
      }),
    );

  clientCommand('status')
    .argument('<id>', 'task id (<allocId>/<name>/<8 hex>, as submit and tasks print it)')
    .description("one task's record: its state, exit, labels, config and times")
    .option('--json', 'print the record')
    .action((id: string, flags: ClientFlags) =>
      session(flags, async (client) => {
        const record = await client.get(id);
        if (flags.json) printJson(record);
        else print(taskDetails(record));
        return 0;
      }),
    );

  clientCommand('logs')
    .argument('<id>', 'task id')
    .description("the task's stdout (or --stderr) as it wrote it, on stdout; with -f, on until the task has completed")
    .option('-f, --follow', 'keep printing what the task writes until it has completed')
    .option('--stderr', 'the task’s stderr instead of its stdout')
    .option('--offset <bytes>', 'start at this byte of the output', (v) => nonNegativeInt(v, '--offset'))
    .action((id: string, flags: ClientFlags & { follow?: boolean; stderr?: boolean; offset?: number }) =>
      session(flags, async (client) => {
        const type = flags.stderr ? 'stderr' : 'stdout';
        let offset = flags.offset ?? 0;
        try {
          for await (const chunk of client.logs(id, {
            type,
            follow: Boolean(flags.follow),
            ...(flags.offset === undefined ? {} : { offset }),
          })) {
            io.stdout.write(chunk);
            offset += chunk.byteLength;
          }
        } catch (err) {
          if (err instanceof AgentUnreachableError && err.details?.reason === undefined)
            throw new AgentUnreachableError(`${err.message}; read on with --offset ${offset}`, { ...optionsOf(err) });
          throw err;
        }
        return 0;
      }),
    );

  clientCommand('stop')
    .argument('<id>', 'task id')
    .description('stop the task (its kill signal, then SIGKILL after its kill timeout) and wait until it has exited')
    .option('--force', 'stop it even while it holds its update lock (TASKHOST_LOCK_FILE)')
    .option('--timeout <duration>', 'how long it has after its kill signal before SIGKILL (such as 10s); default its killTimeout')
    .option('--no-wait', 'return once the agent has asked the driver to stop it')
    .option('--json', 'print the record (the exited one, unless --no-wait)')
    .action((id: string, flags: ClientFlags & { force?: boolean; timeout?: string; wait: boolean }) =>
      session(flags, async (client) => {
        const asked = await client.stop(id, {
          ...(flags.timeout === undefined ? {} : { timeout: flags.timeout }),
          ...(flags.force ? { force: true } : {}),
        });
        const record: TaskRecord = flags.wait ? await client.wait(id) : asked;
        if (flags.json) printJson(record);
        else print(flags.wait ? `${record.id}: ${describeState(record)}` : `${record.id}: stopping`);
        return 0;
      }),
    );

  clientCommand('images')
    .description("the images the agent's tasks use: NAME, ID, DIGEST, SIZE, USERS (tasks using it), LAST USED")
    .option('--json', 'print one JSON document: { images: [...] }')
    .action((flags: ClientFlags) =>
      session(flags, async (client) => {
        const images = await client.images();
        if (flags.json) printJson({ images });
        else if (images.length === 0) print('no images recorded');
        else print(imagesTable(images));
        return 0;
      }),
    );

  clientCommand('events')
    .description('follow the agent’s events (task, device and image changes) as they happen, one a line, until Ctrl-C')
    .option('--index <n>', 'resume after the event of this index (0: from the oldest kept)', (v) => nonNegativeInt(v, '--index'))
    .option('--json', 'print each event as one JSON line (NDJSON), as the API sends it')
    .action((flags: ClientFlags & { index?: number }) =>
      session(flags, async (client) => {
        let last = flags.index;
        try {
          for await (const event of client.events(flags.index === undefined ? {} : { index: flags.index })) {
            print(flags.json ? JSON.stringify(event) : eventLine(event));
            last = event.index;
          }
        } catch (err) {
          if (err instanceof AgentUnreachableError && err.details?.reason === undefined && last !== undefined)
            throw new AgentUnreachableError(`${err.message}; resume with --index ${last}`, { ...optionsOf(err) });
          throw err;
        }
        return 0;
      }),
    );
}

/**
 * The lines of an error: `error: CODE: message`, or one line per problem of invalid input with
 * its JSON path (in the spec file, for submit). No agent on the socket says how to start one.
 */
export function errorLines(
  err: TaskhostError,
  where: { file?: string | undefined; agentGiven?: boolean; configFile?: string | undefined },
): string[] {
  if (err instanceof AgentUnreachableError && typeof err.details?.reason === 'string') {
    const start = `taskhost agent --config ${where.configFile ?? '<file>'}`;
    const other = where.agentGiven ? '' : ', or name its socket with --agent <socket>';
    return [`error: no taskhost agent answers on ${String(err.details.socket)} (${err.details.reason}): start one with "${start}"${other}`];
  }
  const issues = err instanceof InvalidConfigError ? err.errors : [];
  if (issues.length === 0) return [`error: ${err.code}: ${err.message}`];
  const file = where.file === undefined ? '' : `${where.file}: `;
  // A spec's paths are the body's; those of the query string or headers are the command's own.
  return issues.map(
    (i) => `error: ${err.code}: ${/^\/(query|headers|params)\//.test(i.path) ? '' : file}${i.path ? `${i.path}: ` : ''}${i.message}`,
  );
}

function optionsOf(err: TaskhostError) {
  return { ...(err.details ? { details: err.details } : {}), cause: err };
}

function nonNegativeInt(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    throw new CommanderError(2, 'taskhost.usage', `error: ${flag} must be a non-negative integer, got "${value}"`);
  return n;
}
