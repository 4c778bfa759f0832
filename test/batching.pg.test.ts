import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startInProcess, type InProcess } from './support/in-process.js';
import { eventually } from './support/world.js';

/**
 * When a batch closes with the default idle_ms (0): as soon as the agent has
 * nothing more buffered from the store, and not earlier. The walsender sends a
 * keepalive after every transaction once it has caught up with the store's
 * WAL, also while the agent is still behind; those keepalives must not cut a
 * backlog into one HQ transaction per store transaction.
 */

const STORE_SQL = `CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL);`;
const HQ_SQL = `CREATE TABLE h_item (store_code text NOT NULL, id int NOT NULL, name text NOT NULL, PRIMARY KEY (store_code, id));`;
const ITEM_YML = `source: item
target: h_item
columns:
  store_code: store.code
  id: id
  name: name
`;

describe('batching with the default idle_ms', { timeout: 120_000 }, () => {
  let env: InProcess;
  const sq = (sql: string, params?: unknown[]) => env.world.stores[0]!.server.query(env.world.stores[0]!.db, sql, params);
  const hqCount = async () => Number((await env.world.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM h_item`))[0]!.n);
  const batches = () => env.agent.snapshot().get('B1')!.batchesApplied;

  before(async () => {
    env = await startInProcess({
      name: 'batching',
      stores: ['B1'],
      hqSql: HQ_SQL,
      storeSql: STORE_SQL,
      mappings: { 'item.yml': ITEM_YML },
      // A delay no test waits for: only "nothing more buffered" can close these batches.
      extraConfig: 'batch:\n  max_delay_ms: 600000\n  max_rows: 1000000',
    });
  });

  after(async () => {
    await env?.dispose();
  });

  it('a lone store transaction is committed at HQ once nothing more is buffered, without waiting for max_delay_ms', async () => {
    const before = batches();
    await sq(`INSERT INTO item VALUES (1, 'one')`);
    // max_delay_ms is ten minutes: only the empty buffer can have closed this batch.
    await eventually('the row at HQ', async () => (await hqCount()) === 1, 20_000);
    assert.equal(batches(), before + 1, 'one store transaction, one HQ transaction');
  });

  it('a backlog that piled up while HQ was busy goes in one batch, whatever keepalives arrived between its transactions', async () => {
    const hqLock = new pg.Client({ connectionString: env.world.hq.url });
    await hqLock.connect();
    try {
      // HQ is busy: the next batch waits on this lock while the store writes on.
      await hqLock.query(`BEGIN; LOCK TABLE h_item IN SHARE ROW EXCLUSIVE MODE`);
      const before = batches();
      await sq(`INSERT INTO item VALUES (100, 'first')`);
      // 60 more transactions, each on its own and a little apart, so the
      // walsender catches up and sends a keepalive after each of them.
      for (let i = 101; i <= 160; i++) {
        await sq(`INSERT INTO item VALUES ($1, $2)`, [i, `item ${i}`]);
        await new Promise((r) => setTimeout(r, 15));
      }
      // Let the last keepalives reach the agent's buffer too.
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(batches(), before, 'nothing committed while HQ was locked');
      await hqLock.query('COMMIT');
      await eventually('the backlog at HQ', async () => (await hqCount()) === 62, 20_000);
      const used = batches() - before;
      // The first transaction was alone when its batch started; the other 60
      // were buffered behind it and belong in one more.
      assert.ok(used <= 3, `61 store transactions took ${used} HQ transactions; a backlog must not be applied one transaction at a time`);
      assert.ok(used >= 1);
    } finally {
      await hqLock.end().catch(() => undefined);
    }
  });
});
