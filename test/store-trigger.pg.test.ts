import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { AgentProcess, runCli } from './support/agent-process.js';
import { show } from './support/cli-output.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { createWorld, eventually, type World } from './support/world.js';

/**
 * A store captured by triggers (`connector: pg-trigger`) through the CLI, on
 * a store server without wal_level=logical: what install makes and
 * uninstall removes, what status shows while HQ is behind and caught up,
 * and the purge of the store's change table below what HQ applied.
 */
describe('a pg-trigger store through the CLI', { timeout: 240_000 }, () => {
  let hqServer: TestServer;
  let storeServer: TestServer;
  let w: World;
  let agent: AgentProcess | null = null;

  before(async () => {
    // The store server has no logical decoding at all: trigger capture must not need it.
    [hqServer, storeServer] = await Promise.all([startTestServer('trig-hq'), startTestServer('trig-store', { wal_level: 'replica' })]);
    w = await createWorld({ hqServer, storeServer, stores: ['T1'], connector: 'pg-trigger', install: false, setup: false, sourceConfig: ['purge_interval_s: 1', 'poll_ms: 200'] });
  });
  after(async () => {
    await agent?.dispose();
    await w?.dispose();
    await Promise.all([hqServer?.dispose(), storeServer?.dispose()]);
  });

  const store = () => w.stores[0]!;
  const sq = <R extends Record<string, unknown>>(sql: string) => store().server.query<R>(store().db, sql);
  const logRows = async () => Number((await sq<{ n: string }>(`SELECT count(*)::text AS n FROM branchline.change_log`))[0]!.n);
  /** What branchline put at the store besides its state tables: triggers and capture functions. */
  const objects = async () =>
    (
      await sq<{ o: string }>(
        `SELECT 'trigger ' || tgrelid::regclass || '.' || tgname AS o FROM pg_trigger WHERE tgname LIKE 'branchline%'
         UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'branchline'::regnamespace
         UNION ALL SELECT 'table ' || relname FROM pg_class WHERE relnamespace = 'branchline'::regnamespace AND relkind = 'r' AND relname LIKE 'change_log%'
         ORDER BY 1`,
      )
    ).map((r) => r.o);

  it('install makes the change table and capture triggers, no slot or publication; a second install refreshes them', async () => {
    const first = await runCli(['install', '--config', w.configFile]);
    assert.equal(first.code, 0, show(first));
    assert.match(first.stdout, /created the change log branchline\.change_log/);
    assert.match(first.stdout, /created the capture triggers on public\.sale /);
    assert.deepEqual(await sq(`SELECT slot_name FROM pg_replication_slots UNION ALL SELECT pubname FROM pg_publication`), []);
    // The store's triggers send no NOTIFY (it would make the ERP's commits wait for one another); HQ's do (its readers wake at once).
    const notifying = async (rows: Promise<{ n: string }[]>) => Number((await rows)[0]!.n);
    const fnSql = `SELECT count(*) FILTER (WHERE prosrc LIKE '%pg_notify%')::text AS n FROM pg_proc WHERE pronamespace = 'branchline'::regnamespace AND proname LIKE 'capture%'`;
    assert.equal(await notifying(sq<{ n: string }>(fnSql)), 0, 'no capture function at the store notifies');
    assert.ok((await notifying(w.hqQuery<{ n: string }>(fnSql))) > 0, 'HQ\'s capture functions (the down tables) notify');
    const made = await objects();
    assert.ok(made.includes('table change_log') && made.includes('trigger sale.branchline_capture'), made.join('\n'));
    const again = await runCli(['install', '--config', w.configFile]);
    assert.equal(again.code, 0, show(again));
    assert.match(again.stdout, /refreshed the capture triggers on public\.sale /);
    assert.doesNotMatch(again.stdout, /created the change log/);
    assert.deepEqual(await objects(), made, 'the same objects, none added');
  });

  it('an ERP role with rights on its own tables only can still write them after install (the capture runs with the installer\'s rights), at the store and at HQ', async () => {
    const asRole = async (server: TestServer, db: string, role: string, sql: string) => {
      const url = new URL(server.url(db));
      url.username = role;
      url.password = 'clerk-pw';
      const c = new pg.Client({ connectionString: url.toString() });
      await c.connect();
      try {
        await c.query(sql);
      } finally {
        await c.end();
      }
    };
    await sq(`DROP ROLE IF EXISTS erp_clerk; CREATE ROLE erp_clerk LOGIN PASSWORD 'clerk-pw';
              GRANT INSERT, UPDATE, DELETE, SELECT ON sale TO erp_clerk; GRANT USAGE ON SEQUENCE sale_id_seq, sale_number_seq TO erp_clerk`);
    const before = await logRows();
    await asRole(storeServer, store().db, 'erp_clerk', `INSERT INTO sale (seller, total) VALUES ('clerk', 1.50)`);
    assert.equal(await logRows(), before + 1, 'the write is captured');
    const [row] = await sq<{ who: string }>(`SELECT after->>'seller' AS who FROM branchline.change_log ORDER BY id DESC LIMIT 1`);
    assert.equal(row?.who, 'clerk');
    await sq(`DELETE FROM sale WHERE seller = 'clerk'`);
    // HQ: a role that may only update products (a down table) still can.
    await w.hqQuery(`DROP ROLE IF EXISTS hq_clerk; CREATE ROLE hq_clerk LOGIN PASSWORD 'clerk-pw'; GRANT SELECT, INSERT, UPDATE ON product TO hq_clerk; GRANT USAGE ON SEQUENCE product_id_seq TO hq_clerk`);
    const hqLog = async () => Number((await w.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM branchline.change_log WHERE table_name = 'product'`))[0]!.n);
    const hqBefore = await hqLog();
    await asRole(hqServer, w.hq.db, 'hq_clerk', `INSERT INTO product (sku, description, unit, price) VALUES ('7890000999999', 'Clerk product', 'UN', 3.00)`);
    assert.equal(await hqLog(), hqBefore + 1);
    await w.hqQuery(`DELETE FROM product WHERE sku = '7890000999999'`);
    // The search path of the capture functions is pinned (SECURITY DEFINER): no schema of the caller is searched.
    const fns = await sq<{ def: boolean; path: string[] | null }>(`SELECT prosecdef AS def, proconfig AS path FROM pg_proc WHERE pronamespace = 'branchline'::regnamespace AND proname LIKE 'capture%'`);
    assert.ok(fns.length > 0 && fns.every((f) => f.def && (f.path ?? []).includes('search_path=pg_catalog, pg_temp')), JSON.stringify(fns));
  });

  it('status counts what HQ lacks; the agent applies it and then purges the store\'s change table', async () => {
    await store().workload.setup({ products: 20, customers: 3 });
    const written = await store().workload.sales(6, { lines: 2 });
    type Row = { store: string; state: string; lagBytes: number | null; walRetainedBytes: number | null; slotState: string | null; position: string | null };
    const status = async (): Promise<Row> => {
      const r = await runCli(['status', '--config', w.configFile, '--json']);
      assert.equal(r.code, 0, show(r));
      return (JSON.parse(r.stdout) as Row[])[0]!;
    };
    const behind = await status();
    const pending = await logRows();
    assert.ok(pending >= written, `the log holds every change written (${pending} of at least ${written})`);
    assert.equal(behind.slotState, `change table, ${pending} changes not at HQ`);
    assert.ok((behind.lagBytes ?? 0) > 0, `bytes behind: ${JSON.stringify(behind)}`);
    assert.ok((behind.walRetainedBytes ?? 0) > 0, 'the change table\'s size');
    assert.equal(behind.state, 'never ran');

    agent = new AgentProcess(w.configFile, path.join(w.dir, 'agent.log'));
    agent.start();
    await eventually('the sales at HQ', async () => Number((await w.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM store_sale WHERE store_code = 'T1'`))[0]!.n) === 6, 60_000);
    await eventually('the change table purged of what HQ applied', async () => (await logRows()) === 0, 30_000);
    const caughtUp = await status();
    assert.equal(caughtUp.slotState, 'change table, 0 changes not at HQ');
    assert.equal(caughtUp.lagBytes, 0);
    assert.equal(caughtUp.state, 'streaming');
    assert.match(caughtUp.position ?? '', /^\d+$/, 'a pg-trigger position');

    // Stopped agent: the store keeps selling, its table keeps the changes for HQ, and nothing is purged.
    await agent.stop();
    await store().workload.sales(3, { lines: 1 });
    await new Promise((r) => setTimeout(r, 1_500));
    const held = await logRows();
    assert.ok(held >= 6, `kept for HQ while the agent is away (${held})`);
    assert.equal((await status()).slotState, `change table, ${held} changes not at HQ`);
    agent.start();
    await eventually('the later sales at HQ', async () => Number((await w.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM store_sale WHERE store_code = 'T1'`))[0]!.n) === 9, 60_000).catch(
      async (e: Error) => assert.fail(`${e.message}\nagent log:\n${(await agent!.logText()).split('\n').slice(-15).join('\n')}`),
    );
    await agent.stop();
  });

  it('uninstall removes the change table, the triggers and the functions, and leaves the ERP\'s tables and rows', async () => {
    const sales = (await sq<{ n: string }>(`SELECT count(*)::text AS n FROM sale`))[0]!.n;
    const r = await runCli(['uninstall', '--config', w.configFile]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /removed the capture triggers from .*public\.sale/);
    assert.match(r.stdout, /dropped the change log branchline\.change_log/);
    assert.deepEqual(await objects(), []);
    assert.equal((await sq<{ n: string }>(`SELECT count(*)::text AS n FROM sale`))[0]!.n, sales);
    // The ERP writes on, uncaptured and unhindered.
    await store().workload.sales(1, { lines: 1 });
  });
});
