import type pg from 'pg';
import type { KeyDiff } from './table-diff.js';

/**
 * One side of a hashed comparison, as SQL its own database runs: the rows
 * (`FROM ... WHERE ...`, alias `t`), and per target column an expression
 * giving that column's value in the target's text form (the source side
 * casts its columns to the target's types itself).
 */
export interface HashedSide {
  readonly db: pg.Client;
  /** `schema.table t` */
  readonly from: string;
  readonly conditions: readonly string[];
  readonly params: readonly unknown[];
  /** Target key columns' text, in key order. */
  readonly keyTexts: readonly string[];
  /** Compared columns' text (key columns included), the same columns in the same order on both sides. */
  readonly rowTexts: readonly string[];
}

export interface HashedDiff extends KeyDiff {
  readonly sourceRows: number;
  /** Buckets each side hashed (16^prefix), and those whose hashes differed. */
  readonly buckets: number;
  readonly bucketsDiffering: number;
  /** Row hashes fetched from both sides to narrow the differing buckets down to keys. */
  readonly rowsFetched: number;
}

/** Rows per bucket aimed at: the buckets that differ are fetched row by row (as hashes). */
const ROWS_PER_BUCKET = 256;

/**
 * Finds the differing keys while only counts and hashes cross: each side
 * counts its rows, then hashes them into 16^p buckets by the md5 of their
 * key (so no key order is needed, and the two databases' collations may
 * differ), each bucket's hash being the sum of its rows' 60-bit md5s (order
 * independent); only the buckets whose count or sum differ are then read
 * as (key, row md5) pairs, and compared here.
 */
export async function hashedDiff(source: HashedSide, target: HashedSide): Promise<HashedDiff> {
  // Every placeholder of a side is in its row texts or its conditions (so each statement binds them all).
  const rowHash = (s: HashedSide) => `md5(ROW(${s.rowTexts.join(', ')})::text)`;
  const count = async (s: HashedSide) => Number((await s.db.query<{ n: string }>(`SELECT count(${rowHash(s)}) AS n FROM ${s.from} ${where(s.conditions)}`, [...s.params])).rows[0]!.n);
  const sourceRows = await count(source);
  const targetRows = await count(target);
  const prefix = Math.min(4, Math.max(1, Math.ceil(Math.log(Math.max(sourceRows, targetRows, 1) / ROWS_PER_BUCKET) / Math.log(16))));
  const bucketOf = (s: HashedSide) => `substr(md5(ROW(${s.keyTexts.join(', ')})::text), 1, ${prefix})`;
  const buckets = async (s: HashedSide) => {
    const res = await s.db.query<{ b: string; n: string; h: string }>(
      `SELECT ${bucketOf(s)} AS b, count(*) AS n, sum(('x' || substr(${rowHash(s)}, 1, 15))::bit(60)::bigint)::text AS h FROM ${s.from} ${where(s.conditions)} GROUP BY 1`,
      [...s.params],
    );
    return new Map(res.rows.map((r) => [r.b, `${r.n}/${r.h}`]));
  };
  const sb = await buckets(source);
  const tb = await buckets(target);
  const differing = [...new Set([...sb.keys(), ...tb.keys()])].filter((b) => sb.get(b) !== tb.get(b)).sort();
  const empty = { sourceRows, targetRows, buckets: 16 ** prefix, bucketsDiffering: differing.length };
  if (differing.length === 0) return { ...empty, missing: [], different: [], extra: [], rowsFetched: 0 };
  const rows = async (s: HashedSide) => {
    const res = await s.db.query<{ k: string[]; h: string }>(
      `SELECT ARRAY[${s.keyTexts.join(', ')}] AS k, ${rowHash(s)} AS h FROM ${s.from} ${where([...s.conditions, `${bucketOf(s)} = ANY($${s.params.length + 1}::text[])`])}`,
      [...s.params, differing],
    );
    return new Map(res.rows.map((r) => [JSON.stringify(r.k), r.h]));
  };
  const sr = await rows(source);
  const tr = await rows(target);
  const missing: string[][] = [];
  const different: string[][] = [];
  const extra: string[][] = [];
  for (const [k, h] of sr) {
    const t = tr.get(k);
    if (t === undefined) missing.push(JSON.parse(k) as string[]);
    else if (t !== h) different.push(JSON.parse(k) as string[]);
  }
  for (const k of tr.keys()) if (!sr.has(k)) extra.push(JSON.parse(k) as string[]);
  return { ...empty, missing: sortKeys(missing), different: sortKeys(different), extra: sortKeys(extra), rowsFetched: sr.size + tr.size };
}

function where(conditions: readonly string[]): string {
  return conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
}

/** Keys in a stable order (numbers by value, then text), for reports. */
function sortKeys(keys: string[][]): string[][] {
  const cmp = (a: string, b: string) => {
    const na = Number(a);
    const nb = Number(b);
    return Number.isFinite(na) && Number.isFinite(nb) && a.trim() !== '' && b.trim() !== '' ? na - nb : a < b ? -1 : a > b ? 1 : 0;
  };
  return keys.sort((x, y) => {
    for (let i = 0; i < x.length; i++) {
      const c = cmp(x[i]!, y[i]!);
      if (c !== 0) return c;
    }
    return 0;
  });
}
