import type { Config } from '../config/load.js';
import { formatAnswer } from '../cli/commands/queries.js';
import { poolHqReader } from '../queries/hq-reader.js';
import { productQueries } from '../queries/query-routes.js';
import type { DemoStore } from './master-data-story.js';
import { timeUntil } from './wait.js';

const say = (s: string) => process.stdout.write(s + '\n');

/**
 * The cross-store queries in the demo: one store counts a product, and HQ
 * answers where it is (and what it costs at each store) from what it holds,
 * as `branchline stock` and `GET /stock/:product` do.
 */
export async function queriesStory(options: { config: Config; stores: readonly DemoStore[] }): Promise<void> {
  const { config, stores } = options;
  const counter = stores[0]!;
  say(`\nwhere is product 300? (answered by HQ from what the stores sent it)`);
  await counter.pool.query(`INSERT INTO stock (product_id, quantity) VALUES (300, 12.5), (1, 40) ON CONFLICT (product_id) DO UPDATE SET quantity = EXCLUDED.quantity, updated_at = now()`);
  const hq = poolHqReader(config.hq.readUrl, { applicationName: 'branchline-demo', max: 1 });
  try {
    const queries = productQueries({ config, hq });
    const ms = await timeUntil(`${counter.code}'s stock at HQ`, async () => (await queries.answer('stock', '300')).stores.some((s) => s.store === counter.code && s.found));
    say(`  ${counter.code} counted 12.5 of product 300; HQ had it in ${ms} ms`);
    say('  $ branchline stock 300');
    for (const l of formatAnswer(await queries.answer('stock', '300')).trimEnd().split('\n')) say(`  ${l}`);
    say('  $ branchline prices 300');
    for (const l of formatAnswer(await queries.answer('prices', '300')).trimEnd().split('\n')) say(`  ${l}`);
  } finally {
    await hq.close().catch(() => undefined);
  }
}
