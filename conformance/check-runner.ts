/**
 * What the driver and device conformance suites share: the report they write, the runner that
 * times each check and turns what it throws into a result, and how `taskhost conformance` finds
 * the plugin it was named so it can pick the suite for the plugin's type.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { TaskhostError } from '../shared/errors.js';
import type { AgentConfig } from '../plugin-loader/agent-config.js';
import { discover, type Discovery, type PluginCandidate, type SkippedPlugin } from '../plugin-loader/discovery.js';

export type CheckStatus = 'pass' | 'fail' | 'skip';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  /** Why it failed or was skipped: what the plugin did and what to do about it. */
  message?: string;
  durationMs: number;
}

export interface ConformanceReport {
  plugin: { name: string; version?: string; apiVersion?: string; dir?: string; source?: string };
  checks: CheckResult[];
  passed: number;
  failed: number;
  skipped: number;
  /**
   * The run's id: the alloc id of every task it started (TASKHOST_ALLOC_ID), and the
   * TASKHOST_CONFORMANCE_RUN mark in the environment of what the plugin spawned.
   */
  runId?: string;
}

export interface ConformanceOptions {
  /** A plugin folder, or the name of a plugin the loader finds (built-in or in the plugin dir). */
  target: string;
  config?: AgentConfig;
  logger?: Logger;
  /** Called as each check finishes, for live output. */
  onCheck?: (result: CheckResult) => void;
  /** How long one check may take before it fails as timed out (default 30 s). */
  checkTimeoutMs?: number;
}

/** A failed expectation: the message says what was seen and what the contract asks for. */
export class Miss extends Error {}
/** A check that cannot run here; the message says why. */
export class Skip extends Error {}

/** Runs one named check (within `timeoutMs`, when given, instead of the runner's): resolves true when it passed. */
export interface Check {
  (name: string, body: () => Promise<void>, timeoutMs?: number): Promise<boolean>;
  /**
   * Waits (up to `ms`) for the bodies of checks that timed out: they run on, and must be done
   * before the suite tears down what they use, or they would start a task or a loader after it.
   */
  settle(ms: number): Promise<void>;
}

/** A check runner that records each result in `report` and tells `onCheck` as it goes. */
export function checkRunner(report: ConformanceReport, onCheck: ((result: CheckResult) => void) | undefined, timeoutMs: number): Check {
  const running = new Set<Promise<void>>();
  const check = async (name: string, body: () => Promise<void>, ms = timeoutMs): Promise<boolean> => {
    const t0 = performance.now();
    let result: CheckResult;
    const work = body();
    running.add(work);
    const forget = () => void running.delete(work);
    work.then(forget, forget);
    try {
      await withTimeout(work, ms, `the check did not finish within ${ms / 1000}s`);
      result = { name, status: 'pass', durationMs: 0 };
    } catch (err) {
      const skip = err instanceof Skip;
      result = { name, status: skip ? 'skip' : 'fail', message: describe(err), durationMs: 0 };
    }
    result.durationMs = Math.round(performance.now() - t0);
    report.checks.push(result);
    report[result.status === 'pass' ? 'passed' : result.status === 'fail' ? 'failed' : 'skipped']++;
    onCheck?.(result);
    return result.status === 'pass';
  };
  const settle = async (ms: number): Promise<void> => {
    if (running.size === 0) return;
    await withTimeout(Promise.allSettled([...running]), ms, '').catch(() => undefined);
  };
  return Object.assign(check, { settle });
}

export function describe(err: unknown): string {
  if (err instanceof Miss || err instanceof Skip) return err.message;
  if (err instanceof TaskhostError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** `work`, or a Miss with `message` if it takes longer than `ms`. */
export async function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Miss(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An id for one run: the driver suite gives it to every task as its alloc id (so each task
 * process carries it as TASKHOST_ALLOC_ID), and both suites put it in the worker's environment
 * as TASKHOST_CONFORMANCE_RUN, so whatever the run leaves running can be found.
 */
export function conformanceRunId(): string {
  return `conformance-${randomBytes(6).toString('hex')}`;
}

/** The calls whose timers may run on while the plugin is up: its set-up, and its module's import (""). */
export const setUp: ReadonlySet<string> = new Set(['', 'setConfig', 'init']);

/** Reads a stream until it ends. */
export async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) {
    // only how it ends matters
  }
}

/** Whether a conformance target names a plugin folder rather than a plugin. */
export function isPathTarget(target: string): boolean {
  return target.includes('/') || target.startsWith('.');
}

export interface ConformanceTarget {
  /** The plugin the target names: a candidate, or the reason it was skipped; undefined when there is none. */
  found: PluginCandidate | SkippedPlugin | undefined;
  /** Everything discovery saw on the way (the suites host only the plugin under test). */
  discovery: Discovery;
}

/**
 * Finds the plugin a conformance target names, as discovery sees it. Without an agent config
 * only built-ins and the folder named by path are looked at, as in the suites themselves.
 */
export async function findConformanceTarget(target: string, config?: AgentConfig): Promise<ConformanceTarget> {
  const byPath = isPathTarget(target);
  const dir = path.resolve(target);
  const look = async (pluginDir: string): Promise<ConformanceTarget> => {
    const discovery = await discover({ pluginDir, extraDirs: byPath ? [dir] : [] });
    const matches = (p: { name: string; dir: string; source: string }) =>
      byPath ? p.source === 'path' && p.dir === dir : p.name === target;
    return { found: discovery.plugins.find(matches) ?? discovery.skipped.find(matches), discovery };
  };
  if (config) return look(config.pluginDir);
  const scratch = await mkdtemp(path.join(tmpdir(), 'taskhost-conformance-'));
  try {
    return await look(path.join(scratch, 'no-plugins'));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
