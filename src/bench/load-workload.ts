/**
 * The initial-load workload, shared by `npm run bench -- --scenario
 * initial-load` and test/initial-load.pg.test.ts: a realistic product row
 * (code, description, price numeric(12,2) and a few more columns), the same
 * table at HQ and at the store, a down mapping that copies it, and a digest
 * of the whole table to compare both sides.
 */

export const PRODUCT_TABLE_SQL = `CREATE TABLE product (
    id int PRIMARY KEY,
    code text NOT NULL UNIQUE,
    description text NOT NULL,
    price numeric(12,2) NOT NULL,
    cost numeric(12,2),
    vat_rate numeric(4,2) NOT NULL,
    unit text NOT NULL,
    active boolean NOT NULL,
    listed_on date NOT NULL)`;

/** Products 1..n (every 7th description has a quote, a backslash and a tab: COPY escapes). */
export function productRowsSql(n: number): string {
  return `INSERT INTO product
  SELECT g, 'P' || lpad(g::text, 8, '0'), 'Product ' || g || CASE WHEN g % 7 = 0 THEN E' "special"\\\\ and\\ttab' ELSE '' END,
         (g % 5000) / 100.0 + 0.99, CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 3000) / 100.0 END,
         CASE WHEN g % 3 = 0 THEN 7.00 ELSE 19.00 END, CASE WHEN g % 4 = 0 THEN 'kg' ELSE 'pc' END, g % 13 <> 0,
         date '2020-01-01' + (g % 1500)
    FROM generate_series(1, ${n}) g`;
}

export const PRODUCT_DOWN_MAPPING = `direction: down
source: product
target: product
columns:
  id: id
  code: code
  description: description
  price: price
  cost: cost
  vat_rate: vat_rate
  unit: unit
  active: active
  listed_on: listed_on
`;

/** Count and md5 of every product row in key order: equal on both sides means equal tables. */
export const PRODUCT_DIGEST_SQL = `SELECT count(*)::int AS n, md5(string_agg(concat_ws('|', id, code, description, price, coalesce(cost::text, 'null'), vat_rate, unit, active, listed_on), E'\\n' ORDER BY id)) AS md5 FROM product`;
