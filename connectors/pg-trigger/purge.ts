import type pg from 'pg';
import { HORIZON_SQL, LOG_TABLE, PURGED_TABLE, READERS_TABLE } from './sql.js';

export interface PurgeOptions {
  /**
   * Changes older than this are purged even if a reader has not applied them
   * (that reader then needs an initial load). Null: never by age (a store's
   * table is HQ's queue while HQ is away, as a slot is).
   */
  readonly retentionHours: number | null;
  /**
   * The readers that must have applied a change before it goes. Absent:
   * whichever readers have recorded a position (HQ's log: every store that
   * ever read it). Given: a named reader that never recorded one holds
   * everything back.
   */
  readonly readers?: readonly string[];
  /** Rows deleted per statement (keeps each transaction short). Default 50,000. */
  readonly batchRows?: number;
}

export interface PurgeResult {
  /** Every change of a transaction below this xid is gone. */
  readonly purgedBelow: bigint;
  readonly deleted: number;
  /** Readers left behind by the retention: they need a fresh initial load. */
  readonly readersBehind: readonly string[];
}

/**
 * Purges the shared change log: below what every reader has applied
 * (`change_log_readers`), and below the retention for readers that stay
 * away longer. Never above the horizon (a running transaction's changes are
 * not complete yet). Records how far it went, so a reader behind it is told
 * it needs an initial load instead of getting a partial picture.
 */
export async function purgeChangeLog(db: pg.ClientBase, options: PurgeOptions): Promise<PurgeResult> {
  const horizon = BigInt((await db.query<{ xmin: string }>(HORIZON_SQL)).rows[0]!.xmin);
  const named = options.readers ?? null;
  const facts = await db.query<{ min_reader: string | null; readers: string; retention_bound: string | null; purged_below: string | null }>(
    `SELECT (SELECT min(position)::text FROM ${READERS_TABLE} WHERE $2::text[] IS NULL OR reader = ANY($2::text[])) AS min_reader,
            (SELECT count(*)::text FROM ${READERS_TABLE} WHERE $2::text[] IS NULL OR reader = ANY($2::text[])) AS readers,
            CASE WHEN $1::float8 IS NOT NULL THEN
              (SELECT min(xid)::text FROM ${LOG_TABLE} WHERE logged_at >= clock_timestamp() - make_interval(secs => $1::float8)) END AS retention_bound,
            (SELECT purged_below::text FROM ${PURGED_TABLE}) AS purged_below`,
    [options.retentionHours === null ? null : options.retentionHours * 3600, named],
  );
  const f = facts.rows[0]!;
  const before = f.purged_below === null ? 0n : BigInt(f.purged_below);
  // Named readers of which one never recorded a position: it has applied nothing yet.
  if (named !== null && Number(f.readers) < new Set(named).size) return { purgedBelow: before, deleted: 0, readersBehind: [] };
  const byReaders = f.min_reader === null ? horizon : BigInt(f.min_reader);
  const byRetention = options.retentionHours === null ? 0n : f.retention_bound === null ? horizon : BigInt(f.retention_bound);
  let bound = byReaders > byRetention ? byReaders : byRetention;
  if (bound > horizon) bound = horizon;
  if (bound <= before) return { purgedBelow: before, deleted: 0, readersBehind: [] };
  // Recorded first: a reader checks it after reading a window, so one that
  // read while rows were being deleted under it finds out (BL-S006).
  await db.query(
    `INSERT INTO ${PURGED_TABLE} AS p (one, purged_below) VALUES (true, $1::text::xid8)
     ON CONFLICT (one) DO UPDATE SET purged_below = greatest(p.purged_below, EXCLUDED.purged_below), purged_at = clock_timestamp()`,
    [bound.toString()],
  );
  const batch = options.batchRows ?? 50_000;
  let deleted = 0;
  for (;;) {
    const res = await db.query(
      `DELETE FROM ${LOG_TABLE} WHERE id IN (SELECT id FROM ${LOG_TABLE} WHERE xid < $1::text::xid8 ORDER BY id LIMIT $2)`,
      [bound.toString(), batch],
    );
    deleted += res.rowCount ?? 0;
    if ((res.rowCount ?? 0) < batch) break;
  }
  const behind = await db.query<{ reader: string }>(`SELECT reader FROM ${READERS_TABLE} WHERE position < $1::text::xid8 ORDER BY reader`, [bound.toString()]);
  return { purgedBelow: bound, deleted, readersBehind: behind.rows.map((r) => r.reader) };
}
