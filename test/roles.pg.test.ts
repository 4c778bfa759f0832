import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent } from '../src/agent/agent.js';
import { downTablesOf, loadMappings, tablesOf } from '../src/agent/prepare.js';
import { loadConfig } from '../src/config/load.js';
import { createLogger, silentLogger } from '../src/core/logger.js';
import { formatTable, type TableId } from '../src/core/change.js';
import { runDoctor } from '../src/doctor/doctor.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { createWorld, eventually, type World } from './support/world.js';

/**
 * The least-privilege roles of docs/deployment.md, run: `install` as the
 * superuser (the tables' owner), then `doctor` and the agent with only the
 * grants the page lists, the up channel (pg-logical) and the down channel
 * both moving rows.
 */

let server: TestServer;
let world: World;

const list = (ts: readonly TableId[]) => ts.map((t) => formatTable(t)).join(', ');

/** The statements of docs/deployment.md for the store (pg-logical) and HQ, with the example's tables. */
async function roleSql(): Promise<{ store: string[]; hq: string[] }> {
  const files = await loadMappings(await world.config());
  const { sources, targets } = tablesOf(files);
  const { hqSources, storeTargets } = downTablesOf(files);
  const store = [
    `CREATE ROLE branchline_store LOGIN REPLICATION PASSWORD 'store-pw'`,
    `GRANT USAGE ON SCHEMA public TO branchline_store`,
    `GRANT SELECT ON ${list(sources)} TO branchline_store`,
    `GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ${list(storeTargets)} TO branchline_store`,
    `GRANT USAGE ON SCHEMA branchline TO branchline_store`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA branchline TO branchline_store`,
    `GRANT USAGE ON ALL SEQUENCES IN SCHEMA branchline TO branchline_store`,
    `GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text) TO branchline_store`,
  ];
  const hq = [
    `CREATE ROLE branchline_hq LOGIN PASSWORD 'hq-pw'`,
    `GRANT USAGE ON SCHEMA public TO branchline_hq`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ${list(targets)} TO branchline_hq`,
    `GRANT USAGE ON SEQUENCE public.customer_id_seq TO branchline_hq`,
    `GRANT SELECT ON ${list(hqSources)} TO branchline_hq`,
    `GRANT USAGE ON SCHEMA branchline TO branchline_hq`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA branchline TO branchline_hq`,
    `GRANT USAGE ON ALL SEQUENCES IN SCHEMA branchline TO branchline_hq`,
  ];
  return { store, hq };
}

before(async () => {
  server = await startTestServer('roles');
  world = await createWorld({ hqServer: server, storeServer: server, stores: ['S001'], connector: 'pg-logical' });
});

after(async () => {
  await world?.dispose();
  await server?.dispose();
});

describe('least-privilege roles (docs/deployment.md)', () => {
  it('a pg-logical store role and an HQ role with only the listed grants pass doctor and move rows up and down', async (t) => {
    if (!server.controllable) {
      t.skip('creates roles on the server; not on the shared BRANCHLINE_TEST_PG_URL server');
      process.stdout.write('# skipped: creates cluster-wide roles, not on BRANCHLINE_TEST_PG_URL\n');
      return;
    }
    const store = world.stores[0]!;
    const sql = await roleSql();
    for (const s of sql.store) await server.query(store.db, s);
    for (const s of sql.hq) await server.query(world.hq.db, s);
    const as = (url: string, user: string, pw: string) => {
      const u = new URL(url);
      u.username = user;
      u.password = pw;
      return u.toString();
    };
    const text = (await readFile(world.configFile, 'utf8'))
      .replace(world.hq.url, as(world.hq.url, 'branchline_hq', 'hq-pw'))
      .replace(store.url, as(store.url, 'branchline_store', 'store-pw'));
    const file = path.join(world.dir, 'roles.yml');
    await writeFile(file, text);
    const config = await loadConfig(file);

    const report = await runDoctor({ config, stores: config.stores });
    const notOk = report.checks.filter((c) => c.status !== 'ok').map((c) => `${c.database} ${c.check} ${c.code}: ${c.message}`);
    assert.deepEqual(notOk, ['store S001 max_slot_wal_keep_size BL-D009: ' + report.checks.find((c) => c.code === 'BL-D009')?.message]);

    const logger = process.env['BRANCHLINE_TEST_LOG'] === '1' ? createLogger({ level: 'debug' }) : silentLogger();
    const agent = new Agent({ config, logger });
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    try {
      await eventually('both pipelines streaming', async () => agent.snapshot().get('S001')?.state === 'streaming' && agent.downSnapshot().get('S001')?.state === 'streaming');
      const sale = await store.workload.sale({ lines: 2 });
      await eventually('the sale at HQ', async () => (await world.hqQuery(`SELECT 1 FROM store_sale WHERE store_code = 'S001' AND sale_id = $1`, [sale])).length === 1);
      await world.hqQuery(`INSERT INTO product (sku, description, unit, price) VALUES ('ROLES-1', 'new at HQ', 'UN', 1.50)`);
      await eventually('the new product at the store', async () =>
        (await server.query(store.db, `SELECT 1 FROM product WHERE sku = 'ROLES-1' AND description = 'new at HQ'`)).length === 1);
      // Who applied them: the roles, not the superuser.
      const who = await server.query<{ usename: string }>('postgres', `SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name LIKE 'branchline%' AND usename IS NOT NULL`);
      assert.deepEqual(who.map((w) => w.usename).sort(), ['branchline_hq', 'branchline_store']);
    } finally {
      controller.abort();
      await running.catch(() => undefined);
    }
  });
});
