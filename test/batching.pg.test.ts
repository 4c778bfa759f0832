import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { Agent } from '../src/agent/agent.js';
import { silentLogger } from '../src/core/logger.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { createWorld, eventually, type World } from './support/world.js';

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
  let server: TestServer;
  let world: World;
  let mappingsDir: string;
  const controller = new AbortController();
  let agent: Agent;
  let running: Promise<unknown> | undefined;

  const sq = (sql: string, params?: unknown[]) => world.stores[0]!.server.query(world.stores[0]!.db, sql, params);
  const hqCount = async () => Number((await world.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM h_item`))[0]!.n);
  const batches = () => agent.snapshot().get('B1')!.batchesApplied;

  before(async () => {
    server = await startTestServer('batching');
    mappingsDir = await mkdtemp(path.join(os.tmpdir(), 'branchline-maps-'));
    await chmod(mappingsDir, 0o755);
    await writeFile(path.join(mappingsDir, 'item.yml'), ITEM_YML);
    world = await createWorld({
      hqServer: server,
      storeServer: server,
      stores: ['B1'],
      hqSql: HQ_SQL,
      storeSql: STORE_SQL,
      mappingsDir,
      // A delay no test waits for: only "nothing more buffered" can close these batches.
      extraConfig: 'batch:\n  max_delay_ms: 600000\n  max_rows: 1000000',
    });
    agent = new Agent({ config: await world.config(), logger: silentLogger() });
    running = agent.run(controller.signal);
    await eventually('the pipeline streaming', async () => agent.snapshot().get('B1')?.state === 'streaming');
  });

  after(async () => {
    controller.abort();
    await running?.catch(() => undefined);
    await world?.dispose();
    await rm(mappingsDir, { recursive: true, force: true });
    await server?.dispose();
  });

  it('a lone store transaction is committed at HQ once nothing more is buffered, without waiting for max_delay_ms', async () => {
    const before = batches();
    await sq(`INSERT INTO item VALUES (1, 'one')`);
    // max_delay_ms is ten minutes: only the empty buffer can have closed this batch.
    await eventually('the row at HQ', async () => (await hqCount()) === 1, 20_000);
    assert.equal(batches(), before + 1, 'one store transaction, one HQ transaction');
  });

  it('a backlog that piled up while HQ was busy goes in one batch, whatever keepalives arrived between its transactions', async () => {
    const hqLock = new pg.Client({ connectionString: world.hq.url });
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
