import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentProcess } from './support/agent-process.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { createWorld, eventually, type World } from './support/world.js';

/** Peak resident set size of a process, in MB (VmHWM). */
async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  assert.ok(kb > 0, 'VmHWM not found');
  return kb / 1024;
}

describe('memory stays bounded for any transaction size', { timeout: 600_000 }, () => {
  let server: TestServer;
  let world: World;

  before(async () => {
    server = await startTestServer('memory', { shared_buffers: '128MB', max_wal_size: '4GB' });
    world = await createWorld({ hqServer: server, storeServer: server, stores: ['M01'] });
  });
  after(async () => {
    await world?.dispose();
    await server?.dispose();
  });

  it('replicates a 1,000,000-row store transaction with the agent under 300 MB RSS', async () => {
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    const store = world.stores[0]!;
    try {
      agent.start();
      // The world's setup transaction (customers) arrives first.
      await eventually('the setup transaction at HQ', async () => (await world.hqQuery(`SELECT 1 FROM branchline.pipelines WHERE txns_applied >= 1`)).length === 1);
      const before = await world.hqQuery<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines`);
      // One store transaction: 200,000 sales with 4 lines each = 1,000,000 rows.
      await store.server.query(
        store.db,
        `BEGIN;
         INSERT INTO sale (id, number, issued_at, seller, status, total)
           OVERRIDING SYSTEM VALUE
           SELECT 10000000 + g, g, now(), 'bulk', 'confirmed', 40.00 FROM generate_series(1, 200000) g;
         INSERT INTO sale_line (sale_id, line_no, product_id, quantity, unit_price, discount, amount)
           SELECT 10000000 + g, l, (SELECT min(id) FROM product), 1, 10.00, 0, 10.00
             FROM generate_series(1, 200000) g, generate_series(1, 4) l;
         COMMIT;`,
      );
      await eventually(
        'all 1,000,000 rows at HQ',
        async () => {
          const r = await world.hqQuery<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines`);
          return Number(r[0]!.n) > Number(before[0]?.n ?? 0);
        },
        400_000,
        500,
      );
      const pid = agent.pid!;
      const peak = await peakRssMb(pid);
      const counts = await world.hqQuery<{ sales: string; lines: string }>(
        `SELECT (SELECT count(*) FROM store_sale WHERE sale_id > 10000000)::text AS sales,
                (SELECT count(*) FROM store_sale_line WHERE sale_id > 10000000)::text AS lines`,
      );
      assert.deepEqual(counts, [{ sales: '200000', lines: '800000' }]);
      const after = await world.hqQuery<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines`);
      assert.equal(Number(after[0]!.n), Number(before[0]?.n ?? 0) + 1, 'one store transaction, applied as one');
      process.stdout.write(`# agent peak RSS for a 1,000,000-row transaction: ${peak.toFixed(0)} MB\n`);
      assert.ok(peak < 300, `agent peak RSS ${peak.toFixed(0)} MB is over 300 MB`);
    } finally {
      await agent.dispose();
    }
  });

  it('hands a 1,000,000-row HQ price update down to a store whole, with the agent under 300 MB RSS', async () => {
    const store = world.stores[0]!;
    const downApplied = async () =>
      Number((await store.server.query<{ n: string }>(store.db, `SELECT coalesce(sum(txns_applied), 0)::text AS n FROM branchline.pipelines WHERE pipeline = 'down:M01'`))[0]!.n);
    // 1,000,000 more products on both sides, equal, written past the capture (replica role: HQ's triggers do not fire).
    const BULK = `SELECT 1000000 + g, 'M' || g, 'bulk product ' || g, 'UN', 1.00 FROM generate_series(1, 1000000) g`;
    await store.server.query(world.hq.db, `SET session_replication_role = replica; INSERT INTO product (id, sku, description, unit, price) ${BULK}; RESET session_replication_role;`);
    await store.server.query(store.db, `INSERT INTO product (id, sku, description, unit, price) ${BULK}`);
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent-down.log'));
    // What the store shows while the update arrives: all of it or none, never part.
    const seen = new Set<number>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const r = await store.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM product WHERE id > 1000000 AND price = 1.50`).catch(() => null);
        if (r) seen.add(Number(r.rows[0]!.n));
        await new Promise((res) => setTimeout(res, 300));
      }
    })();
    try {
      agent.start();
      await eventually('the down pipeline of M01 streaming', async () => /"down pipeline starting"/.test(await agent.logText()));
      const before = await downApplied();
      // One HQ transaction: a new price for 1,000,000 products.
      const t0 = Date.now();
      await world.hqQuery(`UPDATE product SET price = 1.50, updated_at = now() WHERE id > 1000000`);
      const updated = Date.now();
      await eventually('the 1,000,000-row price update at the store', async () => (await downApplied()) > before, 400_000, 500);
      process.stdout.write(`# the HQ update took ${((updated - t0) / 1000).toFixed(1)} s (its capture trigger included), the store had it ${((Date.now() - updated) / 1000).toFixed(1)} s later\n`);
      const peak = await peakRssMb(agent.pid!);
      watching = false;
      await watcher;
      const [counts] = (await store.pool.query<{ updated: string; total: string }>(`SELECT count(*) FILTER (WHERE price = 1.50)::text AS updated, count(*)::text AS total FROM product WHERE id > 1000000`)).rows;
      assert.deepEqual(counts, { updated: '1000000', total: '1000000' });
      assert.equal(await downApplied(), before + 1, 'one HQ transaction, applied as one');
      assert.deepEqual([...seen].filter((n) => n !== 0 && n !== 1_000_000), [], `the store showed part of the update: ${[...seen].join(', ')} rows`);
      process.stdout.write(`# agent peak RSS for a 1,000,000-row HQ price update: ${peak.toFixed(0)} MB (the store saw ${[...seen].sort((a, b) => a - b).join(' or ')} updated rows)\n`);
      assert.ok(peak < 300, `agent peak RSS ${peak.toFixed(0)} MB is over 300 MB`);
    } finally {
      watching = false;
      await watcher;
      await agent.dispose();
    }
  });
});
