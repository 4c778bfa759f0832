import { isBranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { sleepUnlessAborted } from '../core/sleep-unless-aborted.js';
import type { CronSchedule } from './cron.js';

export interface ReportLoopOptions {
  readonly schedule: CronSchedule;
  /** Writes (and sends) the report of the period ending at `periodEnd`. */
  readonly run: (periodEnd: Date) => Promise<unknown>;
  readonly logger: Logger;
  /** This host's clock in ms (default Date.now). */
  readonly now?: () => number;
  /** Waits `ms` or until the signal aborts (default sleepUnlessAborted). */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** The longest single wait: setTimeout cannot wait weeks, and the clock may be set meanwhile. */
export const MAX_WAIT_MS = 3_600_000;

/**
 * Runs the report at each time the schedule names until `signal` aborts:
 * waits (in steps of at most an hour, reading the clock again after each)
 * until the next time, runs it, then takes the first time after both that
 * time and now. So a report that takes longer than the gap, or a clock set
 * forward, skips the times already past (the next report's period simply
 * starts where the last one ended: nothing is left out), and a clock set
 * back waits for the same next time again: no time runs twice. A
 * BranchlineError of one run is logged and the loop goes on; anything else
 * is a bug and ends it.
 */
export async function runReportLoop(o: ReportLoopOptions, signal: AbortSignal): Promise<void> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? sleepUnlessAborted;
  let next = o.schedule.next(new Date(now()));
  o.logger.info('reports scheduled', { schedule: o.schedule.text, next: next.toISOString() });
  while (!signal.aborted) {
    while (!signal.aborted && now() < next.getTime()) await sleep(Math.min(next.getTime() - now(), MAX_WAIT_MS), signal);
    if (signal.aborted) return;
    try {
      await o.run(next);
    } catch (e) {
      if (!isBranchlineError(e)) throw e;
      o.logger.error('report not done', { code: e.code, error: e.message });
    }
    next = o.schedule.next(new Date(Math.max(now(), next.getTime())));
  }
}
