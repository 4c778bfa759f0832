import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../src/core/logger.js';
import { runInitialLoadUp } from '../src/load/initial-load-up.js';
import { runReconcile, type TableReconciliation } from '../src/reconcile/reconcile.js';
import { runCli } from './support/agent-process.js';
import { byTarget, reconcileWorld, type ReconcileWorld } from './support/reconcile-world.js';
import type { World } from './support/world.js';

/**
 * `branchline reconcile` for the mappings the row comparison cannot take
 * as they are: HQ's daily totals (two aggregate mappings adding to one
 * table, one with a filter) against the sums of the store's items; a down
 * table whose key is an `associate(...)` column (HQ's ids become the
 * store's codes); and a down table with `effective_at`, whose rows due
 * later are left out of the comparison. Everything is loaded through the
 * normal path first (equal), then changed behind the pipelines' backs.
 */
const HQ_SQL = `
  CREATE TABLE daily_sales (store_code text NOT NULL, day date NOT NULL, product_id int NOT NULL,
    qty numeric(12,3) NOT NULL DEFAULT 0, amount numeric(12,2) NOT NULL DEFAULT 0, lines int NOT NULL DEFAULT 0,
    PRIMARY KEY (store_code, day, product_id));
  CREATE TABLE cost_center (id int PRIMARY KEY, name text NOT NULL);
  INSERT INTO cost_center SELECT g, 'cc ' || g FROM generate_series(100, 119) g;
  CREATE TABLE price (product_id int PRIMARY KEY, price numeric(12,2) NOT NULL, valid_from timestamptz);
  INSERT INTO price SELECT g, g + 0.5, NULL FROM generate_series(1, 50) g;
  -- another store's totals: never reported, never touched
  INSERT INTO daily_sales VALUES ('S9', DATE '2026-01-01', 1, 5, 5, 1);`;
const STORE_SQL = `
  CREATE TABLE sale_item (id int PRIMARY KEY, day date NOT NULL, product_id int NOT NULL, qty numeric(12,3) NOT NULL, amount numeric(12,2) NOT NULL, cancelled boolean NOT NULL DEFAULT false);
  ALTER TABLE sale_item REPLICA IDENTITY FULL;
  INSERT INTO sale_item SELECT g, DATE '2026-01-01' + (g % 5), g % 20, (g % 7) + 0.125, (g % 11) + 0.10, g % 13 = 0 FROM generate_series(1, 3000) g;
  CREATE TABLE return_item (id int PRIMARY KEY, day date NOT NULL, product_id int NOT NULL, qty numeric(12,3) NOT NULL, amount numeric(12,2) NOT NULL);
  ALTER TABLE return_item REPLICA IDENTITY FULL;
  INSERT INTO return_item SELECT g, DATE '2026-01-01' + (g % 5), g % 23, -1, -2.00 FROM generate_series(1, 200) g;
  CREATE TABLE cost_center (code text PRIMARY KEY, name text NOT NULL);
  CREATE TABLE price (product_id int PRIMARY KEY, price numeric(12,2) NOT NULL);`;
const MAPPINGS: Record<string, string> = {
  'entities.yml': `cost_center:
  kind: manual
`,
  'daily-sales.yml': `source: sale_item
target: daily_sales
filter: not cancelled
columns:
  store_code: store.code
  day: day
  product_id: product_id
  qty: sum(qty)
  amount: sum(amount)
  lines: count()
`,
  // Returns add to the same totals (negative quantities), without a line count.
  'daily-returns.yml': `source: return_item
target: daily_sales
columns:
  store_code: store.code
  day: day
  product_id: product_id
  qty: sum(qty)
  amount: sum(amount)
`,
  'cost-center-down.yml': `direction: down
source: cost_center
target: cost_center
columns:
  code: associate(cost_center, id)
  name: name
`,
  'price-down.yml': `direction: down
source: price
target: price
effective_at: valid_from
columns:
  product_id: product_id
  price: price
`,
};

const kinds = (t: TableReconciliation) => ({ missing: t.missing, different: t.different, extra: t.extra, unassociated: t.unassociated });

describe('reconcile: aggregate totals, associated down keys, scheduled rows', { timeout: 180_000 }, () => {
  let env: ReconcileWorld;
  let world: World;
  const store = <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => world.stores[0]!.server.query(world.stores[0]!.db, sql, params) as Promise<R[]>;
  const run = async (extra: { fix?: boolean; tables?: string[] } = {}) => {
    const config = await world.config();
    return runReconcile({ config, store: config.stores[0]!, logger: silentLogger(), ...extra });
  };

  before(async () => {
    env = await reconcileWorld({
      name: 'reconcile-mapped',
      hqSql: HQ_SQL,
      storeSql: STORE_SQL,
      mappings: MAPPINGS,
      // S1 names 18 of HQ's 20 cost centers; 118 and 119 have no code at S1.
      before: (w) =>
        w.hqQuery(
          `INSERT INTO branchline.associations (store_code, entity, branch_code, hq_key, origin, created_by)
           SELECT 'S1', 'cost_center', 'CC-' || g, g::text, 'manual', 'test' FROM generate_series(100, 117) g`,
        ).then(() => undefined),
    });
    world = env.world;
  });
  after(async () => env?.dispose());

  it('what the normal path loaded is equal; HQ rows without a code at the store are counted', async () => {
    const r = await run();
    const totals = byTarget(r, 'public.daily_sales');
    assert.equal(totals.skipped, null);
    assert.equal(totals.method, 'mapped');
    assert.deepEqual(totals.mapping.split(', ').sort(), ['daily-returns.yml', 'daily-sales.yml']);
    assert.equal(totals.sourceRows, 3200, 'both sources read');
    // 5 days x 20 products from the items, plus returns of products 20..22: the store's totals, not S9's.
    const hqTotals = await world.hqQuery<{ n: number }>(`SELECT count(*)::int AS n FROM daily_sales WHERE store_code = 'S1'`);
    assert.equal(totals.targetRows, hqTotals[0]!.n);
    assert.ok(totals.targetRows > 100, `totals of S1: ${totals.targetRows}`);
    assert.deepEqual(kinds(totals), { missing: [], different: [], extra: [], unassociated: 0 });
    const cc = byTarget(r, 'public.cost_center');
    assert.equal(cc.direction, 'down');
    assert.deepEqual(kinds(cc), { missing: [], different: [], extra: [], unassociated: 2 });
    assert.equal(cc.targetRows, 18);
    const price = byTarget(r, 'public.price');
    assert.deepEqual(kinds(price), { missing: [], different: [], extra: [], unassociated: 0 });
    assert.equal(price.held, 0);
    assert.equal(r.differences, 2);
  });

  it('reports the totals, codes and due rows changed behind the pipelines, and --fix repairs all but totals', async () => {
    const key = await world.hqQuery<{ day: string; product_id: number }>(
      `SELECT day::text AS day, product_id FROM daily_sales WHERE store_code = 'S1' ORDER BY day, product_id LIMIT 2`,
    );
    const [k1, k2] = key as [{ day: string; product_id: number }, { day: string; product_id: number }];
    // Totals: one off by one unit, one gone, one HQ has that no item adds to, one zero row (allowed to stay).
    await world.hqQuery(`UPDATE daily_sales SET qty = qty + 1 WHERE store_code = 'S1' AND day = $1 AND product_id = $2`, [k1.day, k1.product_id]);
    await world.hqQuery(`DELETE FROM daily_sales WHERE store_code = 'S1' AND day = $1 AND product_id = $2`, [k2.day, k2.product_id]);
    await world.hqQuery(`INSERT INTO daily_sales VALUES ('S1', DATE '2026-01-01', 999, 1, 1, 1), ('S1', DATE '2026-01-01', 998, 0, 0, 0)`);
    // Cost centers: HQ renames one; the store holds a code HQ never sent.
    await world.hqQuery(`UPDATE cost_center SET name = 'renamed' WHERE id = 105`);
    await store(`INSERT INTO cost_center VALUES ('CC-XX', 'local')`);
    // Prices: one changes now (due), one changes tomorrow and one is new tomorrow (held, whatever the store holds).
    await world.hqQuery(`UPDATE price SET price = 99.99 WHERE product_id = 8`);
    await world.hqQuery(`UPDATE price SET price = 77.77, valid_from = now() + interval '1 day' WHERE product_id = 7`);
    await world.hqQuery(`INSERT INTO price VALUES (51, 1.00, now() + interval '1 day')`);

    const found = await run();
    const totals = byTarget(found, 'public.daily_sales');
    assert.deepEqual(kinds(totals), {
      missing: [['S1', k2.day, String(k2.product_id)]],
      different: [['S1', k1.day, String(k1.product_id)]],
      extra: [['S1', '2026-01-01', '999']],
      unassociated: 0,
    });
    const cc = byTarget(found, 'public.cost_center');
    assert.deepEqual(kinds(cc), { missing: [], different: [['CC-105']], extra: [['CC-XX']], unassociated: 2 });
    const price = byTarget(found, 'public.price');
    assert.deepEqual(kinds(price), { missing: [], different: [['8']], extra: [], unassociated: 0 });
    assert.equal(price.held, 2, 'products 7 and 51 take effect tomorrow');
    assert.equal(found.differences, 3 + 4 + 1);

    const before = await world.hqQuery(`SELECT * FROM daily_sales ORDER BY 1, 2, 3`);
    const fixed = await run({ fix: true });
    const ft = byTarget(fixed, 'public.daily_sales');
    assert.match(ft.notFixed ?? '', /not rewritten by --fix/);
    assert.equal(ft.resent + ft.removed, 0);
    assert.deepEqual(await world.hqQuery(`SELECT * FROM daily_sales ORDER BY 1, 2, 3`), before, 'totals left as they are');
    assert.equal(byTarget(fixed, 'public.cost_center').removed, 1);
    assert.deepEqual(await store(`SELECT code, name FROM cost_center WHERE code IN ('CC-105', 'CC-XX')`), [{ code: 'CC-105', name: 'renamed' }]);
    // The two without a code went through the sink and wait at the store for their association, as in the stream.
    const parked = await store<{ branch_code: string }>(`SELECT branch_code FROM branchline.parked WHERE pipeline = 'down:S1' AND status = 'parked' AND reason_code = 'BL-M021' ORDER BY branch_code`);
    assert.ok(parked.some((p) => p.branch_code === '118') && parked.some((p) => p.branch_code === '119'), JSON.stringify(parked));
    assert.deepEqual(await store(`SELECT product_id, price::text FROM price WHERE product_id IN (7, 8, 51) ORDER BY 1`), [
      { product_id: 7, price: '7.50' },
      { product_id: 8, price: '99.99' },
    ]);

    const again = await run();
    assert.deepEqual(kinds(byTarget(again, 'public.price')), { missing: [], different: [], extra: [], unassociated: 0 });
    assert.deepEqual(kinds(byTarget(again, 'public.cost_center')), { missing: [], different: [], extra: [], unassociated: 2 });
    assert.equal(byTarget(again, 'public.daily_sales').different.length, 1);
  });

  it('totals added from two tables are compared only with both; the CLI says what --fix left', async () => {
    const one = await run({ tables: ['sale_item'] });
    assert.equal(one.tables.length, 1);
    assert.match(one.tables[0]!.skipped ?? '', /also added from public\.return_item/);
    const cli = await runCli(['reconcile', '--config', world.configFile, '--store', 'S1', '--direction', 'up', '--fix']);
    assert.equal(cli.code, 10, `totals still differ after --fix: exit 10\n${cli.stdout}\n${cli.stderr}`);
    assert.match(cli.stdout, /public\.daily_sales\s+\d+\s+\d+\s+1\s+1\s+1\s+mapped\s+differs \(not fixed\)/);
    assert.match(cli.stdout, /totals are not rewritten by --fix/);
    assert.match(cli.stdout, /store S1: 0 differences repaired, 3 left as they are/);
  });

  it('the remedy docs/cli.md gives for wrong totals: delete them at HQ and load those tables again', async () => {
    await world.hqQuery(`DELETE FROM daily_sales WHERE store_code = 'S1'`);
    const config = await world.config();
    await runInitialLoadUp({ config, store: config.stores[0]!, logger: silentLogger(), tables: ['sale_item', 'return_item'], restart: true });
    const r = await run({ tables: ['sale_item', 'return_item'] });
    assert.deepEqual(kinds(byTarget(r, 'public.daily_sales')), { missing: [], different: [], extra: [], unassociated: 0 });
    assert.deepEqual(await world.hqQuery(`SELECT qty::text FROM daily_sales WHERE store_code = 'S9'`), [{ qty: '5.000' }]);
  });
});
