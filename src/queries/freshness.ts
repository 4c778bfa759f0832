import { reportFreshSql, upLagSeconds, upState, type UpReport } from '../agent/up-lag.js';
import { LOG_TABLE, PURGED_TABLE, READERS_TABLE } from '../../connectors/pg-trigger/index.js';

/**
 * How fresh HQ's answer is for one store, read at HQ only (see
 * docs/queries.md, "Freshness"). Up (store data at HQ, e.g. stock): the
 * store's up pipeline, as its agent reports it in
 * `branchline.pipeline_status`. Down (HQ data handed to the stores, e.g. a
 * store's own prices): how far the store's down reader
 * (`branchline.change_log_readers`) is behind HQ's change log.
 */
export interface Freshness {
  readonly direction: 'up' | 'down';
  /** Seconds the store's data is behind (0: in step); null when no pipeline runs (then `as_of` says since when). */
  readonly lag_seconds: number | null;
  /** HQ's answer holds every change committed before this time (ISO); null when HQ cannot tell. */
  readonly as_of: string | null;
  /** up: streaming | starting | backoff | stopped | failed | not running | never ran; down: streaming | not running | never ran | needs initial load */
  readonly state: string;
}

/** The store list of the query is `s(code, ord)`; these are the joins and columns (all named f_*) each direction adds to it. */
export interface FreshnessSql {
  readonly joins: string;
  readonly columns: string;
}

export function freshnessSql(direction: 'up' | 'down'): FreshnessSql {
  if (direction === 'up')
    return {
      joins: `LEFT JOIN branchline.pipelines p ON p.pipeline = 'up:' || s.code
  LEFT JOIN branchline.pipeline_status ps ON ps.pipeline = 'up:' || s.code`,
      columns: `p.pipeline IS NOT NULL AS f_known, p.source_commit_time AS f_applied_through, ps.state AS f_state,
  ps.oldest_unapplied_commit_time AS f_oldest, ps.updated_at AS f_reported_at, ${reportFreshSql('ps.updated_at')} AS f_fresh`,
    };
  // The oldest change the reader has not passed (its position is the bound below which it applied every transaction),
  // less the store's own changes (the reader skips them: the store has them).
  return {
    joins: `LEFT JOIN ${READERS_TABLE} r ON r.reader = 'down:' || s.code
  LEFT JOIN ${PURGED_TABLE} pu ON true
  LEFT JOIN LATERAL (SELECT min(c.logged_at) AS oldest FROM ${LOG_TABLE} c
                      WHERE r.position IS NOT NULL AND c.xid >= r.position AND c.origin IS DISTINCT FROM s.code) o ON true`,
    columns: `r.reader IS NOT NULL AS f_known, r.acked_at AS f_reported_at, ${reportFreshSql('r.acked_at')} AS f_fresh,
  coalesce(pu.purged_below > r.position, false) AS f_purged, o.oldest AS f_oldest`,
  };
}

/** The f_* columns of one store's row. */
export interface FreshnessRow {
  readonly f_known: boolean;
  readonly f_reported_at: Date | null;
  readonly f_fresh: boolean | null;
  readonly f_oldest: Date | null;
  /** up only */
  readonly f_state?: string | null;
  readonly f_applied_through?: Date | null;
  /** down only */
  readonly f_purged?: boolean;
}

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);
const later = (a: Date | null, b: Date | null): Date | null => (a && b ? (a > b ? a : b) : (a ?? b));

/** `now`: HQ's clock when the statement ran. */
export function freshnessOf(direction: 'up' | 'down', row: FreshnessRow, now: Date): Freshness {
  if (direction === 'up') {
    const report: UpReport | null = row.f_state ? { state: row.f_state, fresh: row.f_fresh === true, oldestUnapplied: row.f_oldest } : null;
    const state = upState(report, row.f_known);
    const lag = upLagSeconds(report, now);
    if (lag !== null) return { direction, lag_seconds: lag, as_of: iso(row.f_oldest ?? now), state };
    // Not streaming: HQ holds what the store committed up to its last applied transaction, and up to the
    // agent's last report if that report said it held nothing unapplied.
    const inStepReport = report && report.state === 'streaming' && !row.f_oldest ? row.f_reported_at : null;
    return { direction, lag_seconds: null, as_of: iso(later(row.f_applied_through ?? null, inStepReport)), state };
  }
  if (!row.f_known) return { direction, lag_seconds: null, as_of: null, state: 'never ran' };
  if (row.f_purged) return { direction, lag_seconds: null, as_of: null, state: 'needs initial load' };
  // Every change logged before the oldest one not passed is at the store; none left: all of it is.
  const asOf = row.f_oldest ?? now;
  if (row.f_fresh) return { direction, lag_seconds: Math.max(0, (now.getTime() - asOf.getTime()) / 1000), as_of: iso(asOf), state: 'streaming' };
  return { direction, lag_seconds: null, as_of: iso(asOf), state: 'not running' };
}
