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
    env = await startInProcess({ name: 'retail-example', stores: ['S001'], hqSql: await hqSchemaSql(), storeSql: await storeSchemaSql(), mappings });
    await hq(`INSERT INTO store (code, name, city) VALUES ('S001', 'Loja Centro', 'Curitiba')`);
    await importExampleAssociations(env.world.hq.url, ['S001']);
  });
  after(async () => env?.dispose());

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
