import type pg from 'pg';
import type { TableId } from '../core/change.js';
import { connect, qualified, quoteIdent } from '../db/connect.js';
import { COPY_SESSION } from '../load/initial-load.js';
import type { SourceIsolation, SourceRow, SourceRowsReader, SourceTable } from './source-rows.js';

export interface PgSourceRowsOptions {
  readonly url: string;
  /** For messages: "store S001", "HQ". */
  readonly role: string;
  readonly applicationName: string;
}

type Row = Record<string, string | null>;

/** Keys read back per statement by `byKeys`. */
const KEYS_PER_READ = 1000;

/**
 * A PostgreSQL source (a PostgreSQL store's up tables, HQ's down tables):
 * one session in one REPEATABLE READ READ ONLY transaction, with the
 * initial load's session settings (ISO dates, UTC, hex bytea, exact
 * floats), every column read as `::text`. Keys are JSON arrays of the key
 * columns' text, cast back to their types when read again.
 */
export class PgSourceRows implements SourceRowsReader {
  readonly isolation: SourceIsolation = 'repeatable read';
  private db: pg.Client | null = null;

  constructor(private readonly options: PgSourceRowsOptions) {}

  get postgres(): pg.Client {
    if (!this.db) throw new Error('internal: the source is read before begin()');
    return this.db;
  }

  async begin(): Promise<void> {
    this.db = await connect(this.options.url, { role: this.options.role, applicationName: this.options.applicationName });
    for (const q of COPY_SESSION) await this.db.query(q);
    await this.db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // The snapshot is taken by the transaction's first statement: here, so the read sees the database as of begin().
    await this.db.query('SELECT 1');
  }

  async chunk(table: SourceTable, after: string | null, limit: number): Promise<SourceRow[]> {
    const pk = table.primaryKey;
    const types = typesOf(table);
    // Qualified: ORDER BY a bare name would sort by the text output column of that name.
    const order = pk.map((k) => `t.${quoteIdent(k)}`).join(', ');
    const last = after === null ? [] : (JSON.parse(after) as string[]);
    const where = after === null ? '' : `WHERE (${order}) > (${pk.map((k, i) => `$${i + 1}::${types.get(k)}`).join(', ')})`;
    const res = await this.postgres.query<Row>(`SELECT ${selectList(table)} FROM ${qualified(table.id.schema, table.id.table)} t ${where} ORDER BY ${order} LIMIT ${limit}`, last);
    return res.rows.map((r) => sourceRow(table, r));
  }

  async byKeys(table: SourceTable, keys: readonly string[]): Promise<SourceRow[]> {
    const pk = table.primaryKey;
    const types = typesOf(table);
    const unnest = `unnest(${pk.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS u(${pk.map((_, i) => `k${i}`).join(', ')})`;
    const on = pk.map((k, i) => `t.${quoteIdent(k)} = u.k${i}::${types.get(k)}`).join(' AND ');
    const out: SourceRow[] = [];
    for (let i = 0; i < keys.length; i += KEYS_PER_READ) {
      const part = keys.slice(i, i + KEYS_PER_READ).map((k) => JSON.parse(k) as string[]);
      const res = await this.postgres.query<Row>(
        `SELECT ${selectList(table)} FROM ${qualified(table.id.schema, table.id.table)} t JOIN ${unnest} ON ${on}`,
        pk.map((_, j) => part.map((k) => k[j]!)),
      );
      out.push(...res.rows.map((r) => sourceRow(table, r)));
    }
    return out;
  }

  async estimate(tables: readonly TableId[]): Promise<number | null> {
    let n = 0;
    for (const t of tables) {
      const r = await this.postgres.query<{ n: string | null }>(`SELECT reltuples::bigint AS n FROM pg_class WHERE oid = to_regclass($1)`, [qualified(t.schema, t.table)]);
      const v = Number(r.rows[0]?.n ?? -1);
      if (v < 0) return null;
      n += v;
    }
    return n;
  }

  async end(): Promise<void> {
    await this.postgres.query('COMMIT');
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    await db?.end().catch(() => undefined);
  }
}

function typesOf(table: SourceTable): Map<string, string> {
  return new Map(table.info.columns.map((c) => [c.name, c.type]));
}

function selectList(table: SourceTable): string {
  return table.info.columns.map((c) => `t.${quoteIdent(c.name)}::text AS ${quoteIdent(c.name)}`).join(', ');
}

function sourceRow(table: SourceTable, values: Row): SourceRow {
  return { key: JSON.stringify(table.primaryKey.map((k) => values[k])), values };
}
