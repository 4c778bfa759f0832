import type { TableInfo } from '../catalog/pg-catalog.js';
import type { TargetTable } from '../core/target-op.js';
import { qualified, quoteIdent } from '../db/connect.js';

/**
 * The column's type without its modifier, for casts: an explicit cast to
 * `character varying(10)`, `character(3)` or `bit(4)` cuts a longer value
 * short without a word, where writing the value into the column (an
 * assignment cast) refuses it (22001), so a value too long for HQ is
 * parked, never stored cut (`character varying(10)` -> `character varying`,
 * `numeric(5,2)[]` -> `numeric[]`, `character(3)` -> `bpchar`, `bit(4)` ->
 * `bit varying`, `timestamp(3) with time zone` -> `timestamp with time
 * zone`). The column applies its modifier on write.
 */
export function castType(type: string): string {
  if (type.startsWith('"')) return type;
  const base = type.replace(/\(\d+(?:,\s*-?\d+)?\)/g, '');
  // Without a length, `character` and `bit` mean length 1: their unbounded forms are bpchar and bit varying.
  return base.replace(/^character(?=\[|$)/, 'bpchar').replace(/^bit(?=\[|$)/, 'bit varying');
}

/**
 * Set-based SQL for one target table: every statement takes one text[]
 * parameter per column and casts to the column's type at the target (its base type: see castType), so a
 * whole batch for a table is one round trip whatever its size.
 */
export class TableStatements {
  /** Statements built so far, by kind and column list (see `signature`): each is built once. */
  private readonly cache = new Map<string, string>();
  private readonly types: Map<string, string>;
  private readonly name: string;
  /** COPY FROM may write this table (not with row-level security, which COPY FROM refuses). */
  readonly copyAllowed: boolean;

  constructor(
    readonly target: TargetTable,
    info: TableInfo,
  ) {
    this.copyAllowed = info.rowSecurity !== true;
    this.types = new Map(info.columns.map((c) => [c.name, castType(c.type)]));
    this.name = qualified(target.schema, target.table);
  }

  private signature(kind: string, columns: readonly string[]): string {
    return `${kind}\u0001${columns.join('\u0001')}`;
  }

  typeOf(column: string): string {
    const t = this.types.get(column);
    if (!t) throw new Error(`column ${column} not in ${this.name}`);
    return t;
  }

  /**
   * INSERT ... SELECT FROM unnest(...) ON CONFLICT (key) DO UPDATE, writing
   * only rows whose values differ (a redelivered or no-op change leaves the
   * target row, and its MVCC history, alone).
   */
  upsert(columns: readonly string[]): string {
    const signature = this.signature('upsert', columns);
    let sql = this.cache.get(signature);
    if (sql) return sql;
    const cols = columns.map(quoteIdent);
    const casts = columns.map((c) => `u.${quoteIdent(c)}::${this.typeOf(c)}`);
    const params = columns.map((_, i) => `$${i + 1}::text[]`);
    const keySet = new Set(this.target.key);
    const rest = columns.filter((c) => !keySet.has(c));
    let conflict: string;
    if (rest.length === 0) {
      conflict = 'DO NOTHING';
    } else {
      const set = rest.map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ');
      const cur = rest.map((c) => `t.${quoteIdent(c)}`).join(', ');
      const inc = rest.map((c) => `EXCLUDED.${quoteIdent(c)}`).join(', ');
      // Compare stored images, not with =: json has no = at all, and = calls
      // 1.0 and 1.00, 0 and -0, or citext 'Abc' and 'ABC' equal, though the
      // store changed what it holds. Two NULLs count as the same.
      conflict = `DO UPDATE SET ${set} WHERE record_image_ne(ROW(${cur}), ROW(${inc}))`;
    }
    sql =
      `INSERT INTO ${this.name} AS t (${cols.join(', ')}) ` +
      `SELECT ${casts.join(', ')} FROM unnest(${params.join(', ')}) AS u(${cols.join(', ')}) ` +
      `ON CONFLICT (${this.target.key.map(quoteIdent).join(', ')}) ${conflict}`;
    this.cache.set(signature, sql);
    return sql;
  }

  /** INSERT ... SELECT FROM unnest(...), without a conflict clause: for rows new at the target. */
  insert(columns: readonly string[]): string {
    const signature = this.signature('insert', columns);
    let sql = this.cache.get(signature);
    if (sql) return sql;
    const cols = columns.map(quoteIdent);
    const casts = columns.map((c) => `u.${quoteIdent(c)}::${this.typeOf(c)}`);
    const params = columns.map((_, i) => `$${i + 1}::text[]`);
    sql = `INSERT INTO ${this.name} (${cols.join(', ')}) SELECT ${casts.join(', ')} FROM unnest(${params.join(', ')}) AS u(${cols.join(', ')})`;
    this.cache.set(signature, sql);
    return sql;
  }

  /**
   * COPY ... FROM STDIN (text format) into these columns: rows new at the
   * target, as `insert` writes them. Each value is read by the column's
   * input function with its modifier, as an assignment does: a value too
   * long for a varchar(10) is refused (22001), never cut.
   */
  copy(columns: readonly string[]): string {
    const signature = this.signature('copy', columns);
    let sql = this.cache.get(signature);
    if (sql) return sql;
    for (const c of columns) this.typeOf(c);
    sql = `COPY ${this.name} (${columns.map(quoteIdent).join(', ')}) FROM STDIN`;
    this.cache.set(signature, sql);
    return sql;
  }

  /**
   * INSERT ... SELECT FROM unnest(...) ON CONFLICT (key) DO NOTHING: create
   * rows the target does not hold, leave the others alone (insert_only).
   */
  insertMissing(columns: readonly string[]): string {
    const signature = this.signature('insert-missing', columns);
    let sql = this.cache.get(signature);
    if (sql) return sql;
    sql = `${this.insert(columns)} ON CONFLICT (${this.target.key.map(quoteIdent).join(', ')}) DO NOTHING`;
    this.cache.set(signature, sql);
    return sql;
  }

  /** UPDATE ... FROM unnest(...): set columns of the rows the target holds (soft delete); key columns come first in `columns` or anywhere. */
  update(columns: readonly string[]): string {
    const signature = this.signature('update', columns);
    let sql = this.cache.get(signature);
    if (sql) return sql;
    const keySet = new Set(this.target.key);
    const cols = columns.map(quoteIdent);
    const params = columns.map((_, i) => `$${i + 1}::text[]`);
    const set = columns.filter((c) => !keySet.has(c)).map((c) => `${quoteIdent(c)} = u.${quoteIdent(c)}::${this.typeOf(c)}`);
    const match = this.target.key.map((c) => `t.${quoteIdent(c)} = u.${quoteIdent(c)}::${this.typeOf(c)}`).join(' AND ');
    sql = `UPDATE ${this.name} AS t SET ${set.join(', ')} FROM unnest(${params.join(', ')}) AS u(${cols.join(', ')}) WHERE ${match}`;
    this.cache.set(signature, sql);
    return sql;
  }

  /**
   * Aggregates: parameters are the key columns then the measure deltas, one
   * row per change; they are summed per key and added to the target's
   * totals, creating the row when absent. Exact numeric arithmetic.
   */
  add(measures: readonly string[]): string {
    const signature = this.signature('add', measures);
    let sql = this.cache.get(signature);
    if (sql) return sql;
    const key = this.target.key;
    const columns = [...key, ...measures];
    const cols = columns.map(quoteIdent);
    const params = columns.map((_, i) => `$${i + 1}::text[]`);
    const keyExprs = key.map((c) => `u.${quoteIdent(c)}::${this.typeOf(c)}`);
    const sums = measures.map((c) => `coalesce(sum(u.${quoteIdent(c)}::numeric), 0)::${this.typeOf(c)}`);
    const set = measures.map((c) => `${quoteIdent(c)} = t.${quoteIdent(c)} + EXCLUDED.${quoteIdent(c)}`);
    sql =
      `INSERT INTO ${this.name} AS t (${cols.join(', ')}) ` +
      `SELECT ${[...keyExprs, ...sums].join(', ')} FROM unnest(${params.join(', ')}) AS u(${cols.join(', ')}) ` +
      `GROUP BY ${key.map((_, i) => String(i + 1)).join(', ')} ` +
      `ON CONFLICT (${key.map(quoteIdent).join(', ')}) DO UPDATE SET ${set.join(', ')}`;
    this.cache.set(signature, sql);
    return sql;
  }

  /** DELETE ... USING unnest(keys). */
  delete(): string {
    const cached = this.cache.get('delete');
    if (cached) return cached;
    const key = this.target.key;
    const cols = key.map(quoteIdent);
    const params = key.map((_, i) => `$${i + 1}::text[]`);
    const match = key.map((c) => `t.${quoteIdent(c)} = u.${quoteIdent(c)}::${this.typeOf(c)}`).join(' AND ');
    const sql = `DELETE FROM ${this.name} AS t USING unnest(${params.join(', ')}) AS u(${cols.join(', ')}) WHERE ${match}`;
    this.cache.set('delete', sql);
    return sql;
  }

  /**
   * UPDATE ... SET <columns> = $k+1.. WHERE <key> = $1..$k: one row's key
   * change in place (the old key first, then the new values, key included).
   */
  move(columns: readonly string[]): string {
    const key = this.target.key;
    const set = columns.map((c, i) => `${quoteIdent(c)} = $${key.length + i + 1}::${this.typeOf(c)}`).join(', ');
    const match = key.map((c, i) => `${quoteIdent(c)} = $${i + 1}::${this.typeOf(c)}`).join(' AND ');
    return `UPDATE ${this.name} SET ${set} WHERE ${match}`;
  }

  /** UPDATE ... SET col = $n ... WHERE col = $1 AND ... (a TRUNCATE under a soft-delete policy). */
  updateWhere(columns: readonly string[], setColumns: readonly string[]): string {
    const match = columns.length === 0 ? 'true' : columns.map((c, i) => `${quoteIdent(c)} = $${i + 1}::${this.typeOf(c)}`).join(' AND ');
    const set = setColumns.map((c, i) => `${quoteIdent(c)} = $${columns.length + i + 1}::${this.typeOf(c)}`).join(', ');
    return `UPDATE ${this.name} SET ${set} WHERE ${match}`;
  }

  /** DELETE ... WHERE col = $1 AND ... (e.g. every row of one store, for a TRUNCATE); no columns: every row. */
  deleteWhere(columns: readonly string[]): string {
    const match = columns.length === 0 ? 'true' : columns.map((c, i) => `${quoteIdent(c)} = $${i + 1}::${this.typeOf(c)}`).join(' AND ');
    return `DELETE FROM ${this.name} WHERE ${match}`;
  }
}
