import type pg from 'pg';
import { formatTable, type TableId } from '../core/change.js';
import { quoteIdent } from '../db/connect.js';

/**
 * Branchline's association table at HQ (`branchline.associations`): per
 * store and entity, a store's code <-> HQ's key. One code has one HQ key and
 * one HQ key one code per store and entity, so both directions translate.
 * Every function takes the client it runs on, so the pipeline can use its
 * open batch transaction (allocations commit or vanish with the rows).
 */
export type AssociationOrigin = 'allocated' | 'manual' | 'import';

export interface Association {
  readonly storeCode: string;
  readonly entity: string;
  readonly branchCode: string;
  readonly hqKey: string;
  readonly origin: AssociationOrigin;
  readonly createdAt: Date;
  readonly createdBy: string | null;
}

/** The HQ keys of `codes` (those associated), store -> HQ. */
export function lookupHqKeys(db: pg.ClientBase, storeCode: string, entity: string, codes: readonly string[]): Promise<Map<string, string>> {
  return lookup(db, storeCode, entity, 'branch_code', codes);
}

/**
 * The store's codes of `hqKeys` (those associated), HQ -> store: what the
 * down channel writes at a store for a row that refers to an HQ key.
 */
export function lookupBranchCodes(db: pg.ClientBase, storeCode: string, entity: string, hqKeys: readonly string[]): Promise<Map<string, string>> {
  return lookup(db, storeCode, entity, 'hq_key', hqKeys);
}

/** Associations of one store and entity by one side, as side -> other side (both sides are unique). */
async function lookup(db: pg.ClientBase, storeCode: string, entity: string, by: 'branch_code' | 'hq_key', values: readonly string[]): Promise<Map<string, string>> {
  const other = by === 'branch_code' ? 'hq_key' : 'branch_code';
  const res = await db.query<{ k: string; v: string }>(
    `SELECT ${by} AS k, ${other} AS v FROM branchline.associations WHERE store_code = $1 AND entity = $2 AND ${by} = ANY($3::text[])`,
    [storeCode, entity, values],
  );
  return new Map(res.rows.map((r) => [r.k, r.v]));
}

/**
 * New HQ keys from `sequence` for codes not associated yet, recorded as
 * `allocated`. A code associated meanwhile by someone else keeps that
 * association (and is returned with it).
 */
export async function allocateHqKeys(db: pg.ClientBase, storeCode: string, entity: string, sequence: TableId, codes: readonly string[]): Promise<Map<string, string>> {
  const seq = `${quoteIdent(sequence.schema)}.${quoteIdent(sequence.table)}`;
  const out = new Map<string, string>();
  let rest = [...codes];
  // A key a person associated by hand may come out of the sequence later: that
  // allocation is skipped (any conflict does nothing) and the code tries again.
  for (let attempt = 0; rest.length > 0 && attempt < 5; attempt++) {
    const res = await db.query<{ branch_code: string; hq_key: string }>(
      `INSERT INTO branchline.associations AS a (store_code, entity, branch_code, hq_key, origin, created_by)
       SELECT $1, $2, c, nextval($4::regclass)::text, 'allocated', 'branchline'
         FROM unnest($3::text[]) WITH ORDINALITY AS u(c, n) ORDER BY n
       ON CONFLICT DO NOTHING
       RETURNING branch_code, hq_key`,
      [storeCode, entity, rest, seq],
    );
    for (const r of res.rows) out.set(r.branch_code, r.hq_key);
    rest = rest.filter((c) => !out.has(c));
    if (rest.length === 0) break;
    // Associated meanwhile by someone else: that association stands.
    for (const [c, k] of await lookupHqKeys(db, storeCode, entity, rest)) out.set(c, k);
    rest = rest.filter((c) => !out.has(c));
  }
  return out;
}

export interface NewAssociation {
  readonly storeCode: string;
  readonly entity: string;
  readonly branchCode: string;
  readonly hqKey: string;
}

export type InsertOutcome =
  | { readonly kind: 'created' }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'code-taken'; readonly hqKey: string }
  | { readonly kind: 'key-taken'; readonly branchCode: string };

/**
 * Records associations set by a person. Idempotent: the same association
 * again is `unchanged`; a code already associated with another key, or a key
 * already associated with another code of that store, is refused (changing
 * one would leave HQ rows pointing at the old key).
 */
export async function insertAssociations(
  db: pg.ClientBase,
  rows: readonly NewAssociation[],
  origin: 'manual' | 'import',
  createdBy: string,
): Promise<InsertOutcome[]> {
  const out: InsertOutcome[] = [];
  for (const r of rows) {
    const existing = await db.query<{ branch_code: string; hq_key: string }>(
      `SELECT branch_code, hq_key FROM branchline.associations
        WHERE store_code = $1 AND entity = $2 AND (branch_code = $3 OR hq_key = $4)`,
      [r.storeCode, r.entity, r.branchCode, r.hqKey],
    );
    const same = existing.rows.find((e) => e.branch_code === r.branchCode);
    if (same) {
      out.push(same.hq_key === r.hqKey ? { kind: 'unchanged' } : { kind: 'code-taken', hqKey: same.hq_key });
      continue;
    }
    const other = existing.rows[0];
    if (other) {
      out.push({ kind: 'key-taken', branchCode: other.branch_code });
      continue;
    }
    await db.query(
      `INSERT INTO branchline.associations (store_code, entity, branch_code, hq_key, origin, created_by) VALUES ($1, $2, $3, $4, $5, $6)`,
      [r.storeCode, r.entity, r.branchCode, r.hqKey, origin, createdBy],
    );
    out.push({ kind: 'created' });
  }
  return out;
}

/** Which of `keys` exist in `table.column` at HQ (for a manual entity's `references`). */
export async function existingKeys(db: pg.ClientBase, table: TableId, column: string, keys: readonly string[]): Promise<Set<string>> {
  const res = await db.query<{ k: string }>(
    `SELECT t.${quoteIdent(column)}::text AS k FROM ${quoteIdent(table.schema)}.${quoteIdent(table.table)} AS t
      WHERE t.${quoteIdent(column)}::text = ANY($1::text[])`,
    [keys],
  );
  return new Set(res.rows.map((r) => r.k));
}

export function describeReference(table: TableId, column: string): string {
  return `${formatTable(table)}.${column}`;
}

/** Associations, optionally of one store and one entity, in store, entity, code order. */
export async function listAssociations(db: pg.ClientBase, filter: { storeCode?: string; entity?: string }): Promise<Association[]> {
  const res = await db.query<{
    store_code: string;
    entity: string;
    branch_code: string;
    hq_key: string;
    origin: AssociationOrigin;
    created_at: Date;
    created_by: string | null;
  }>(
    `SELECT store_code, entity, branch_code, hq_key, origin, created_at, created_by FROM branchline.associations
      WHERE ($1::text IS NULL OR store_code = $1) AND ($2::text IS NULL OR entity = $2)
      ORDER BY store_code, entity, branch_code`,
    [filter.storeCode ?? null, filter.entity ?? null],
  );
  return res.rows.map((r) => ({
    storeCode: r.store_code,
    entity: r.entity,
    branchCode: r.branch_code,
    hqKey: r.hq_key,
    origin: r.origin,
    createdAt: r.created_at,
    createdBy: r.created_by,
  }));
}

/** Codes that parked changes wait for: seen at a store, not associated yet. */
export interface MissingAssociation {
  readonly storeCode: string;
  readonly entity: string;
  readonly branchCode: string;
  /** Parked changes waiting for it. */
  readonly waiting: number;
  readonly firstSeen: Date;
}

export async function listMissing(db: pg.ClientBase, filter: { storeCode?: string; entity?: string }): Promise<MissingAssociation[]> {
  const res = await db.query<{ store_code: string; entity: string; branch_code: string; waiting: string; first_seen: Date }>(
    `SELECT p.store_code, p.entity, p.branch_code, count(*) AS waiting, min(p.parked_at) AS first_seen
       FROM branchline.parked p
      WHERE p.status = 'parked' AND p.entity IS NOT NULL
        AND ($1::text IS NULL OR p.store_code = $1) AND ($2::text IS NULL OR p.entity = $2)
        AND NOT EXISTS (SELECT 1 FROM branchline.associations a
                         WHERE a.store_code = p.store_code AND a.entity = p.entity AND a.branch_code = p.branch_code)
      GROUP BY p.store_code, p.entity, p.branch_code
      ORDER BY p.store_code, p.entity, p.branch_code`,
    [filter.storeCode ?? null, filter.entity ?? null],
  );
  return res.rows.map((r) => ({ storeCode: r.store_code, entity: r.entity, branchCode: r.branch_code, waiting: Number(r.waiting), firstSeen: r.first_seen }));
}
