import type pg from 'pg';
import { table } from '../cli/output.js';
import type { Config } from '../config/load.js';
import type { Logger } from '../core/logger.js';
import type { RetailWorkload } from './workload.js';
import { addDecimal, formatDecimal, parseDecimal } from '../mapping/expr/decimal.js';
import { SettlementService } from '../settlement/service.js';
import { timeUntil } from './wait.js';

const say = (s: string) => process.stdout.write(s + '\n');

/**
 * Pre-settlement checks in the demo: a store issues receivables, settles one
 * and cancels another a moment before HQ settles them all, and HQ asks the
 * store first (as `branchline settlement-check` and POST /settlement-checks
 * do): the answers come from the store's rows, not HQ's copies.
 */
export async function settlementStory(options: { config: Config; storeCode: string; store: pg.Pool; hq: pg.Pool; workload: RetailWorkload; logger: Logger }): Promise<void> {
  const { config, storeCode, store, hq, workload } = options;
  say(`\nbefore HQ settles receivables issued at ${storeCode}, it asks ${storeCode}:`);
  const ids = [await workload.receivable(), await workload.receivable(), await workload.receivable(), await workload.receivable()];
  const ms = await timeUntil('the receivables at HQ', async () => {
    const r = await hq.query<{ n: number }>(`SELECT count(*)::int AS n FROM store_receivable WHERE store_code = $1 AND receivable_id = ANY($2::bigint[])`, [storeCode, ids]);
    return r.rows[0]!.n === ids.length;
  });
  const held = await hq.query<{ id: string; amount: string }>(
    `SELECT receivable_id::text AS id, amount::text FROM store_receivable WHERE store_code = $1 AND receivable_id = ANY($2::bigint[]) ORDER BY array_position($2::bigint[], receivable_id)`,
    [storeCode, ids],
  );
  say(`  ${storeCode} issued receivables ${ids.join(', ')}; HQ had them in ${ms} ms`);
  // The store acts first; HQ asks before those changes could have reached it.
  await store.query(`UPDATE receivable SET status = 'settled', settled_on = CURRENT_DATE WHERE id = $1`, [ids[1]]);
  await store.query(`UPDATE receivable SET status = 'cancelled' WHERE id = $1`, [ids[2]]);
  say(`  meanwhile the customer paid ${ids[1]} at the store, and the store cancelled ${ids[2]}; HQ is about to settle all four, the last 10.00 too much`);
  const service = new SettlementService({ config, logger: options.logger });
  try {
    const asked = held.rows.map((r, i) => ({ store: storeCode, ref: r.id, amount: i === 3 ? formatDecimal(addDecimal(parseDecimal(r.amount)!, parseDecimal('10.00')!)) : r.amount }));
    const answers = await service.check('demo', asked, 'store');
    say(`  $ branchline settlement-check --store ${storeCode} ${asked.map((a) => `--ref ${a.ref} --amount ${a.amount}`).join(' ')}`);
    const lines = table(
      ['store', 'ref', 'amount', 'answer', 'there'],
      answers.map((a) => [a.store, a.ref, a.amount, a.status === 'unavailable' ? `unavailable (${a.reason})` : a.status, a.origin_amount ?? '-']),
    );
    for (const l of lines.trimEnd().split('\n')) say(`  ${l}`);
    say('  every answer is recorded at HQ in branchline.settlement_checks (who asked, when, what)');
  } finally {
    await service.close();
  }
}
