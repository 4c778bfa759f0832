/**
 * How HQ sees a store's up pipeline from what agents report there
 * (`branchline.pipeline_status`): whether an agent runs it, and its lag.
 * Shared by `branchline status` and the cross-store queries, which answer
 * from HQ alone.
 */

/** An agent reports at least every few seconds while it runs; a report older than this means no agent runs the pipeline. */
export const REPORT_FRESH_SECONDS = 30;

/** SQL: whether the report time `column` is recent enough to say an agent runs the pipeline. */
export function reportFreshSql(column: string): string {
  return `(${column} > clock_timestamp() - interval '${REPORT_FRESH_SECONDS} seconds')`;
}

/** An agent's last report of an up pipeline, as read at HQ. */
export interface UpReport {
  /** starting | streaming | backoff | halted | stopped | failed */
  readonly state: string;
  /** Reported within REPORT_FRESH_SECONDS. */
  readonly fresh: boolean;
  /** Commit time at the store of the oldest change the agent holds that HQ has not applied; null when it holds none. */
  readonly oldestUnapplied: Date | null;
}

/**
 * The pipeline's state as HQ knows it: the reported one while reports are
 * fresh; `not running` once they stop (or without a report, when a position
 * was stored); `never ran` otherwise.
 */
export function upState(report: UpReport | null, hasPosition: boolean): string {
  if (report) return report.fresh ? report.state : 'not running';
  return hasPosition ? 'not running' : 'never ran';
}

/**
 * Seconds since the store committed the oldest change HQ lacks (0 when the
 * agent holds none), while an agent streams the pipeline; null otherwise
 * (HQ alone cannot tell).
 */
export function upLagSeconds(report: UpReport | null, now: Date): number | null {
  if (!report?.fresh || report.state !== 'streaming') return null;
  return report.oldestUnapplied ? Math.max(0, (now.getTime() - report.oldestUnapplied.getTime()) / 1000) : 0;
}
