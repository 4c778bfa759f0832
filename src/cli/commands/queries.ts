import { loadConfig } from '../../config/load.js';
import { isBranchlineError } from '../../core/errors.js';
import { poolHqReader } from '../../queries/hq-reader.js';
import type { Freshness } from '../../queries/freshness.js';
import type { QueryName } from '../../queries/query-check.js';
import type { QueryAnswer } from '../../queries/query-product.js';
import { productQueries } from '../../queries/query-routes.js';
import { EXIT, formatAgo, printError, table } from '../output.js';
import type { GlobalArgs } from './basic.js';
import { out } from './hq-commands.js';

/**
 * `stock <product>` and `prices <product>`: the product at every store, as
 * HQ has it, with how fresh each store's data is (docs/queries.md). Read at
 * HQ through `hq.read_url`, in a read-only transaction.
 */

export type QueryArgs = GlobalArgs & { product: string; store?: string[]; json: boolean };

/** `0.4s`, `2m 5s`, `not running, as of 3m ago`. */
export function formatFreshness(f: Freshness, answeredAt: string): string {
  if (f.lag_seconds !== null) {
    const s = f.lag_seconds;
    if (s < 60) return `${s.toFixed(1)}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  }
  return `${f.state}, as of ${f.as_of ? formatAgo(f.as_of, Date.parse(answeredAt)) : 'unknown'}`;
}

export function formatAnswer(a: QueryAnswer): string {
  const columns = Object.keys(a.stores[0]?.values ?? {});
  const rows = a.stores.map((s) => [s.store, s.name, ...columns.map((c) => (s.found ? (s.values[c] ?? 'null') : '-')), formatFreshness(s.freshness, a.answered_at)]);
  const missing = a.stores.filter((s) => !s.found).length;
  const note = missing > 0 ? `\n-: HQ has no row of product ${a.product} for ${missing === 1 ? 'that store' : 'those stores'} (${a.table}).\n` : '';
  return table(['STORE', 'NAME', ...columns.map((c) => c.toUpperCase()), 'LAG'], rows) + note;
}

async function queryCommand(name: QueryName, args: QueryArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const hq = poolHqReader(config.hq.readUrl, { applicationName: `branchline-${name}`, max: 1 });
  try {
    const answer = await productQueries({ config, hq }).answer(name, String(args.product), args.store);
    out(args.json ? `${JSON.stringify(answer, null, 2)}\n` : formatAnswer(answer));
    return EXIT.ok;
  } catch (e) {
    // A product or store that is not well formed is the caller's mistake, as on the HTTP route.
    if (isBranchlineError(e) && e.code === 'BL-H002') {
      printError(e);
      return EXIT.usage;
    }
    throw e;
  } finally {
    await hq.close().catch(() => undefined);
  }
}

export const stockCommand = (args: QueryArgs) => queryCommand('stock', args);
export const pricesCommand = (args: QueryArgs) => queryCommand('prices', args);
