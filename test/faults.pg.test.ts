import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkAndCompile, loadMappings, readCatalog, tablesOf } from '../src/agent/prepare.js';
import { compareStore, inStep } from '../src/verify/compare.js';
import { Lsn } from '../src/core/lsn.js';
import { NothingToPickError } from '../src/demo/workload.js';
import { AgentProcess } from './support/agent-process.js';
import { cannotControl, startTestServer, type TestServer } from './support/pg.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { createWorld, eventually, TEST_UP_CONNECTOR, type World } from './support/world.js';

/**
 * Exactly once through crashes and outages, with the agent as a separate
 * process: HQ must end up equal to every store, every sale inserted at HQ
 * exactly once (an audit trigger counts inserts), and the pipeline's
 * transaction counter equal to the number of store transactions.
 */

const AUDIT_SQL = `
  CREATE TABLE audit_sale_insert (store_code text NOT NULL, sale_id bigint NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
  CREATE FUNCTION audit_sale_insert() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO audit_sale_insert (store_code, sale_id) VALUES (NEW.store_code, NEW.sale_id); RETURN NEW; END $$;
  CREATE TRIGGER audit_sale_insert AFTER INSERT ON store_sale FOR EACH ROW EXECUTE FUNCTION audit_sale_insert();`;

/**
 * Writes at every store until stopped, one transaction each: sales,
 * confirmations, fiscal coupons and cancellations of final coupons (which
 * take their items back out of HQ's daily totals). Counts the transactions.
 */
function startWriters(world: World) {
  let stopped = false;
  const txns = new Map(world.stores.map((s) => [s.code, 0]));
  const errors: unknown[] = [];
  const runs = world.stores.map(async (s, i) => {
    let n = 0;
    while (!stopped) {
      try {
        const k = n % 6;
        if (k === 3) await s.workload.confirmSale();
        else if (k === 4) await s.workload.coupon();
        else if (k === 5 && n % 24 === 5) await s.workload.cancelCoupon();
        else if (k === 5) await s.workload.coupon();
        else await s.workload.sale();
        txns.set(s.code, txns.get(s.code)! + 1);
      } catch (e) {
        if (!(e instanceof NothingToPickError)) {
          // The store may be down on purpose: wait and go on.
          errors.push(e);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      n++;
      if ((n + i) % 20 === 0) await new Promise((r) => setTimeout(r, 5));
    }
  });
  return {
    txns,
    errors,
    async stop() {
      stopped = true;
      await Promise.all(runs);
    },
  };
}

async function assertExactlyOnce(world: World, storeTxns: Map<string, number>): Promise<void> {
  const config = await world.config();
  const files = await loadMappings(config);
  const hq = await readCatalog(world.hq.url, 'HQ', tablesOf(files).targets);
  const mappings = checkAndCompile(files, hq, null, 'HQ');
  for (const s of world.stores) {
    // Setup wrote one transaction before the writers started.
    const expected = storeTxns.get(s.code)! + 1;
    await eventually(
      `HQ to hold every transaction of ${s.code} (${expected})`,
      async () => {
        const r = await world.hqQuery<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines WHERE pipeline = $1`, [`up:${s.code}`]);
        return Number(r[0]?.n ?? 0) >= expected;
      },
      60_000,
    );
    const counted = await world.hqQuery<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines WHERE pipeline = $1`, [`up:${s.code}`]);
    assert.equal(Number(counted[0]!.n), expected, `${s.code}: transactions applied at HQ must equal transactions committed at the store`);
    const cmp = await compareStore({ storeUrl: s.server.url(s.db), hqUrl: world.hq.server.url(world.hq.db), storeCode: s.code, mappings });
    assert.ok(inStep(cmp), `${s.code}: HQ differs from the store: ${JSON.stringify(cmp.filter((c) => c.missing || c.extra))}`);
    assert.ok(cmp.find((c) => c.target === 'public.store_sale')!.targetRows > 0);
    // The daily totals equal the store's items summed (compareStore above), and cancellations happened.
    const items = await s.server.query<{ n: string }>(s.db, `SELECT count(*)::text AS n FROM fiscal_coupon_item WHERE NOT cancelled`);
    assert.ok(cmp.find((c) => c.target === 'public.daily_product_sales')!.targetRows > 0, `${s.code}: no daily totals at HQ (${items[0]!.n} coupon items that count at the store)`);
    const cancelled = await s.server.query<{ n: string }>(s.db, `SELECT count(*)::text AS n FROM fiscal_coupon_item WHERE cancelled`);
    assert.ok(Number(cancelled[0]!.n) > 0, `${s.code}: no coupon was cancelled, so no total was ever taken back out`);
  }
  const dups = await world.hqQuery(`SELECT store_code, sale_id, count(*) FROM audit_sale_insert GROUP BY 1, 2 HAVING count(*) > 1`);
  assert.deepEqual(dups, [], 'a sale was inserted at HQ more than once');
  const inserted = await world.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM audit_sale_insert`);
  const sales = await world.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM store_sale`);
  assert.equal(inserted[0]!.n, sales[0]!.n);
}

describe('faults: exactly once through crashes and outages', { timeout: 600_000 }, () => {
  let hqServer: TestServer;
  let storeServer: TestServer;

  before(async () => {
    [hqServer, storeServer] = await Promise.all([startTestServer('hq'), startTestServer('stores')]);
  });
  after(async () => {
    await Promise.all([hqServer?.dispose(), storeServer?.dispose()]);
  });

  it('SIGKILL of the agent at random moments, 22 times, while two stores write', async () => {
    const world = await createWorld({ hqServer, storeServer, stores: ['S001', 'S002'], extraConfig: 'batch:\n  max_delay_ms: 50\n  max_rows: 300\n  chunk_rows: 100' });
    await world.hqQuery(AUDIT_SQL);
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    const writers = startWriters(world);
    try {
      let kills = 0;
      let sawProgressBetweenKills = 0;
      let lastApplied = 0;
      for (let i = 0; i < 22; i++) {
        agent.start();
        // A random moment: during start-up, mid-stream, mid-batch.
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 2700));
        await agent.kill();
        kills++;
        const applied = await world.hqQuery<{ n: string }>(`SELECT coalesce(sum(txns_applied), 0)::text AS n FROM branchline.pipelines`);
        if (Number(applied[0]!.n) > lastApplied) sawProgressBetweenKills++;
        lastApplied = Number(applied[0]!.n);
      }
      await writers.stop();
      assert.equal(kills, 22);
      assert.ok(sawProgressBetweenKills >= 5, `the agent applied something between kills only ${sawProgressBetweenKills} times: kills did not hit a working agent`);
      agent.start();
      await assertExactlyOnce(world, writers.txns);
    } finally {
      await writers.stop();
      await agent.dispose();
      await world.dispose();
    }
  });

  const slotOnly =
    TEST_UP_CONNECTOR === 'pg-trigger'
      ? 'pg-logical only: a pg-trigger store has no slot to acknowledge; its reader records its position on the connection it reads with, so it cannot lose one while reads go on (restarts are the SIGKILL case)'
      : false;
  it('acknowledgements lost on the way to the store: it redelivers what HQ holds, and nothing is applied twice', { skip: slotOnly }, async () => {
    const storeProxy = await new TcpProxy(Number(new URL(storeServer.url('postgres')).port)).start();
    const world = await createWorld({
      hqServer,
      storeServer,
      stores: ['S051'],
      agentUrl: (role, url) => (role === 'hq' ? url : storeProxy.url(url)),
      extraConfig: 'batch:\n  max_delay_ms: 50\n  max_rows: 200',
    });
    await world.hqQuery(AUDIT_SQL);
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    const writers = startWriters(world);
    const store = world.stores[0]!;
    const slotPosition = async () =>
      (await store.server.query<{ lsn: string }>(store.db, `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'branchline_s051'`))[0]!.lsn;
    try {
      agent.start();
      await eventually('first rows at HQ', async () => (await world.hqQuery(`SELECT 1 FROM store_sale LIMIT 1`)).length > 0);
      storeProxy.swallowClientBytes(true);
      const before = await world.hqQuery<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines`);
      await eventually(
        'HQ to apply more while the store hears no acknowledgement',
        async () => Number((await world.hqQuery<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines`))[0]!.n) > Number(before[0]!.n) + 50,
      );
      await agent.kill();
      storeProxy.cut();
      storeProxy.swallowClientBytes(false);
      const hqPosition = (await world.hqQuery<{ position: string }>(`SELECT position FROM branchline.pipelines`))[0]!.position;
      const slot = await slotPosition();
      assert.ok(Lsn.parse(slot).isBefore(Lsn.parse(hqPosition)), `the slot (${slot}) must be behind HQ (${hqPosition}) for this test to mean anything`);
      agent.start();
      await new Promise((r) => setTimeout(r, 1500));
      await writers.stop();
      await assertExactlyOnce(world, writers.txns);
    } finally {
      await writers.stop();
      await agent.dispose();
      await world.dispose();
      await storeProxy.close();
    }
  });

  it('HQ stopped while stores write, then started: everything arrives once', async (t) => {
    const why = cannotControl(hqServer);
    if (why) return t.skip(why);
    const world = await createWorld({ hqServer, storeServer, stores: ['S101'] });
    await world.hqQuery(AUDIT_SQL);
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    const writers = startWriters(world);
    try {
      agent.start();
      await eventually('first rows at HQ', async () => (await world.hqQuery(`SELECT 1 FROM store_sale LIMIT 1`)).length > 0);
      await hqServer.stop();
      const writtenWhileDown = writers.txns.get('S101')!;
      await new Promise((r) => setTimeout(r, 4000));
      assert.ok(writers.txns.get('S101')! > writtenWhileDown, 'the store kept selling while HQ was down');
      assert.ok(agent.running, 'the agent survives HQ going away');
      await hqServer.restart();
      await new Promise((r) => setTimeout(r, 1500));
      await writers.stop();
      await assertExactlyOnce(world, writers.txns);
      assert.match(await agent.logText(), /BL-D001/, 'the outage was logged with its code');
    } finally {
      await writers.stop();
      await agent.dispose();
      await world.dispose();
    }
  });

  it('store stopped and started while the agent runs: it reconnects and catches up', async (t) => {
    const why = cannotControl(storeServer);
    if (why) return t.skip(why);
    const world = await createWorld({ hqServer, storeServer, stores: ['S201'] });
    await world.hqQuery(AUDIT_SQL);
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    let writers = startWriters(world);
    const total = new Map([['S201', 0]]);
    try {
      agent.start();
      await eventually('first rows at HQ', async () => (await world.hqQuery(`SELECT 1 FROM store_sale LIMIT 1`)).length > 0);
      await writers.stop();
      total.set('S201', writers.txns.get('S201')!);
      await storeServer.stop();
      await new Promise((r) => setTimeout(r, 2500));
      assert.ok(agent.running, 'the agent survives the store going away');
      await storeServer.restart();
      writers = startWriters(world);
      await new Promise((r) => setTimeout(r, 2000));
      await writers.stop();
      total.set('S201', total.get('S201')! + writers.txns.get('S201')!);
      await assertExactlyOnce(world, total);
    } finally {
      await writers.stop();
      await agent.dispose();
      await world.dispose();
    }
  });

  it('TCP connections to HQ and the store cut mid-batch, 8 times: nothing lost or doubled', async () => {
    const hqProxy = await new TcpProxy(Number(new URL(hqServer.url('postgres')).port)).start();
    const storeProxy = await new TcpProxy(Number(new URL(storeServer.url('postgres')).port)).start();
    const world = await createWorld({
      hqServer,
      storeServer,
      stores: ['S301', 'S302'],
      agentUrl: (role, url) => (role === 'hq' ? hqProxy.url(url) : storeProxy.url(url)),
      extraConfig: 'batch:\n  max_delay_ms: 300\n  max_rows: 2000\n  chunk_rows: 50',
    });
    await world.hqQuery(AUDIT_SQL);
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    const writers = startWriters(world);
    try {
      agent.start();
      await eventually('first rows at HQ', async () => (await world.hqQuery(`SELECT 1 FROM store_sale LIMIT 1`)).length > 0);
      let cut = 0;
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 500 + Math.random() * 1000));
        cut += i % 2 === 0 ? hqProxy.cut() : storeProxy.cut();
      }
      assert.ok(cut >= 8, `only ${cut} connections were open to cut`);
      await writers.stop();
      assert.ok(agent.running, 'the agent survives connection cuts');
      await assertExactlyOnce(world, writers.txns);
      assert.ok(hqProxy.connections > 2 && storeProxy.connections > 2, 'the agent reconnected through the proxies');
    } finally {
      await writers.stop();
      await agent.dispose();
      await world.dispose();
      await hqProxy.close();
      await storeProxy.close();
    }
  });
});
