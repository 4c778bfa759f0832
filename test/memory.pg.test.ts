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
});
