import { HQ_DB, type BenchTopology } from './topology.js';

interface Fingerprint {
  sales: string;
  sales_total: string;
  lines: string;
  lines_amount: string;
  lines_qty: string;
}

const STORE_SQL = `SELECT (SELECT count(*) FROM sale)::text AS sales, (SELECT coalesce(sum(total), 0) FROM sale)::text AS sales_total,
                          (SELECT count(*) FROM sale_line)::text AS lines, (SELECT coalesce(sum(amount), 0) FROM sale_line)::text AS lines_amount,
                          (SELECT coalesce(sum(quantity), 0) FROM sale_line)::text AS lines_qty`;

const HQ_SQL = `SELECT (SELECT count(*) FROM store_sale WHERE store_code = $1)::text AS sales,
                       (SELECT coalesce(sum(total), 0) FROM store_sale WHERE store_code = $1)::text AS sales_total,
                       (SELECT count(*) FROM store_sale_line WHERE store_code = $1)::text AS lines,
                       (SELECT coalesce(sum(amount), 0) FROM store_sale_line WHERE store_code = $1)::text AS lines_amount,
                       (SELECT coalesce(sum(quantity), 0) FROM store_sale_line WHERE store_code = $1)::text AS lines_qty`;

const show = (f: Fingerprint | undefined) =>
  f ? `${f.sales} sales (total ${f.sales_total}), ${f.lines} lines (amount ${f.lines_amount}, quantity ${f.lines_qty})` : 'nothing';

/**
 * Checks that each store's sales arrived exactly once with the same values
 * at both HQ sides: row counts and sums of the money and quantity columns.
 * Returns one sentence per mismatch (empty when all agree).
 */
export async function verifyHq(topology: BenchTopology): Promise<string[]> {
  const problems: string[] = [];
  for (const s of topology.stores) {
    const [store] = await topology.storesServer.query<Fingerprint & Record<string, unknown>>(s.db, STORE_SQL);
    const [native] = await topology.hqServer.query<Fingerprint & Record<string, unknown>>(s.nativeDb, STORE_SQL);
    const [branchline] = await topology.hqServer.query<Fingerprint & Record<string, unknown>>(HQ_DB, HQ_SQL, [s.code]);
    const want = show(store);
    if (show(native) !== want) problems.push(`${s.code}: the store holds ${want}; native HQ holds ${show(native)}.`);
    if (show(branchline) !== want) problems.push(`${s.code}: the store holds ${want}; branchline HQ holds ${show(branchline)}.`);
  }
  return problems;
}
