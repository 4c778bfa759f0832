import type sql from 'mssql';
import { RowversionPosition } from './rowversion-codec.js';
import { bind, readerParams, READER_POSITION_SQL, HORIZON_SQL, MARK_PURGED_SQL, PURGE_FACTS_SQL, purgeFactsParams, PURGED_SQL, purgeParams, PURGE_SQL, READERS_BEHIND_SQL } from './sql.js';

export interface MssqlPurgeOptions {
  /**
   * Changes older than this are purged even if a reader has not applied them
   * (that reader then needs an initial load). Null: never by age (a store's
   * table is HQ's queue while HQ is away).
   */
  readonly retentionHours: number | null;
  /** Only below what this reader applied; nothing while it has recorded no position. Absent: every recorded reader. */
  readonly reader?: string;
  /** Rows deleted per statement (keeps each transaction short). Default 50,000. */
  readonly batchRows?: number;
}

export interface MssqlPurgeResult {
  /** Every change logged below this rowversion is gone. */
  readonly purgedBelow: RowversionPosition;
  readonly deleted: number;
  /** Readers left behind by the retention: they need a fresh initial load. */
  readonly readersBehind: readonly string[];
}

const max = (a: RowversionPosition, b: RowversionPosition) => (a.compare(b) >= 0 ? a : b);

/**
 * Where a purge stops: below the readers' lowest position or the oldest row
 * within the retention, whichever is further (none of either: the
 * horizon), never above the horizon; null when that is not past where the
 * log was purged already.
 */
export function purgeBound(p: {
  readonly horizon: RowversionPosition;
  readonly minReader: RowversionPosition | null;
  readonly retentionBound: RowversionPosition | null;
  readonly purgedBelow: RowversionPosition;
}): RowversionPosition | null {
  let bound = max(p.minReader ?? p.horizon, p.retentionBound ?? p.horizon);
  if (bound.compare(p.horizon) > 0) bound = p.horizon;
  return bound.compare(p.purgedBelow) > 0 ? bound : null;
}

/**
 * Purges the change log at a SQL Server store: below what every reader has
 * applied (`change_log_readers`), and below the retention for readers that
 * stay away longer; never at or above `MIN_ACTIVE_ROWVERSION()` (an open
 * transaction's rows are not complete yet). Records how far first, so a
 * reader behind it is told it needs an initial load (BL-S006) instead of
 * getting a partial picture.
 */
export async function purgeMssqlChangeLog(pool: sql.ConnectionPool, options: MssqlPurgeOptions): Promise<MssqlPurgeResult> {
  const horizon = RowversionPosition.fromBuffer((await pool.request().query<{ bound: Buffer }>(HORIZON_SQL)).recordset[0]!.bound);
  const facts = (await bind(pool.request(), purgeFactsParams(options.retentionHours ?? 0)).query<{ min_reader: Buffer | null; retention_bound: Buffer | null }>(PURGE_FACTS_SQL))
    .recordset[0]!;
  const before = RowversionPosition.fromBuffer((await pool.request().query<{ purged_below: Buffer }>(PURGED_SQL)).recordset[0]!.purged_below);
  const of = (buf: Buffer | null) => (buf ? RowversionPosition.fromBuffer(buf) : null);
  let minReader = of(facts.min_reader);
  if (options.reader !== undefined) {
    const own = (await bind(pool.request(), readerParams(options.reader)).query<{ position: Buffer }>(READER_POSITION_SQL)).recordset[0];
    if (!own) return { purgedBelow: before, deleted: 0, readersBehind: [] }; // it has applied nothing yet
    minReader = RowversionPosition.fromBuffer(own.position);
  }
  // No retention: the age of a change never lets it go, only the reader (the smallest bound loses in purgeBound's max).
  const retentionBound = options.retentionHours === null ? RowversionPosition.of(0n) : of(facts.retention_bound);
  const bound = purgeBound({ horizon, minReader, retentionBound, purgedBelow: before });
  if (bound === null) return { purgedBelow: before, deleted: 0, readersBehind: [] };
  await bind(pool.request(), purgeParams(bound)).batch(MARK_PURGED_SQL);
  const batch = options.batchRows ?? 50_000;
  let deleted = 0;
  for (;;) {
    const res = await bind(pool.request(), purgeParams(bound, batch)).query(PURGE_SQL);
    const n = res.rowsAffected[0] ?? 0;
    deleted += n;
    if (n < batch) break;
  }
  const behind = (await bind(pool.request(), purgeParams(bound)).query<{ reader: string }>(READERS_BEHIND_SQL)).recordset;
  return { purgedBelow: bound, deleted, readersBehind: behind.map((r) => r.reader) };
}
