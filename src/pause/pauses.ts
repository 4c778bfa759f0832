import type pg from 'pg';

/**
 * HQ's table of paused pipelines (migrations/20261204000011_pipeline_pauses.ts),
 * as `branchline pause` / `resume`, the agents and `status` read and write it.
 * Writers notify PAUSE_CHANNEL in the same statement, so running agents act
 * at once; they also look every few seconds.
 */

export const PAUSES_TABLE = 'branchline.pipeline_pauses';
export const PAUSE_CHANNEL = 'branchline_pause';

export interface Pause {
  /** `up:<store>` or `down:<store>`. */
  readonly pipeline: string;
  /** HQ's clock. */
  readonly pausedAt: Date;
  readonly pausedBy: string;
  readonly reason: string | null;
}

type Db = Pick<pg.ClientBase, 'query'>;

/** Whether HQ has the table (`branchline install` creates it). */
export async function hasPausesTable(db: Db): Promise<boolean> {
  const r = await db.query<{ ok: boolean }>(`SELECT to_regclass('${PAUSES_TABLE}') IS NOT NULL AS ok`);
  return r.rows[0]?.ok === true;
}

/** Every paused pipeline, by name. */
export async function readPauses(db: Db): Promise<Map<string, Pause>> {
  const r = await db.query<{ pipeline: string; paused_at: Date; paused_by: string; reason: string | null }>(
    `SELECT pipeline, paused_at, paused_by, reason FROM ${PAUSES_TABLE}`,
  );
  return new Map(r.rows.map((row) => [row.pipeline, { pipeline: row.pipeline, pausedAt: row.paused_at, pausedBy: row.paused_by, reason: row.reason }]));
}

/**
 * Pauses these pipelines (one statement, with the notification): the ones
 * already paused keep their time, author and reason. Returns the newly
 * paused ones.
 */
export async function pausePipelines(db: Db, pipelines: readonly string[], by: string, reason: string | null): Promise<string[]> {
  const r = await db.query<{ done: string[] | null }>(
    `WITH added AS (
       INSERT INTO ${PAUSES_TABLE} (pipeline, paused_by, reason) SELECT p, $2, $3 FROM unnest($1::text[]) AS p
       ON CONFLICT (pipeline) DO NOTHING RETURNING pipeline)
     SELECT array_agg(pipeline ORDER BY pipeline) AS done, pg_notify($4, '') FROM added`,
    [pipelines, by, reason, PAUSE_CHANNEL],
  );
  return r.rows[0]?.done ?? [];
}

/** Resumes these pipelines (one statement, with the notification). Returns the ones that were paused. */
export async function resumePipelines(db: Db, pipelines: readonly string[]): Promise<string[]> {
  const r = await db.query<{ done: string[] | null }>(
    `WITH gone AS (DELETE FROM ${PAUSES_TABLE} WHERE pipeline = ANY($1::text[]) RETURNING pipeline)
     SELECT array_agg(pipeline ORDER BY pipeline) AS done, pg_notify($2, '') FROM gone`,
    [pipelines, PAUSE_CHANNEL],
  );
  return r.rows[0]?.done ?? [];
}
