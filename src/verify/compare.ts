import pg from 'pg';
import { describeTables } from '../catalog/pg-catalog.js';
import { formatTable } from '../core/change.js';
import type { RowValues } from '../core/change.js';
import { clientConfig, qualified, quoteIdent, TEXT_VALUES } from '../db/connect.js';
import type { CompiledMapping, MappingContext, MappingSet } from '../mapping/mapping.js';
import type { TargetOp } from '../core/target-op.js';
import { lookupBranchCodes, lookupHqKeys } from '../associate/association-store.js';

export interface TableComparison {
  readonly file: string;
  readonly source: string;
  readonly target: string;
  /** Rows at the store (source table). */
  readonly sourceRows: number;
  /** Rows at HQ that belong to this store. */
  readonly targetRows: number;
  /** Mapped store rows HQ does not hold exactly (absent or different). */
  readonly missing: number;
  /** HQ rows of this store that no store row maps to (or that differ). */
  readonly extra: number;
}


/**
 * Checks that HQ holds exactly what a store holds, through the mappings:
 * every store row is mapped as if inserted now and compared, as typed
 * values at HQ, with the HQ rows that belong to the store. For the demo and
 * the tests; `reconcile` does this at scale.
 */
export async function compareStore(options: {
  storeUrl: string;
  hqUrl: string;
  storeCode: string;
  mappings: MappingSet;
}): Promise<TableComparison[]> {
  const store = new pg.Client({ ...clientConfig(options.storeUrl, { role: 'store' }), types: TEXT_VALUES });
  const hq = new pg.Client({ ...clientConfig(options.hqUrl, { role: 'HQ' }), types: TEXT_VALUES });
  await store.connect();
  await hq.connect();
  try {
    const ctx = { storeCode: options.storeCode };
    const targets = await describeTables(
      hq,
      options.mappings.mappings.map((m) => m.target),
    );
    const out: TableComparison[] = [];
    for (const m of options.mappings.mappings) {
      const info = targets.get(`${m.target.schema}.${m.target.table}`);
      if (!info) throw new Error(`target ${formatTable(m.target)} not found`);
      const src = await store.query<Record<string, string | null>>(`SELECT * FROM ${qualified(m.source.schema, m.source.table)}`);
      const expected: Record<string, string | null>[] = [];
      // An aggregate's HQ rows are totals: the store's rows summed per key.
      const aggregate = m.aggregate;
      const written: Extract<TargetOp, { kind: 'upsert' | 'insert-missing' | 'add' }>[] = [];
      for (const row of src.rows) {
        for (const op of m.map({ op: 'insert', table: m.source, after: row as RowValues }, ctx)) {
          if (op.kind === 'upsert' || op.kind === 'insert-missing' || op.kind === 'add') written.push(op);
        }
      }
      // Store codes become HQ keys through the associations (a code not associated yet stays, and so differs).
      const translated = await translateCodes(hq, options.storeCode, m.associates, written);
      expected.push(...translated.rows);
      const unassociated = translated.unassociated; // rows that wait for an association: not at HQ yet, so missing
      // Only this store's rows at HQ: by the key columns that hold the store code; a table
      // shared by every store (e.g. HQ's customers, keyed by HQ key) by the keys expected.
      const scope = truncateScope(m, ctx);
      // insert_only: HQ keeps the row as first created and ignores later changes, so only its presence is compared.
      const cols = written.some((op) => op.kind === 'insert-missing') ? m.target.key : m.columns;
      const typeOf = (c: string) => info.columns.find((x) => x.name === c)!;
      // json has no equality operator: compare as jsonb.
      const cmpType = (c: string) => (typeOf(c).typeName === 'json' ? 'jsonb' : typeOf(c).type);
      const unnest = `unnest(${cols.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS u(${cols.map(quoteIdent).join(', ')})`;
      const keySet = new Set(m.target.key);
      const measures = cols.filter((c) => !keySet.has(c));
      // Totals that came back to zero (every row taken out again) count as absent.
      const nonZero = (ref: (c: string) => string) => `NOT (${measures.map((c) => `${ref(c)} = 0`).join(' AND ')})`;
      const expectedSql = aggregate
        ? `SELECT ${cols
            .map((c) => (keySet.has(c) ? `u.${quoteIdent(c)}::${cmpType(c)}` : `coalesce(sum(u.${quoteIdent(c)}::numeric), 0)::${cmpType(c)}`))
            .join(', ')} FROM ${unnest} GROUP BY ${m.target.key.map((_, i) => i + 1).join(', ')} HAVING ${nonZero((c) => `coalesce(sum(u.${quoteIdent(c)}::numeric), 0)`)}`
        : `SELECT ${cols.map((c) => `u.${quoteIdent(c)}::${cmpType(c)}`).join(', ')} FROM ${unnest}`;
      const conditions =
        scope === null
          ? [`(${m.target.key.map(quoteIdent).join(', ')}) IN (SELECT ${m.target.key.map((k) => `u.${quoteIdent(k)}::${typeOf(k).type}`).join(', ')} FROM ${unnest})`]
          : scope.map(([c], i) => `${quoteIdent(c)} = $${cols.length + i + 1}::${typeOf(c).type}`);
      if (aggregate) conditions.push(nonZero(quoteIdent));
      const where = conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
      const actualSql = `SELECT ${cols.map((c) => `${quoteIdent(c)}::${cmpType(c)}`).join(', ')} FROM ${qualified(m.target.schema, m.target.table)} ${where}`;
      const params: unknown[] = [...cols.map((c) => expected.map((r) => r[c] ?? null)), ...(scope ?? []).map(([, v]) => v)];
      const res = await hq.query<{ missing: string; extra: string; target_rows: string }>(
        `WITH expected AS (${expectedSql}), actual AS (${actualSql})
         SELECT (SELECT count(*) FROM (SELECT * FROM expected EXCEPT ALL SELECT * FROM actual) x) AS missing,
                (SELECT count(*) FROM (SELECT * FROM actual EXCEPT ALL SELECT * FROM expected) y) AS extra,
                (SELECT count(*) FROM actual) AS target_rows`,
        params,
      );
      const r = res.rows[0]!;
      out.push({
        file: m.file,
        source: formatTable(m.source),
        target: formatTable(m.target),
        sourceRows: src.rows.length,
        targetRows: Number(r.target_rows),
        missing: Number(r.missing) + unassociated,
        extra: Number(r.extra),
      });
    }
    return out;
  } finally {
    await store.end().catch(() => undefined);
    await hq.end().catch(() => undefined);
  }
}

/**
 * The target rows that come from this store: the key columns a TRUNCATE of
 * the source would match (those holding the store code); null when no
 * column tells them apart (a table every store shares).
 */
export function truncateScope(m: CompiledMapping, ctx: MappingContext): [string, string][] | null {
  try {
    const wheres = m.mapTruncate(ctx).flatMap((op) => (op.kind === 'delete-where' ? [op.where] : []));
    return wheres.length > 0 ? wheres.flatMap((w) => Object.entries(w)) : null;
  } catch {
    return null;
  }
}

/**
 * Replaces the store codes in mapped rows by the HQ keys associated with
 * them (or, `branch-codes`, HQ keys by the store's codes; one look-up per
 * entity); rows with a code not associated yet are left out and counted
 * (they wait where they are, so the other side lacks them).
 */
export async function translateCodes(
  hq: pg.Client,
  storeCode: string,
  associates: boolean,
  written: readonly { readonly row: Readonly<Record<string, string | null>>; readonly assoc?: readonly { readonly column: string; readonly entity: string }[] }[],
  /** hq-keys: the rows hold the store's codes (up); branch-codes: they hold HQ keys, to become the store's codes (down). */
  into: 'hq-keys' | 'branch-codes' = 'hq-keys',
): Promise<{ rows: Record<string, string | null>[]; unassociated: number; kept: boolean[] }> {
  const keysOf = new Map<string, Map<string, string>>();
  const lookup = into === 'hq-keys' ? lookupHqKeys : lookupBranchCodes;
  for (const ref of associates ? (written[0]?.assoc ?? []) : []) {
    const codes = [...new Set(written.map((op) => op.row[ref.column]).filter((v): v is string => typeof v === 'string'))];
    keysOf.set(ref.column, await lookup(hq, storeCode, ref.entity, codes));
  }
  const rows: Record<string, string | null>[] = [];
  const kept: boolean[] = [];
  let unassociated = 0;
  for (const op of written) {
    const row = { ...op.row } as Record<string, string | null>;
    let ok = true;
    for (const [column, keys] of keysOf) {
      const v = row[column];
      if (typeof v !== 'string') continue;
      const k = keys.get(v);
      if (k === undefined) ok = false;
      else row[column] = k;
    }
    kept.push(ok);
    if (ok) rows.push(row);
    else unassociated++;
  }
  return { rows, unassociated, kept };
}

export function inStep(results: readonly TableComparison[]): boolean {
  return results.every((r) => r.missing === 0 && r.extra === 0);
}

