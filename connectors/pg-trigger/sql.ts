import type { TableId } from '../../src/core/change.js';
import { qualified, quoteIdent, quoteLiteral } from '../../src/db/connect.js';

/**
 * The SQL of the `pg-trigger` connector, generated in one place so tests can
 * state it exactly.
 *
 * Each captured table gets its own trigger function that writes every
 * column in PostgreSQL's text form (the same form `pgoutput` sends), under
 * fixed output settings (ISO dates, UTC, hex bytea, exact floats) whatever
 * the writing session uses. A row written by branchline's own apply carries
 * the origin that session set (`branchline.origin`: the store whose change
 * HQ applied, or `HQ` at a store), so a reader never gets back what came from
 * its own side (no echo) while everyone else does (a customer registered at
 * store A reaches stores B..N through HQ).
 *
 * Readers keep their own cursor (their target holds it); each also reports
 * it here (`change_log_readers`) so the log can be purged below what every
 * reader applied, or below the retention. `change_log_purged` remembers how
 * far it was purged: a reader behind that needs a fresh initial load.
 */
export const LOG_TABLE = 'branchline.change_log';
export const NOTIFY_CHANNEL = 'branchline_change_log';
export const READERS_TABLE = 'branchline.change_log_readers';
export const PURGED_TABLE = 'branchline.change_log_purged';

/**
 * Whether the capture triggers wake readers with NOTIFY. PostgreSQL takes one
 * lock for the notification queue at the commit of every notifying
 * transaction and holds it until the commit is flushed, so notifying
 * writers commit one at a time: at HQ (few writers, many readers that want
 * a price change at once) it is worth it; at a store, whose ERP writes all
 * day and whose one reader polls, it is not (measured: `npm run bench`,
 * trigger cost).
 */
export interface CaptureOptions {
  readonly notify: boolean;
}

const notifySql = (o: CaptureOptions) => (o.notify ? `\n       PERFORM pg_notify('${NOTIFY_CHANNEL}', '');` : '');

export function createLogSql(options: CaptureOptions = { notify: true }): string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS branchline`,
    `CREATE TABLE IF NOT EXISTS ${LOG_TABLE} (
       id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
       schema_name text NOT NULL,
       table_name  text NOT NULL,
       op          "char" NOT NULL,
       before      jsonb,
       after       jsonb,
       logged_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
       origin      text DEFAULT NULLIF(current_setting('branchline.origin', true), '')
     )`,
    `ALTER TABLE ${LOG_TABLE} ADD COLUMN IF NOT EXISTS origin text DEFAULT NULLIF(current_setting('branchline.origin', true), '')`,
    `CREATE INDEX IF NOT EXISTS change_log_xid_idx ON ${LOG_TABLE} (xid, id)`,
    `CREATE TABLE IF NOT EXISTS ${READERS_TABLE} (
       reader     text PRIMARY KEY,
       position   xid8 NOT NULL,
       acked_at   timestamptz NOT NULL DEFAULT clock_timestamp()
     )`,
    `CREATE TABLE IF NOT EXISTS ${PURGED_TABLE} (
       one          boolean PRIMARY KEY DEFAULT true CHECK (one),
       purged_below xid8 NOT NULL,
       purged_at    timestamptz NOT NULL DEFAULT clock_timestamp()
     )`,
    `CREATE OR REPLACE FUNCTION branchline.capture_truncate() RETURNS trigger LANGUAGE plpgsql
       ${DEFINER}
     AS $f$
     BEGIN
       INSERT INTO ${LOG_TABLE} (schema_name, table_name, op) VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, 't');${notifySql(options)}
       RETURN NULL;
     END $f$`,
  ];
}

/**
 * The capture functions run with their owner's rights (the user who ran
 * `install`), so an ERP role that may write a captured table needs no grant
 * on branchline's schema: writing the table is enough, and installing
 * branchline never makes the ERP's writes fail. The search path is fixed
 * (every name in them is schema-qualified or pg_catalog's), as a
 * SECURITY DEFINER function must have it.
 */
const DEFINER = 'SECURITY DEFINER SET search_path = pg_catalog, pg_temp';

/** The name of a table's capture function (unique, within PostgreSQL's 63 bytes). */
export function captureFunctionName(t: TableId, oid: number): string {
  const base = `capture_${t.table}`.slice(0, 40);
  return `${base}_${oid}`;
}

/** `jsonb_build_object` of every column's text form; chunks of 50 pairs (a function takes at most 100 arguments). */
function rowJson(record: 'NEW' | 'OLD', columns: readonly string[]): string {
  const parts: string[] = [];
  for (let i = 0; i < columns.length; i += 50) {
    const pairs = columns.slice(i, i + 50).map((c) => `${quoteLiteral(c)}, ${record}.${quoteIdent(c)}::text`);
    parts.push(`jsonb_build_object(${pairs.join(', ')})`);
  }
  return parts.length > 0 ? parts.join(' || ') : `'{}'::jsonb`;
}

/** The capture function and triggers of one table (idempotent). */
export function captureSql(t: TableId, fn: string, columns: readonly string[], options: CaptureOptions = { notify: true }): string[] {
  const table = qualified(t.schema, t.table);
  return [
    `CREATE OR REPLACE FUNCTION branchline.${quoteIdent(fn)}() RETURNS trigger LANGUAGE plpgsql
       ${DEFINER}
       SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres' SET timezone = 'UTC'
       SET bytea_output = 'hex' SET extra_float_digits = 3
     AS $f$
     BEGIN
       INSERT INTO ${LOG_TABLE} (schema_name, table_name, op, before, after)
       VALUES (${quoteLiteral(t.schema)}, ${quoteLiteral(t.table)}, lower(left(TG_OP, 1)),
               CASE WHEN TG_OP <> 'INSERT' THEN ${rowJson('OLD', columns)} END,
               CASE WHEN TG_OP <> 'DELETE' THEN ${rowJson('NEW', columns)} END);${notifySql(options)}
       RETURN NULL;
     END $f$`,
    `DROP TRIGGER IF EXISTS branchline_capture ON ${table}`,
    `CREATE TRIGGER branchline_capture AFTER INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION branchline.${quoteIdent(fn)}()`,
    `DROP TRIGGER IF EXISTS branchline_capture_truncate ON ${table}`,
    `CREATE TRIGGER branchline_capture_truncate AFTER TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION branchline.capture_truncate()`,
  ];
}

/** A route filter of a change-log reader (see PgTriggerSourceOptions.rowFilter). */
export interface RouteFilterSpec {
  readonly store: string;
  readonly routed: readonly TableId[];
  readonly columns: readonly { readonly table: TableId; readonly column: string }[];
}

/**
 * The condition "this log row is one the reader needs" for a route filter,
 * with its values bound from `$first` on (returned in `params`): a row of a
 * routed table is needed when its old or new row names the store in one of
 * that table's route columns; rows of other tables and truncates always
 * are. `TRUE` without a filter. Written out per table (no subquery per
 * row), so HQ checks a row in a few comparisons. The mapping still
 * evaluates its route: this only spares the rows it would drop from being
 * read, sent and parsed.
 */
export function relevantRows(filter: RouteFilterSpec | null, first: number): { sql: string; params: string[] } {
  if (!filter || filter.routed.length === 0) return { sql: 'TRUE', params: [] };
  const params: string[] = [];
  const bind = (v: string) => {
    params.push(v);
    return `$${first + params.length - 1}::text`;
  };
  const store = bind(filter.store);
  const same = (t: TableId) => `(schema_name = ${bind(t.schema)} AND table_name = ${bind(t.table)})`;
  const routed = filter.routed.map(same).join(' OR ');
  const named = filter.columns.map((c) => {
    const col = bind(c.column);
    return `(${same(c.table)} AND (after ->> ${col} = ${store} OR before ->> ${col} = ${store}))`;
  });
  return { sql: `(op = 't' OR NOT (${routed})${named.map((n) => ` OR ${n}`).join('')})`, params };
}

/**
 * The transactions of a window: those whose xid is in [$1, $2) (all ended:
 * $2 is at most the oldest still running), less what was written on behalf
 * of the reader itself ($3: its origin name, or null) and, right after an
 * initial load, those its snapshot saw ($4); ordered by their last change
 * and after $5 (the last change id of the last one delivered): one page of
 * $6. A transaction whose changes another depends on (a row it wrote, a key
 * it freed, a parent it inserted) had committed, so logged its last change,
 * before the other could log that change: in this order it comes first.
 */
export const txnsSql = (relevant = 'TRUE'): string => `SELECT xid::text AS xid, max(id)::text AS last_id, (count(*) FILTER (WHERE ${relevant}))::int AS n, max(logged_at) AS at
  FROM ${LOG_TABLE}
 WHERE xid >= $1::text::xid8 AND xid < $2::text::xid8
   AND ($3::text IS NULL OR origin IS DISTINCT FROM $3::text)
   AND ($4::text IS NULL OR NOT pg_visible_in_snapshot(xid, $4::text::pg_snapshot))
 GROUP BY xid
HAVING max(id) > $5
 ORDER BY max(id)
 LIMIT $6`;
export const TXNS_SQL = txnsSql();

/** The changes of some transactions ($1), in log order, after change $2, without the reader's own origin ($3), only the relevant ones (`relevantRows` from $5): one page of $4. */
export const rowsSql = (relevant = 'TRUE'): string => `SELECT id::text AS log_id, xid::text AS xid, schema_name, table_name, op, before, after
  FROM ${LOG_TABLE}
 WHERE xid = ANY($1::text[]::xid8[]) AND id > $2
   AND ($3::text IS NULL OR origin IS DISTINCT FROM $3::text)
   AND ${relevant}
 ORDER BY id
 LIMIT $4`;
export const ROWS_SQL = rowsSql();

/** Records how far a reader has applied (only forward). */
export const ACK_SQL = `INSERT INTO ${READERS_TABLE} AS r (reader, position) VALUES ($1, $2::text::xid8)
  ON CONFLICT (reader) DO UPDATE SET position = greatest(r.position, EXCLUDED.position), acked_at = clock_timestamp()`;

/** Below which xid the log was purged (0 when never). */
export const PURGED_SQL = `SELECT coalesce((SELECT purged_below::text FROM ${PURGED_TABLE}), '0') AS purged_below`;

/** The bound below which every transaction has ended (committed or rolled back). */
export const HORIZON_SQL = `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`;
