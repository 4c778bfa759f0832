import type pg from 'pg';
import type { TableInfo } from '../catalog/pg-catalog.js';
import type { TargetTable } from '../core/target-op.js';
import { qualified, quoteIdent } from '../db/connect.js';
import type { KeyDiff } from './table-diff.js';

/** The temporary table (in HQ's session) that holds the source rows' contributions to the totals. */
const DELTAS = 'branchline_reconcile_deltas';

export interface ExpectedTotalsOptions {
  /** A session at HQ, where the totals are. */
  readonly db: pg.Client;
  readonly target: TargetTable;
  readonly info: TableInfo;
  /** The measure columns (sum(...) and count()) of the aggregate mappings writing the target. */
  readonly measures: readonly string[];
}

/**
 * Expected totals of an aggregate target: every source row's contribution
 * (what an insert of it adds: its key and measure values, or nothing when
 * the filter leaves it out) goes into a temporary table at HQ; HQ sums them
 * per key in numeric arithmetic, cast to the target's column types as the
 * apply casts a batch's sums, and compares them with the store's totals.
 *
 * A total is equal when every measure is; a total that sums to zero in
 * every measure may be absent at HQ, or present as a zero row (totals that
 * came back to zero stay as zero rows), so neither is a difference.
 */
export class ExpectedTotals {
  private readonly o: ExpectedTotalsOptions;
  private readonly typeOf: (c: string) => string;

  constructor(options: ExpectedTotalsOptions) {
    this.o = options;
    const types = new Map(options.info.columns.map((c) => [c.name, c.type]));
    this.typeOf = (c) => {
      const t = types.get(c);
      if (!t) throw new Error(`internal: ${c} is not a column of ${options.target.table}`);
      return t;
    };
  }

  private get columns(): string[] {
    return [...this.o.target.key, ...this.o.measures];
  }

  async create(): Promise<void> {
    const { db, target, measures } = this.o;
    await db.query(`DROP TABLE IF EXISTS pg_temp.${DELTAS}`);
    const keyCols = target.key.map((k) => `${quoteIdent(k)} ${this.typeOf(k)}`);
    const measureCols = measures.map((m) => `${quoteIdent(m)} numeric`);
    await db.query(`CREATE TEMPORARY TABLE ${DELTAS} (${[...keyCols, ...measureCols].join(', ')})`);
  }

  /** Adds contributions: rows holding the key columns and the measure values (text). */
  async add(rows: readonly Readonly<Record<string, string | null>>[]): Promise<void> {
    if (rows.length === 0) return;
    const { db, target } = this.o;
    const columns = this.columns;
    const keys = new Set(target.key);
    const casts = columns.map((c, i) => `$${i + 1}::text[]::${keys.has(c) ? this.typeOf(c) : 'numeric'}[]`);
    await db.query(
      `INSERT INTO ${DELTAS} (${columns.map(quoteIdent).join(', ')}) SELECT * FROM unnest(${casts.join(', ')})`,
      columns.map((c) => rows.map((r) => r[c] ?? null)),
    );
  }

  /**
   * The differing totals, by key. `scope`: the target rows of this store
   * (the key columns written from constants such as store.code).
   */
  async diff(scope: readonly (readonly [string, string])[]): Promise<KeyDiff> {
    const { db, target, measures } = this.o;
    const key = target.key;
    const params: unknown[] = [];
    const conditions = scope.map(([c, v]) => {
      params.push(v);
      return `a.${quoteIdent(c)} = $${params.length}::${this.typeOf(c)}`;
    });
    const actual = `(SELECT * FROM ${qualified(target.schema, target.table)} a${conditions.length > 0 ? ` WHERE ${conditions.join(' AND ')}` : ''})`;
    const sums = measures.map((m) => `coalesce(sum(d.${quoteIdent(m)}), 0)::${this.typeOf(m)} AS ${quoteIdent(m)}`);
    const expected = `(SELECT ${key.map((k) => `d.${quoteIdent(k)}`).join(', ')}, ${sums.join(', ')} FROM ${DELTAS} d GROUP BY ${key.map((_, i) => String(i + 1)).join(', ')})`;
    const on = key.map((k) => `a.${quoteIdent(k)} = e.${quoteIdent(k)}`).join(' AND ');
    const keyText = (alias: string) => `ARRAY[${key.map((k) => `${alias}.${quoteIdent(k)}::text`).join(', ')}]`;
    const nonZero = (alias: string) => `(${measures.map((m) => `coalesce(${alias}.${quoteIdent(m)}, 0) <> 0`).join(' OR ')})`;
    const differs = `(${measures.map((m) => `a.${quoteIdent(m)}`).join(', ')}) IS DISTINCT FROM (${measures.map((m) => `e.${quoteIdent(m)}`).join(', ')})`;
    const order = key.map((_, i) => `k[${i + 1}]`).join(', ');
    const res = await db.query<{ kind: 'missing' | 'different' | 'extra'; k: string[] }>(
      `WITH e AS MATERIALIZED ${expected}, a AS MATERIALIZED ${actual}
       SELECT kind, k FROM (
         SELECT 'missing' AS kind, ${keyText('e')} AS k FROM e WHERE ${nonZero('e')} AND NOT EXISTS (SELECT 1 FROM a WHERE ${on})
         UNION ALL
         SELECT 'different', ${keyText('e')} FROM e JOIN a ON ${on} WHERE ${differs}
         UNION ALL
         SELECT 'extra', ${keyText('a')} FROM a WHERE ${nonZero('a')} AND NOT EXISTS (SELECT 1 FROM e WHERE ${on})
       ) d ORDER BY kind, ${order}`,
      params,
    );
    const count = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${actual} a`, params);
    const by = (kind: string) => res.rows.filter((r) => r.kind === kind).map((r) => r.k);
    return { missing: by('missing'), different: by('different'), extra: by('extra'), targetRows: Number(count.rows[0]!.n) };
  }

  async drop(): Promise<void> {
    await this.o.db.query(`DROP TABLE IF EXISTS pg_temp.${DELTAS}`);
  }
}
