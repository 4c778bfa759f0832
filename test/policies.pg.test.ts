import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startInProcess, type InProcess } from './support/in-process.js';
import { eventually, TEST_UP_CONNECTOR } from './support/world.js';

/**
 * Filters, insert_only, soft deletes and aggregates through the real
 * pipeline: a store writes, HQ is read back.
 */

const STORE_SQL = `
  CREATE TABLE doc (id int PRIMARY KEY, status text NOT NULL, total numeric(12,2) NOT NULL);
  CREATE TABLE cust (id int PRIMARY KEY, name text NOT NULL);
  CREATE TABLE item (id int PRIMARY KEY, day date NOT NULL, product int NOT NULL, qty numeric(12,3) NOT NULL, cancelled boolean NOT NULL DEFAULT false);
  CREATE TABLE marker (id int PRIMARY KEY);`;

const HQ_SQL = `
  CREATE TABLE h_doc (store_code text NOT NULL, id int NOT NULL, status text NOT NULL, total numeric(12,2) NOT NULL,
    deleted boolean NOT NULL DEFAULT false, deleted_at timestamptz, PRIMARY KEY (store_code, id));
  CREATE TABLE h_cust (store_code text NOT NULL, id int NOT NULL, name text NOT NULL, PRIMARY KEY (store_code, id));
  CREATE TABLE h_daily (store_code text NOT NULL, day date NOT NULL, product int NOT NULL,
    qty numeric(14,3) NOT NULL DEFAULT 0, items int NOT NULL DEFAULT 0, PRIMARY KEY (store_code, day, product));
  CREATE TABLE h_marker (store_code text NOT NULL, id int NOT NULL, PRIMARY KEY (store_code, id));`;

const MAPPINGS = {
  'doc.yml': `source: doc
target: h_doc
filter: status <> 'draft'
on_delete:
  soft:
    deleted: true
    deleted_at: commit_time()
columns:
  store_code: store.code
  id: id
  status: status
  total: total
  deleted: false
`,
  'cust.yml': `source: cust
target: h_cust
on_conflict: insert_only
columns:
  store_code: store.code
  id: id
  name: name
`,
  'daily.yml': `source: item
target: h_daily
filter: not cancelled
columns:
  store_code: store.code
  day: day
  product: product
  qty: sum(qty)
  items: count()
`,
  'marker.yml': `source: marker
target: h_marker
columns:
  store_code: store.code
  id: id
`,
};

describe('mapping policies on PostgreSQL', { timeout: 120_000 }, () => {
  let env: InProcess;
  let mark = 0;
  const sq = (sql: string, params?: unknown[]) => env.world.stores[0]!.server.query(env.world.stores[0]!.db, sql, params);
  const hq = <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => env.world.hqQuery<R>(sql, params);
  /** Writes a marker row at the store and waits for it at HQ: everything committed before it has been applied. */
  const settle = async () => {
    const id = ++mark;
    await sq(`INSERT INTO marker VALUES ($1)`, [id]);
    await eventually(`marker ${id} at HQ`, async () => (await hq(`SELECT 1 FROM h_marker WHERE id = $1`, [id])).length === 1);
  };
  const ignored = async () => Number((await hq<{ n: string }>(`SELECT changes_ignored::text AS n FROM branchline.pipelines WHERE pipeline = 'up:P1'`))[0]!.n);

  before(async () => {
    env = await startInProcess({ name: 'policies', stores: ['P1'], hqSql: HQ_SQL, storeSql: STORE_SQL, mappings: MAPPINGS });
  });
  after(async () => {
    await env?.dispose();
  });

  it('install gave the aggregate source its before-images', async () => {
    const r = await sq(`SELECT relreplident::text AS r, EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'item'::regclass AND tgname = 'branchline_capture') AS captured
                          FROM pg_class WHERE oid = 'item'::regclass`);
    // pg-logical: REPLICA IDENTITY FULL. pg-trigger: the capture trigger logs the whole old row, and the table is left as it was.
    assert.deepEqual(r, [TEST_UP_CONNECTOR === 'pg-trigger' ? { r: 'd', captured: true } : { r: 'f', captured: false }]);
  });

  it('filter: a draft stays at the store; confirmed it arrives; back to draft it is soft-deleted with its commit time; inserted again it is live', async () => {
    await sq(`INSERT INTO doc VALUES (1, 'draft', 10), (2, 'confirmed', 20)`);
    await settle();
    assert.deepEqual(await hq(`SELECT id, status, deleted FROM h_doc ORDER BY id`), [{ id: 2, status: 'confirmed', deleted: false }]);

    await sq(`UPDATE doc SET status = 'confirmed' WHERE id = 1`);
    await settle();
    assert.deepEqual(await hq(`SELECT id, status, deleted FROM h_doc ORDER BY id`), [
      { id: 1, status: 'confirmed', deleted: false },
      { id: 2, status: 'confirmed', deleted: false },
    ]);

    const t0 = Date.now();
    await sq(`UPDATE doc SET status = 'draft' WHERE id = 1`);
    await sq(`DELETE FROM doc WHERE id = 2`);
    await settle();
    const rows = await hq<{ id: number; deleted: boolean; at: string | null }>(`SELECT id, deleted, extract(epoch FROM deleted_at)::text AS at FROM h_doc ORDER BY id`);
    assert.deepEqual(
      rows.map((r) => [r.id, r.deleted]),
      [
        [1, true],
        [2, true],
      ],
    );
    for (const r of rows) assert.ok(r.at !== null && Math.abs(Number(r.at) * 1000 - t0) < 60_000, `deleted_at ${r.at} is the store's commit time`);

    await sq(`INSERT INTO doc VALUES (2, 'confirmed', 21)`);
    await settle();
    assert.deepEqual(await hq(`SELECT id, total::text, deleted FROM h_doc WHERE id = 2`), [{ id: 2, total: '21.00', deleted: false }]);

    await sq(`TRUNCATE doc`);
    await settle();
    assert.deepEqual(await hq(`SELECT count(*)::int AS n FROM h_doc WHERE NOT deleted`), [{ n: 0 }]);
    assert.deepEqual(await hq(`SELECT count(*)::int AS n FROM h_doc`), [{ n: 2 }], 'a truncate marks, it does not delete');
  });

  it('insert_only: the store creates, HQ keeps its version; later updates and deletes are ignored and counted', async () => {
    const before = await ignored();
    // Created and renamed in one transaction: HQ gets the first version, as if applied one by one.
    await sq(`BEGIN; INSERT INTO cust VALUES (1, 'Ana'); UPDATE cust SET name = 'Ana Maria' WHERE id = 1; COMMIT;`);
    await sq(`INSERT INTO cust VALUES (2, 'Bruno')`);
    await settle();
    assert.deepEqual(await hq(`SELECT id, name FROM h_cust ORDER BY id`), [
      { id: 1, name: 'Ana' },
      { id: 2, name: 'Bruno' },
    ]);
    await sq(`UPDATE cust SET name = 'B.' WHERE id = 2`);
    await sq(`DELETE FROM cust WHERE id = 1`);
    await settle();
    assert.deepEqual(await hq(`SELECT id, name FROM h_cust ORDER BY id`), [
      { id: 1, name: 'Ana' },
      { id: 2, name: 'Bruno' },
    ]);
    assert.equal((await ignored()) - before, 3, 'the rename in the creating transaction, the later rename and the delete');
  });

  it('aggregate: totals add inserts, move with updates, drop cancellations and deletes, exactly', async () => {
    const totals = async () => hq(`SELECT day::text, product, qty::text, items FROM h_daily ORDER BY day, product`);
    await sq(`INSERT INTO item VALUES (1, '2026-11-23', 10, 2.5), (2, '2026-11-23', 10, 1), (3, '2026-11-23', 11, 4)`);
    await settle();
    assert.deepEqual(await totals(), [
      { day: '2026-11-23', product: 10, qty: '3.500', items: 2 },
      { day: '2026-11-23', product: 11, qty: '4.000', items: 1 },
    ]);
    await sq(`UPDATE item SET cancelled = true WHERE id = 1`); // a cancelled coupon takes its quantity out
    await sq(`UPDATE item SET product = 11, qty = 0.5 WHERE id = 2`); // moves from one total to the other
    await sq(`DELETE FROM item WHERE id = 3`);
    await sq(`UPDATE item SET qty = 99 WHERE id = 1`); // cancelled before and after: counts nowhere
    await settle();
    assert.deepEqual(await totals(), [
      { day: '2026-11-23', product: 10, qty: '0.000', items: 0 },
      { day: '2026-11-23', product: 11, qty: '0.500', items: 1 },
    ]);
    // The totals equal the store's rows summed.
    const store = await sq(`SELECT product, sum(qty)::numeric(14,3)::text AS qty, count(*)::int AS items FROM item WHERE NOT cancelled GROUP BY 1 ORDER BY 1`);
    assert.deepEqual(store, [{ product: 11, qty: '0.500', items: 1 }]);
  });
});
