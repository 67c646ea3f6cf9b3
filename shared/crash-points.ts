/**
 * For tests only: crash points. With `TASKHOST_TEST_CRASH_AT=<point>` in its environment, the
 * process kills itself with SIGKILL the first time a task reaches that step, as `kill -9` or a
 * power cut would at the worst moment; the crash tests (test/agent/crash-*.test.ts) then start
 * the agent again on the same data dir and check that the task ran exactly once. Unset (always,
 * outside those tests), nothing happens. It lives in shared/ because both the task supervisor
 * (agent/) and the driver manager (drivers/) have steps of a start.
 */

/** The steps of a task's life where the agent can be made to crash, in order. */
export const crashPoints = [
  /** The record is stored `pending`; the driver has not been asked. */
  'after-pending',
  /** The intent handle is stored (fsynced); the driver has not been asked. */
  'after-intent',
  /** The driver's startTask returned; its handle is not stored yet. */
  'after-driver-start',
  /** The driver's handle is stored; the record does not say `running` yet. */
  'after-handle',
  /** The exit is recorded; the handle is not released yet. */
  'after-exit-recorded',
] as const;

export type CrashPoint = (typeof crashPoints)[number];

/** Dies here, at once and without cleaning up, when the test environment asks for this point. */
export function crashPoint(point: CrashPoint): void {
  if (process.env.TASKHOST_TEST_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}
