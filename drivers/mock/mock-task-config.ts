/**
 * A mock task's config: its script. Every key may be left out; the defaults give a task that
 * exits at once with code 0.
 */
import { constants } from 'node:os';
import { Type, type Static } from '@sinclair/typebox';
import { Duration } from '../../shared/duration.js';
import { StringEnum } from '../../shared/schema.js';

const signalNames = Object.keys(constants.signals);
const ExitCode = (description: string) => Type.Integer({ minimum: 0, maximum: 255, default: 0, description });

export const MockTaskConfig = Type.Object({
  runFor: Duration({ default: '0s', description: 'how long the task runs before it exits by itself' }),
  exitCode: ExitCode('the code the task exits with'),
  exitSignal: Type.Optional(StringEnum(signalNames, { description: 'the task dies of this signal instead (exit code 128 + its number)' })),
  oomKilled: Type.Boolean({ default: false, description: 'the exit reports the task ran out of memory' }),
  startError: Type.Optional(Type.String({ description: 'startTask fails with this message' })),
  startErrorRecoverable: Type.Boolean({ default: false, description: 'whether that failure is worth a retry' }),
  recoverError: Type.Optional(Type.String({ description: 'recoverTask fails with this message' })),
  stdout: Type.Optional(Type.String({ description: 'written to the task stdout file at start' })),
  stderr: Type.Optional(Type.String({ description: 'written to the task stderr file at start' })),
  stopIgnored: Type.Boolean({
    default: false,
    description: 'the task ignores its stop signal, so a stop waits the whole timeout and then kills it',
  }),
  stats: Type.Object(
    {
      cpuPercent: Type.Number({ minimum: 0 }),
      rssBytes: Type.Integer({ minimum: 0 }),
    },
    { default: { cpuPercent: 0.5, rssBytes: 8 * 1024 * 1024 }, description: 'what taskStats reports' },
  ),
  signalError: Type.Optional(Type.String({ description: 'signalTask fails with this message' })),
  exec: Type.Optional(
    Type.Object(
      {
        stdout: Type.String(),
        stderr: Type.String({ default: '' }),
        exitCode: ExitCode('the exit code of the command'),
      },
      { description: 'what execTask returns (default: the command echoed, exit code 0)' },
    ),
  ),
});
export type MockTaskConfig = Static<typeof MockTaskConfig>;
