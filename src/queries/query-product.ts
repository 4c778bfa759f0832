import type { Config, StoreConfig } from '../config/load.js';
import type { Queryable } from '../catalog/pg-catalog.js';
import { BranchlineError } from '../core/errors.js';
import { qualified, quoteIdent } from '../db/connect.js';
import { freshnessOf, freshnessSql, type Freshness, type FreshnessRow } from './freshness.js';
import type { HqReader } from './hq-reader.js';
import type { CheckedQuery, QueryName } from './query-check.js';

/** What `GET /stock/:product`, `GET /prices/:product` and `branchline stock|prices --json` answer (docs/queries.md). */
export interface QueryAnswer {
  readonly product: string;
  readonly query: QueryName;
  /** The configured HQ table. */
  readonly table: string;
  readonly stores: readonly StoreAnswer[];
  /** HQ's clock when it answered (ISO). */
  readonly answered_at: string;
}

export interface StoreAnswer {
  readonly store: string;
  readonly name: string;
  /** Each configured column in PostgreSQL's text form (numbers exactly as PostgreSQL prints them); all null when not found. */
  readonly values: Readonly<Record<string, string | null>>;
  /** Whether HQ has a row of this product for this store. */
  readonly found: boolean;
  readonly freshness: Freshness;
}

/** Longer product values are refused (no product code is this long). */
export const MAX_PRODUCT_LENGTH = 1_000;

function badParameter(message: string, hint: string): BranchlineError {
  return new BranchlineError({ code: 'BL-H002', message, hint });
}

const shown = (v: string) => JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);

/** The stores asked for: every configured store, or those named (each must be configured: BL-H002 otherwise). */
export function queryStores(config: Config, codes: readonly string[] | undefined): StoreConfig[] {
  if (!codes || codes.length === 0) return [...config.stores];
  const known = config.stores.map((s) => s.code);
  const unknown = codes.filter((c) => !known.includes(c));
  if (unknown.length > 0)
    throw badParameter(
      `store ${unknown.map(shown).join(', ')} is not configured, so HQ cannot answer for it.`,
      `Ask for one of the configured stores: ${known.join(', ')}.`,
    );
  return config.stores.filter((s) => codes.includes(s.code));
}

/** The one statement: every asked store (in order), its row of the product if HQ has one, and its freshness. */
export function productSql(query: CheckedQuery): string {
  const f = freshnessSql(query.direction);
  const values = query.columns.map((c, i) => `q.${quoteIdent(c.name)}::text AS v${i}`).join(', ');
  // $1 and $3 take their types from the columns they are compared with (no length limit applied: a long value never
  // matches a truncated one); $2 keeps the asked order.
  return `WITH s AS (SELECT u.code, u.ord FROM unnest($2::text[]) WITH ORDINALITY AS u(code, ord)),
     t AS (SELECT q.${quoteIdent(query.store.name)}::text AS code, ${values}
             FROM ${qualified(query.table.schema, query.table.table)} q
            WHERE q.${quoteIdent(query.product.name)} = $1 AND q.${quoteIdent(query.store.name)} = ANY($3))
SELECT s.code, t.code IS NOT NULL AS found, ${query.columns.map((_, i) => `t.v${i}`).join(', ')},
  ${f.columns}, statement_timestamp() AS f_now
  FROM s LEFT JOIN t ON t.code = s.code
  ${f.joins}
 ORDER BY s.ord`;
}

type ProductRow = FreshnessRow & { code: string; found: boolean; f_now: Date } & Record<string, unknown>;

export interface ProductQuery {
  readonly hq: HqReader;
  readonly query: CheckedQuery;
  /** As the caller wrote it (the route parameter, the CLI argument). */
  readonly product: string;
  readonly stores: readonly StoreConfig[];
  /** The configured table name, as answered. */
  readonly tableName: string;
}

/** One product at every asked store, with each store's freshness; a product that does not fit the column's type is BL-H002. */
export async function queryProduct(p: ProductQuery): Promise<QueryAnswer> {
  const { query, product } = p;
  if (product.length === 0) throw badParameter('the product is empty.', `Give a value of ${p.tableName}.${query.product.name}.`);
  if (product.includes('\0')) throw badParameter(`the product ${shown(product)} contains a NUL character, which no product value can hold.`, `Give a value of ${p.tableName}.${query.product.name}.`);
  if (product.length > MAX_PRODUCT_LENGTH)
    throw badParameter(`the product is ${product.length} characters long; at most ${MAX_PRODUCT_LENGTH} are taken.`, `Give a value of ${p.tableName}.${query.product.name}.`);
  const codes = p.stores.map((s) => s.code);
  const rows = await p.hq
    .read((db: Queryable) => db.query<ProductRow>(productSql(query), [product, codes, codes]))
    .catch((e: unknown) => {
      const code = (e as { code?: unknown })?.code;
      // Class 22 (data exception): the value does not fit the product column's type.
      if (typeof code === 'string' && code.startsWith('22'))
        throw badParameter(
          `the product ${shown(product)} is not a valid ${query.product.type} (the type of ${p.tableName}.${query.product.name}): ${(e as Error).message}.`,
          `Give a value of that type, e.g. the product's ${query.product.name} as HQ stores it.`,
        );
      throw e;
    });
  const now = rows.rows[0]?.f_now ?? new Date();
  const byCode = new Map(rows.rows.map((r) => [r.code, r]));
  return {
    product,
    query: query.name,
    table: p.tableName,
    stores: p.stores.map((s) => {
      const r = byCode.get(s.code)!;
      const values: Record<string, string | null> = {};
      query.columns.forEach((c, i) => (values[c.name] = (r[`v${i}`] as string | null) ?? null));
      return { store: s.code, name: s.name, values, found: r.found, freshness: freshnessOf(query.direction, r, now) };
    }),
    answered_at: now.toISOString(),
  };
}
