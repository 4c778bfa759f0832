import type pg from 'pg';
import { BranchlineError } from '../core/errors.js';
import { timeUntil } from './wait.js';

const say = (s: string) => process.stdout.write(s + '\n');

export interface DemoStore {
  readonly code: string;
  readonly pool: pg.Pool;
}

/**
 * HQ's side of the demo while the stores sell: HQ changes the catalogue
 * price of a few products and gives one store a price of its own; each store
 * gets what is meant for it, and the time it took is shown.
 */
export async function priceStory(options: { hq: pg.Pool; stores: readonly DemoStore[] }): Promise<void> {
  const { hq, stores } = options;
  say('\nmaster data from HQ down to the stores:');
  const changed = await hq.query<{ id: number; description: string; price: string }>(
    `UPDATE product SET price = round(price * 1.10, 1) - 0.01, updated_at = now()
      WHERE id IN (SELECT id FROM product ORDER BY id LIMIT 5)
      RETURNING id, description, price::text`,
  );
  const ids = changed.rows.map((r) => r.id);
  const expected = changed.rows
    .sort((a, b) => a.id - b.id)
    .map((r) => `${r.id}:${r.price}`)
    .join(',');
  const times = await Promise.all(
    stores.map((s) =>
      timeUntil(`the new prices at ${s.code}`, async () => {
        const r = await s.pool.query<{ t: string | null }>(`SELECT string_agg(id || ':' || price, ',' ORDER BY id) AS t FROM product WHERE id = ANY($1::int[])`, [ids]);
        return r.rows[0]?.t === expected;
      }),
    ),
  );
  say(`  HQ raised ${changed.rowCount} catalogue prices by 10% (${changed.rows[0]!.description}: ${changed.rows[0]!.price}, ...): ${stores.map((s, i) => `${s.code} had them in ${times[i]} ms`).join(', ')}`);

  const own = stores[0]!;
  const local = await hq.query<{ product_id: number; price: string }>(
    `INSERT INTO store_price (store_code, product_id, price)
     SELECT $1, id, round(price * 0.85, 1) - 0.01 FROM product ORDER BY id DESC LIMIT 1
     RETURNING product_id, price::text`,
    [own.code],
  );
  const lp = local.rows[0]!;
  const ms = await timeUntil(`${own.code}'s own price`, async () => {
    const r = await own.pool.query<{ price: string }>(`SELECT price::text FROM shelf_price WHERE id = $1`, [lp.product_id]);
    return r.rows[0]?.price === lp.price;
  });
  const others = await Promise.all(
    stores.slice(1).map(async (s) => (await s.pool.query(`SELECT 1 FROM local_price WHERE product_id = $1`, [lp.product_id])).rowCount ?? 0),
  );
  say(
    `  HQ gave ${own.code} its own price for product ${lp.product_id} (${lp.price}, store_price -> local_price, routed by store_code): at ${own.code}'s tills in ${ms} ms; ` +
      `${others.every((n) => n === 0) ? `the other stores did not get it` : 'ANOTHER STORE GOT IT'}`,
  );
  if (others.some((n) => n > 0))
    throw new BranchlineError({ code: 'BL-U002', message: `a price meant for ${own.code} reached another store.`, hint: 'See the agent log named above.' });
}
