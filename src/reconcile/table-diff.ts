import type pg from 'pg';
import type { TableInfo } from '../catalog/pg-catalog.js';
import { qualified, quoteIdent } from '../db/connect.js';
import type { TargetTable } from '../core/target-op.js';

/** The temporary table (in the target's session) that holds the mapped source rows of one mapping. */
const EXPECTED = 'branchline_reconcile_expected';

/** Keys (target key values in text form) of the rows that differ, by kind. */
export interface KeyDiff {
  /** Rows the source maps to that the target lacks. */
  readonly missing: string[][];
  /** Rows both hold, with some compared column different. */
  readonly different: string[][];
  /** Target rows (of this store's scope) no source row maps to. */
  readonly extra: string[][];
  /** Target rows compared (the scope). */
  readonly targetRows: number;
}

export interface ExpectedTableOptions {
  /** A session at the target (HQ for up mappings, the store for down ones). */
  readonly db: pg.Client;
  readonly target: TargetTable;
  readonly info: TableInfo;
  /** Target columns compared (key columns included). */
  readonly columns: readonly string[];
}

/**
 * The mapped source rows, written into a temporary table at the target with
 * the target's column types (so PostgreSQL, not the agent, decides what is
 * equal: 1.0 and 1.00 in a numeric(12,2) are one value), each with the
 * source key it came from (for --fix). Then one statement per kind finds
 * the differing keys.
 */
export class ExpectedTable {
  private readonly o: ExpectedTableOptions;
  private readonly typeOf: (c: string) => string;

  constructor(options: ExpectedTableOptions) {
    this.o = options;
    const types = new Map(options.info.columns.map((c) => [c.name, c]));
    this.typeOf = (c) => {
      const t = types.get(c);
      if (!t) throw new Error(`internal: ${c} is not a column of ${options.target.table}`);
      return t.type;
    };
  }

  async create(): Promise<void> {
    const { db, target, columns } = this.o;
    await db.query(`DROP TABLE IF EXISTS pg_temp.${EXPECTED}`);
    await db.query(
      `CREATE TEMPORARY TABLE ${EXPECTED} AS SELECT ${columns.map(quoteIdent).join(', ')}, NULL::text AS branchline_source_key, false AS branchline_held FROM ${qualified(target.schema, target.table)} WITH NO DATA`,
    );
  }

  /**
   * Adds mapped rows (target column values in text form) with their source
   * keys (JSON arrays). `held[i]`: row i is not compared (a scheduled row,
   * due later), though a target row with its key is not extra either.
   */
  async add(rows: readonly Readonly<Record<string, string | null>>[], sourceKeys: readonly string[], held?: readonly boolean[]): Promise<void> {
    if (rows.length === 0) return;
    const { db, columns } = this.o;
    const n = columns.length;
    const casts = columns.map((c, i) => `$${i + 1}::text[]::${this.typeOf(c)}[]`);
    await db.query(
      `INSERT INTO ${EXPECTED} (${columns.map(quoteIdent).join(', ')}, branchline_source_key, branchline_held) SELECT * FROM unnest(${casts.join(', ')}, $${n + 1}::text[], $${n + 2}::boolean[])`,
      [...columns.map((c) => rows.map((r) => r[c] ?? null)), sourceKeys, held ?? rows.map(() => false)],
    );
  }

  /**
   * The differing keys. `scope`: the target rows that belong to this source
   * (e.g. store_code = 'S001'); null when no column tells them apart (only
   * the keys expected are looked at, so extra rows cannot be found).
   * `columns`: those compared (insert_only: the key alone). `softDeleted`:
   * the values a soft delete sets; target rows holding them are not extra.
   */
  async diff(
    scope: readonly (readonly [string, string])[] | null,
    columns: readonly string[] = this.o.columns,
    softDeleted: Readonly<Record<string, string | null>> | null = null,
  ): Promise<KeyDiff> {
    const { db, target, info } = this.o;
    const key = target.key;
    const keySet = new Set(key);
    const t = qualified(target.schema, target.table);
    const params: unknown[] = [];
    const conditions = (scope ?? []).map(([c, v]) => {
      params.push(v);
      return `a.${quoteIdent(c)} = $${params.length}::${this.typeOf(c)}`;
    });
    if (scope === null) conditions.push(`(${key.map((k) => `a.${quoteIdent(k)}`).join(', ')}) IN (SELECT ${key.map(quoteIdent).join(', ')} FROM ${EXPECTED})`);
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    const actual = `(SELECT * FROM ${t} a ${where})`;
    const on = key.map((k) => `a.${quoteIdent(k)} = e.${quoteIdent(k)}`).join(' AND ');
    const keyText = (alias: string) => `ARRAY[${key.map((k) => `${alias}.${quoteIdent(k)}::text`).join(', ')}]`;
    // json has no equality: compared as jsonb.
    const json = new Set(info.columns.filter((c) => c.typeName === 'json').map((c) => c.name));
    const cmp = (alias: string, c: string) => `${alias}.${quoteIdent(c)}${json.has(c) ? '::jsonb' : ''}`;
    const measures = columns.filter((c) => !keySet.has(c));
    const differs = measures.length === 0 ? 'false' : `(${measures.map((c) => cmp('a', c)).join(', ')}) IS DISTINCT FROM (${measures.map((c) => cmp('e', c)).join(', ')})`;
    const scopeParams = [...params];
    const order = key.map((_, i) => `k[${i + 1}]`).join(', ');
    const marked = Object.entries(softDeleted ?? {}).map(([c, v]) => {
      params.push(v);
      return `a.${quoteIdent(c)} IS NOT DISTINCT FROM $${params.length}::${this.typeOf(c)}`;
    });
    const soft = marked.length > 0 ? ` AND NOT (${marked.join(' AND ')})` : '';
    const res = await db.query<{ kind: 'missing' | 'different' | 'extra'; k: string[] }>(
      `SELECT kind, k FROM (
         SELECT 'missing' AS kind, ${keyText('e')} AS k FROM ${EXPECTED} e WHERE NOT e.branchline_held AND NOT EXISTS (SELECT 1 FROM ${actual} a WHERE ${on})
         UNION ALL
         SELECT 'different', ${keyText('e')} FROM ${EXPECTED} e JOIN ${actual} a ON ${on} WHERE NOT e.branchline_held AND ${differs}
         UNION ALL
         SELECT 'extra', ${keyText('a')} FROM ${actual} a WHERE NOT EXISTS (SELECT 1 FROM ${EXPECTED} e WHERE ${on})${soft}
       ) d ORDER BY kind, ${order}`,
      params,
    );
    const count = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${actual} a`, scopeParams);
    const by = (kind: string) => res.rows.filter((r) => r.kind === kind).map((r) => r.k);
    return { missing: by('missing'), different: by('different'), extra: by('extra'), targetRows: Number(count.rows[0]!.n) };
  }

  /** The source keys (JSON arrays) of the expected rows with these target keys. */
  async sourceKeys(keys: readonly (readonly string[])[]): Promise<string[]> {
    if (keys.length === 0) return [];
    const { db, target } = this.o;
    const key = target.key;
    const res = await db.query<{ s: string }>(
      `SELECT e.branchline_source_key AS s FROM ${EXPECTED} e JOIN unnest(${key.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS u(${key.map((_, i) => `k${i}`).join(', ')})
         ON ${key.map((k, i) => `e.${quoteIdent(k)} = u.k${i}::${this.typeOf(k)}`).join(' AND ')}`,
      key.map((_, i) => keys.map((k) => k[i]!)),
    );
    return res.rows.map((r) => r.s);
  }

  async drop(): Promise<void> {
    await this.o.db.query(`DROP TABLE IF EXISTS pg_temp.${EXPECTED}`);
  }
}
