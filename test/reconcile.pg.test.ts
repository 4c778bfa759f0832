import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../src/core/logger.js';
import { checkAndCompile, loadMappings, readCatalog, tablesOf } from '../src/agent/prepare.js';
import { storeCapture } from '../src/agent/store-capture.js';
import { upSink } from '../src/load/initial-load-up.js';
import { runReconcile, type ReconcileResult } from '../src/reconcile/reconcile.js';
import { runCli } from './support/agent-process.js';
import { byTarget, reconcileWorld, type ReconcileWorld } from './support/reconcile-world.js';
import type { World } from './support/world.js';

/**
 * `branchline reconcile`: a store's sales (100,000 rows, mapped with an
 * expression and the store code) are loaded into HQ through the normal
 * path, then HQ is changed behind the pipeline's back (one sale updated,
 * one deleted, one added for the store); HQ deletes a product the store
 * still holds (down). Reconcile must report exactly those keys, --fix must
 * repair them through the mappings and the sink, and a second run must be
 * clean. The CLI prints the summary table and --json, exit code 10 while
 * differences remain.
 */
const ROWS = 100_000;
const HQ_SQL = `
  CREATE TABLE sale (store_code text NOT NULL, sale_id bigint NOT NULL, amount numeric(12,2) NOT NULL, note text, sold_on date NOT NULL, PRIMARY KEY (store_code, sale_id));
  CREATE TABLE customer (store_code text NOT NULL, customer_id int NOT NULL, name text NOT NULL, deleted boolean NOT NULL DEFAULT false, PRIMARY KEY (store_code, customer_id));
  CREATE TABLE product (id int PRIMARY KEY, description text NOT NULL, price numeric(12,2) NOT NULL);
  INSERT INTO product SELECT g, 'product ' || g, (g % 97) + 0.49 FROM generate_series(1, 500) g;
  -- another store's sales: never reported, never touched
  INSERT INTO sale SELECT 'S9', g, 1.00, NULL, DATE '2026-01-01' FROM generate_series(1, 50) g;`;
const STORE_SQL = `
  CREATE TABLE sale (sale_id bigint PRIMARY KEY, amount numeric(12,3) NOT NULL, note text, sold_on date NOT NULL);
  INSERT INTO sale SELECT g, (g % 1000) / 10.0, CASE WHEN g % 3 = 0 THEN NULL ELSE ' note ' || g END, DATE '2026-01-01' + (g % 300) FROM generate_series(1, ${ROWS}) g;
  CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL);
  INSERT INTO customer SELECT g, ' customer ' || g FROM generate_series(1, 1000) g;
  CREATE TABLE product (id int PRIMARY KEY, description text NOT NULL, price numeric(12,2) NOT NULL);`;
// Bare columns and the store code: hashed by both databases (the store rounds its numeric(12,3) to HQ's numeric(12,2) itself).
const SALE_UP = `direction: up
source: sale
target: sale
key: [store_code, sale_id]
columns:
  store_code: store.code
  sale_id: sale_id
  amount: amount
  note: note
  sold_on: sold_on
`;
// An expression: mapped by the agent. A customer deleted at the store stays at HQ, marked.
const CUSTOMER_UP = `direction: up
source: customer
target: customer
key: [store_code, customer_id]
columns:
  store_code: store.code
  customer_id: id
  name: upper(trim(name))
on_delete:
  soft:
    deleted: true
`;
const PRODUCT_DOWN = `direction: down
source: product
target: product
columns:
  id: id
  description: description
  price: price
`;


describe('reconcile: counts, the exact differing keys, and --fix', { timeout: 300_000 }, () => {
  let env: ReconcileWorld;
  let world: World;
  const store = <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => world.stores[0]!.server.query(world.stores[0]!.db, sql, params) as Promise<R[]>;

  before(async () => {
    env = await reconcileWorld({ name: 'reconcile', hqSql: HQ_SQL, storeSql: STORE_SQL, mappings: { 'sale-up.yml': SALE_UP, 'customer-up.yml': CUSTOMER_UP, 'product-down.yml': PRODUCT_DOWN } });
    world = env.world;
  });
  after(async () => env?.dispose());

  it('a table loaded through the mappings is equal', async () => {
    const config = await world.config();
    const started = Date.now();
    const r = await runReconcile({ config, store: config.stores[0]!, logger: silentLogger() });
    console.log(`# reconcile of ${ROWS} sales and 500 products, equal: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(r.differences, 0, JSON.stringify(r.tables.map((t) => ({ ...t, missing: t.missing.slice(0, 5), different: t.different.slice(0, 5), extra: t.extra.slice(0, 5) }))));
    const sale = byTarget(r, 'public.sale');
    assert.equal(sale.sourceRows, ROWS);
    assert.equal(sale.targetRows, ROWS, 'HQ rows of S1 only (not S9)');
    assert.equal(sale.method, 'hashed');
    assert.equal(sale.rowsFetched, 0, 'equal buckets: no row crosses');
    assert.equal(byTarget(r, 'public.customer').method, 'mapped');
    assert.equal(byTarget(r, 'public.customer').targetRows, 1000);
    assert.equal(byTarget(r, 'public.product').targetRows, 500);
    assert.equal(byTarget(r, 'public.product').method, 'hashed');
  });

  it('reports exactly the keys changed behind the pipeline, and --fix repairs them', async () => {
    await world.hqQuery(`UPDATE sale SET amount = amount + 1 WHERE store_code = 'S1' AND sale_id = 4242`);
    await world.hqQuery(`DELETE FROM sale WHERE store_code = 'S1' AND sale_id = 77777`);
    await world.hqQuery(`INSERT INTO sale VALUES ('S1', 9000001, 5.00, 'EXTRA', DATE '2026-02-02')`);
    // HQ deletes a product the store still holds (the down channel is not running).
    await world.hqQuery(`DELETE FROM product WHERE id = 321`);
    await world.hqQuery(`UPDATE customer SET name = 'SOMEONE ELSE' WHERE store_code = 'S1' AND customer_id = 7`);
    // The store deletes a customer while no agent runs: HQ still holds it, unmarked.
    await store(`DELETE FROM customer WHERE id = 8`);
    const config = await world.config();
    const started = Date.now();
    const found = await runReconcile({ config, store: config.stores[0]!, logger: silentLogger() });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const sale = byTarget(found, 'public.sale');
    assert.deepEqual(sale.different, [['S1', '4242']]);
    assert.deepEqual(sale.missing, [['S1', '77777']]);
    assert.deepEqual(sale.extra, [['S1', '9000001']]);
    // Narrowed down: only the differing buckets' row hashes crossed, not the table.
    assert.ok(sale.bucketsDiffering >= 1 && sale.bucketsDiffering <= 3, `buckets differing: ${sale.bucketsDiffering}`);
    assert.ok(sale.rowsFetched > 0 && sale.rowsFetched < ROWS / 50, `row hashes fetched: ${sale.rowsFetched} of ${ROWS}`);
    console.log(`# 3 differing sales of ${ROWS}: ${sale.bucketsDiffering} of ${sale.buckets} buckets differed, ${sale.rowsFetched} row hashes fetched, ${seconds} s`);
    const customer = byTarget(found, 'public.customer');
    assert.deepEqual([customer.missing, customer.different, customer.extra], [[], [['S1', '7']], [['S1', '8']]]);
    const product = byTarget(found, 'public.product');
    assert.equal(product.direction, 'down');
    assert.deepEqual(product.extra, [['321']]);
    assert.deepEqual([product.missing, product.different], [[], []]);
    assert.equal(found.differences, 6);

    const fixed = await runReconcile({ config, store: config.stores[0]!, logger: silentLogger(), fix: true });
    assert.equal(byTarget(fixed, 'public.sale').resent, 2);
    assert.equal(byTarget(fixed, 'public.sale').removed, 1);
    assert.equal(byTarget(fixed, 'public.product').removed, 1);
    assert.equal(byTarget(fixed, 'public.customer').resent, 1);
    assert.equal(byTarget(fixed, 'public.customer').removed, 1, 'soft deleted');
    assert.deepEqual(await world.hqQuery(`SELECT customer_id, name, deleted FROM customer WHERE store_code = 'S1' AND customer_id IN (7, 8) ORDER BY 1`), [
      { customer_id: 7, name: 'CUSTOMER 7', deleted: false },
      { customer_id: 8, name: 'CUSTOMER 8', deleted: true },
    ]);
    // The rows are as the mapping writes them, and the other store's rows are untouched.
    const rows = await world.hqQuery<{ sale_id: string; amount: string; note: string | null }>(
      `SELECT sale_id::text, amount::text, note FROM sale WHERE store_code = 'S1' AND sale_id IN (4242, 77777, 9000001) ORDER BY sale_id`,
    );
    assert.deepEqual(rows, [
      { sale_id: '4242', amount: '24.20', note: null },
      { sale_id: '77777', amount: '77.70', note: ' note 77777' },
    ]);
    assert.equal((await world.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM sale WHERE store_code = 'S9'`))[0]!.n, '50');
    assert.deepEqual(await store(`SELECT id FROM product WHERE id = 321`), []);

    const again = await runReconcile({ config, store: config.stores[0]!, logger: silentLogger() });
    assert.equal(again.differences, 0);
  });

  it('--fix is refused while the pipeline is held (a running agent); reading is not', async () => {
    const config = await world.config();
    const s1 = config.stores[0]!;
    const files = await loadMappings(config);
    const hqCatalog = await readCatalog(config.hq.url, 'HQ', tablesOf(files).targets);
    const mappings = checkAndCompile(files, hqCatalog, null, 'HQ');
    // What an agent's up pipeline holds while it runs: the pipeline's lock at HQ.
    const held = upSink({ config, store: s1, positionKind: storeCapture(s1).positionKind, catalog: hqCatalog.tables, mappings, entities: files.entities.byName, logger: silentLogger() });
    await held.connect();
    try {
      await world.hqQuery(`DELETE FROM sale WHERE store_code = 'S1' AND sale_id = 5`);
      await assert.rejects(runReconcile({ config, store: s1, logger: silentLogger(), fix: true }), (e: Error & { code?: string }) => e.code === 'BL-R003' && /stop the agent/i.test(`${e.message} ${(e as { hint?: string }).hint ?? ''}`));
      const read = await runReconcile({ config, store: s1, logger: silentLogger(), directions: ['up'] });
      assert.deepEqual(byTarget(read, 'public.sale').missing, [['S1', '5']]);
      assert.equal((await world.hqQuery(`SELECT count(*)::int AS n FROM sale WHERE store_code = 'S1' AND sale_id = 5`))[0]!['n'], 0, 'nothing written');
    } finally {
      await held.close();
    }
    // --tables names a table of either direction.
    const fixed = await runReconcile({ config, store: s1, logger: silentLogger(), fix: true, tables: ['sale'] });
    assert.deepEqual(byTarget(fixed, 'public.sale').missing, [['S1', '5']]);
    assert.equal(fixed.tables.length, 1, '--tables sale: only the sale mapping');
    const product = await runReconcile({ config, store: s1, logger: silentLogger(), tables: ['product'] });
    assert.deepEqual(product.tables.map((t) => `${t.direction} ${t.target}`), ['down public.product']);
    await assert.rejects(runReconcile({ config, store: s1, logger: silentLogger(), tables: ['nosuch'] }), (e: Error & { code?: string }) => e.code === 'BL-U001' && /"nosuch"/.test(e.message));
  });

  it('the CLI prints a summary table, --json, and exits 10 while differences remain', async () => {
    await world.hqQuery(`UPDATE sale SET note = 'CHANGED' WHERE store_code = 'S1' AND sale_id = 12`);
    const text = await runCli(['reconcile', '--config', world.configFile, '--store', 'S1', '--direction', 'up']);
    assert.equal(text.code, 10, text.stderr);
    assert.match(text.stdout, /^dir\s+mapping\s+target\s+source rows\s+target rows\s+missing\s+different\s+extra\s+compared\s+result$/m);
    assert.match(text.stdout, new RegExp(`^up\\s+sale-up\\.yml\\s+public\\.sale\\s+${ROWS}\\s+${ROWS}\\s+0\\s+1\\s+0\\s+hashed \\(1\\/4096 buckets\\)\\s+differs$`, 'm'));
    assert.match(text.stdout, /public\.sale different: \(S1, 12\)/);
    assert.match(text.stdout, /store S1: 1 differences \(repair them with --fix\)/);
    const json = await runCli(['reconcile', '--config', world.configFile, '--store', 'S1', '--json', '--fix']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as ReconcileResult;
    assert.equal(parsed.differences, 1);
    assert.equal(parsed.fixed, true);
    assert.deepEqual(parsed.tables.find((t) => t.target === 'public.sale')?.different, [['S1', '12']]);
    const clean = await runCli(['reconcile', '--config', world.configFile, '--store', 'S1', '--json']);
    assert.equal(clean.code, 0, clean.stderr);
    assert.equal((JSON.parse(clean.stdout) as ReconcileResult).differences, 0);
  });
});
