import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hqSchemaSql, importExampleAssociations, RETAIL_EXAMPLE_DIR, storeSchemaSql } from '../src/demo/retail-example.js';
import { startInProcess, type InProcess } from './support/in-process.js';
import { eventually } from './support/world.js';

/**
 * The example ERP's mapping files do what mappings/retail-example/README.md
 * says: a store's customer becomes an HQ customer under a new HQ id (once:
 * insert_only), a receivable carries HQ's ids for its customer and cost
 * center, waits while its cost center is not associated, and is kept at HQ,
 * marked, when the store deletes it.
 */
describe('the retail example mappings', { timeout: 120_000 }, () => {
  let env: InProcess;
  const store = (sql: string, params?: unknown[]) => env.server.query(env.world.stores[0]!.db, sql, params);
  const hq = <T>(sql: string, params?: unknown[]) => env.world.hqQuery(sql, params) as Promise<T[]>;

  before(async () => {
    const files = (await readdir(RETAIL_EXAMPLE_DIR)).filter((f) => f.endsWith('.yml'));
    const mappings = Object.fromEntries(await Promise.all(files.map(async (f) => [f, await readFile(path.join(RETAIL_EXAMPLE_DIR, f), 'utf8')] as const)));
    env = await startInProcess({
      name: 'retail-example',
      stores: ['S001'],
      hqSql: await hqSchemaSql(),
      storeSql: await storeSchemaSql(),
      mappings,
      beforeAgent: async (world) => {
        // HQ's master data before the store's first start: the agent loads it (down.initial_load: auto).
        await world.hqQuery(`INSERT INTO store (code, name, city) VALUES ('S001', 'Loja Centro', 'Curitiba'), ('S002', 'Loja Batel', 'Curitiba')`);
        await world.hqQuery(`INSERT INTO product (id, sku, description, unit, price) VALUES
                               (1, '7890000000017', 'Arroz Tio João 5 kg', 'PCT', 27.90),
                               (2, '7890000000024', 'Feijão carioca 1 kg', 'PCT', 8.49),
                               (3, '7890000000031', 'Banana prata', 'KG', 6.98)`);
        await world.hqQuery(`INSERT INTO store_price (store_code, product_id, price) VALUES ('S001', 1, 25.90), ('S002', 2, 7.99)`);
      },
    });
    await importExampleAssociations(env.world.hq.url, ['S001']);
  });
  after(async () => env?.dispose());

  it('products and store prices come down: loaded at first start, then followed; a deleted product stays inactive', async () => {
    const products = () => store(`SELECT id, sku, description, unit, price::text, active FROM product ORDER BY id`);
    const shelf = () => store(`SELECT id, price::text FROM shelf_price ORDER BY id`);
    assert.deepEqual(await products(), [
      { id: 1, sku: '7890000000017', description: 'Arroz Tio João 5 kg', unit: 'PCT', price: '27.90', active: true },
      { id: 2, sku: '7890000000024', description: 'Feijão carioca 1 kg', unit: 'PCT', price: '8.49', active: true },
      { id: 3, sku: '7890000000031', description: 'Banana prata', unit: 'KG', price: '6.98', active: true },
    ]);
    // Only S001's own price list: S002's price for product 2 never reaches S001.
    assert.deepEqual(await store(`SELECT product_id, price::text FROM local_price ORDER BY 1`), [{ product_id: 1, price: '25.90' }]);
    assert.deepEqual(await shelf(), [
      { id: 1, price: '25.90' },
      { id: 2, price: '8.49' },
      { id: 3, price: '6.98' },
    ]);
    await hq(`UPDATE product SET price = 7.49, updated_at = now() WHERE id = 3`);
    await hq(`UPDATE store_price SET store_code = 'S002' WHERE product_id = 1`); // S001 loses its own price for product 1
    await hq(`INSERT INTO store_price (store_code, product_id, price) VALUES ('S001', 3, 6.99)`);
    await eventually('the new prices at S001', async () => JSON.stringify(await shelf()) === JSON.stringify([{ id: 1, price: '27.90' }, { id: 2, price: '8.49' }, { id: 3, price: '6.99' }]));
    assert.deepEqual(await store(`SELECT price::text FROM product WHERE id = 3`), [{ price: '7.49' }]);
    await hq(`DELETE FROM store_price WHERE product_id = 3`);
    await hq(`DELETE FROM product WHERE id = 3`);
    await eventually('product 3 inactive at S001', async () => (await store(`SELECT active FROM product WHERE id = 3`))[0]?.active === false);
    assert.deepEqual(await store(`SELECT count(*)::int AS n FROM product`), [{ n: 3 }], 'kept at the store, not deleted');
    assert.deepEqual(await store(`SELECT product_id FROM local_price`), []);
    // Nothing of it went back up: the store's slot skips what branchline applied.
    const up = await hq<{ txns: string }>(`SELECT txns_applied::text AS txns FROM branchline.pipelines WHERE pipeline = 'up:S001'`);
    assert.equal(up[0]?.txns ?? '0', '0', 'no store transaction was sent up');
  });

  it('customer and receivable: new HQ customer id, HQ cost center, parked while CC-09 is not associated, soft delete', async () => {
    await store(`INSERT INTO customer (id, code, name, tax_id, city) VALUES (5, 'S001-C000005', ' Maria Souza ', '12345678901', 'Curitiba')`);
    await store(`INSERT INTO receivable (id, document_number, customer_id, due_on, amount, cost_center) VALUES
                 (1, 'R-1', 5, CURRENT_DATE + 30, 100.00, 'CC-02'), (2, 'R-2', 5, CURRENT_DATE + 30, 50.00, 'CC-09')`);
    await eventually('R-1 at HQ', async () => (await hq(`SELECT 1 FROM store_receivable WHERE receivable_id = 1`)).length === 1);
    const [customer] = await hq<{ id: string; name: string; origin_store: string }>(`SELECT id::text, name, origin_store FROM customer`);
    assert.equal(customer?.name, 'Maria Souza');
    assert.equal(customer?.origin_store, 'S001');
    const [r1] = await hq<{ customer_hq_id: string; cost_center_id: number; deleted_at: Date | null }>(
      `SELECT customer_hq_id::text, cost_center_id, deleted_at FROM store_receivable WHERE receivable_id = 1`,
    );
    assert.deepEqual(r1, { customer_hq_id: customer!.id, cost_center_id: 101, deleted_at: null });
    await eventually('R-2 parked', async () => (await hq(`SELECT 1 FROM branchline.parked WHERE branch_code = 'CC-09'`)).length === 1);

    // insert_only: HQ keeps its customer as first created.
    await store(`UPDATE customer SET name = 'Maria S. Lima' WHERE id = 5`);
    await store(`DELETE FROM receivable WHERE id = 1`);
    await eventually('R-1 marked deleted at HQ', async () => (await hq<{ d: boolean }>(`SELECT deleted_at IS NOT NULL AS d FROM store_receivable WHERE receivable_id = 1`))[0]?.d === true);
    assert.deepEqual(await hq(`SELECT name FROM customer`), [{ name: 'Maria Souza' }]);

    // on_delete: ignore: HQ keeps a Z closing the store deletes, and counts the delete.
    const ignored = async () => Number((await hq<{ n: string }>(`SELECT changes_ignored::text AS n FROM branchline.pipelines`))[0]?.n ?? 0);
    await store(`INSERT INTO z_closing (id, till, business_day, coupon_count, gross_total, cancelled_total) VALUES (1, 1, CURRENT_DATE, 10, 500.00, 20.00)`);
    await eventually('the Z closing at HQ', async () => (await hq(`SELECT 1 FROM store_z_closing WHERE z_closing_id = 1`)).length === 1);
    const before = await ignored();
    await store(`DELETE FROM z_closing WHERE id = 1`);
    await eventually('the delete counted', async () => (await ignored()) === before + 1);
    assert.equal((await hq(`SELECT 1 FROM store_z_closing WHERE z_closing_id = 1`)).length, 1, 'HQ keeps it');

    await hq(`INSERT INTO branchline.associations (store_code, entity, branch_code, hq_key, origin) VALUES ('S001', 'cost_center', 'CC-09', '109', 'manual')`);
    await eventually('R-2 at HQ', async () => (await hq<{ cost_center_id: number }>(`SELECT cost_center_id FROM store_receivable WHERE receivable_id = 2`))[0]?.cost_center_id === 109, 20_000);
  });
});
