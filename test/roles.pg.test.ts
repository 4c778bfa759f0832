import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { Agent } from '../src/agent/agent.js';
import { downTablesOf, loadMappings, tablesOf } from '../src/agent/prepare.js';
import { loadConfig, type Config } from '../src/config/load.js';
import { createLogger, silentLogger } from '../src/core/logger.js';
import { formatTable, type TableId } from '../src/core/change.js';
import { RetailWorkload } from '../src/demo/workload.js';
import { runDoctor } from '../src/doctor/doctor.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { createWorld, eventually, type World } from './support/world.js';

/**
 * The least-privilege roles of docs/deployment.md, run: `install` as the
 * superuser (the tables' owner), then `doctor` and the agent with only the
 * grants the page lists, rows moving up and down; for pg-trigger also the
 * ERP's own writing role, which needs to write the change table.
 */

let server: TestServer;
const worlds: World[] = [];

const list = (ts: readonly TableId[]) => ts.map((t) => formatTable(t)).join(', ');

/** The statements of docs/deployment.md for a store and HQ, with the example's tables. */
async function roleSql(world: World, connector: 'pg-logical' | 'pg-trigger', storeRole: string, hqRole: string): Promise<{ store: string[]; hq: string[] }> {
  const files = await loadMappings(await world.config());
  const { sources, targets } = tablesOf(files);
  const { hqSources, storeTargets } = downTablesOf(files);
  const store = [
    `CREATE ROLE ${storeRole} LOGIN ${connector === 'pg-logical' ? 'REPLICATION ' : ''}PASSWORD 'store-pw'`,
    `GRANT USAGE ON SCHEMA public TO ${storeRole}`,
    `GRANT SELECT ON ${list(sources)} TO ${storeRole}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ${list(storeTargets)} TO ${storeRole}`,
    `GRANT USAGE ON SCHEMA branchline TO ${storeRole}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA branchline TO ${storeRole}`,
    `GRANT USAGE ON ALL SEQUENCES IN SCHEMA branchline TO ${storeRole}`,
    // pg-trigger too: the down channel's initial load marks its rows with a replication origin (src/load/initial-load.ts).
    `GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text) TO ${storeRole}`,
  ];
  const hq = [
    `CREATE ROLE ${hqRole} LOGIN PASSWORD 'hq-pw'`,
    `GRANT USAGE ON SCHEMA public TO ${hqRole}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ${list(targets)} TO ${hqRole}`,
    `GRANT USAGE ON SEQUENCE public.customer_id_seq TO ${hqRole}`,
    `GRANT SELECT ON ${list(hqSources)} TO ${hqRole}`,
    `GRANT USAGE ON SCHEMA branchline TO ${hqRole}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA branchline TO ${hqRole}`,
    `GRANT USAGE ON ALL SEQUENCES IN SCHEMA branchline TO ${hqRole}`,
  ];
  return { store, hq };
}

const as = (url: string, user: string, pw: string) => {
  const u = new URL(url);
  u.username = user;
  u.password = pw;
  return u.toString();
};

/** Creates the roles at the world's store and HQ and returns its configuration with their URLs. */
async function withRoles(world: World, connector: 'pg-logical' | 'pg-trigger', storeRole: string, hqRole: string): Promise<Config> {
  const store = world.stores[0]!;
  const sql = await roleSql(world, connector, storeRole, hqRole);
  for (const s of sql.store) await server.query(store.db, s);
  for (const s of sql.hq) await server.query(world.hq.db, s);
  const text = (await readFile(world.configFile, 'utf8'))
    .replace(world.hq.url, as(world.hq.url, hqRole, 'hq-pw'))
    .replace(store.url, as(store.url, storeRole, 'store-pw'));
  const file = path.join(world.dir, 'roles.yml');
  await writeFile(file, text);
  return loadConfig(file);
}

/** Runs the agent until `fn` is done; returns who the agent's sessions were. */
async function withAgent(config: Config, fn: () => Promise<void>): Promise<string[]> {
  const logger = process.env['BRANCHLINE_TEST_LOG'] === '1' ? createLogger({ level: 'debug' }) : silentLogger();
  const agent = new Agent({ config, logger });
  const controller = new AbortController();
  const running = agent.run(controller.signal);
  try {
    await eventually('both pipelines streaming', async () => agent.snapshot().get('S001')?.state === 'streaming' && agent.downSnapshot().get('S001')?.state === 'streaming');
    await fn();
    const who = await server.query<{ usename: string }>(
      'postgres',
      `SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name LIKE 'branchline%' AND usename IS NOT NULL AND datname = ANY($1)`,
      [[config.stores[0]!.url, config.hq.url].map((u) => new URL(u).pathname.slice(1))],
    );
    return who.map((w) => w.usename).sort();
  } finally {
    controller.abort();
    await running.catch(() => undefined);
  }
}

async function upAndDown(world: World, workload: RetailWorkload, sku: string): Promise<void> {
  const sale = await workload.sale({ lines: 2 });
  await eventually('the sale at HQ', async () => (await world.hqQuery(`SELECT 1 FROM store_sale WHERE store_code = 'S001' AND sale_id = $1`, [sale])).length === 1);
  await world.hqQuery(`INSERT INTO product (sku, description, unit, price) VALUES ($1, 'new at HQ', 'UN', 1.50)`, [sku]);
  await eventually('the new product at the store', async () =>
    (await server.query(world.stores[0]!.db, `SELECT 1 FROM product WHERE sku = $1 AND description = 'new at HQ'`, [sku])).length === 1);
}

function onlyKeepSizeWarning(report: Awaited<ReturnType<typeof runDoctor>>, connector: string): void {
  const notOk = report.checks.filter((c) => c.status !== 'ok').map((c) => `${c.database} ${c.check} ${c.code}`);
  assert.deepEqual(notOk, connector === 'pg-logical' ? ['store S001 max_slot_wal_keep_size BL-D009'] : [], report.checks.map((c) => `${c.status} ${c.check}: ${c.message}`).join('\n'));
}

/** Roles are cluster-wide: not created on the shared BRANCHLINE_TEST_PG_URL server (said, not silent). */
function skippedOnSharedServer(t: { skip(reason: string): void }): boolean {
  if (server.controllable) return false;
  t.skip('creates roles on the server; not on the shared BRANCHLINE_TEST_PG_URL server');
  process.stdout.write('# skipped: creates cluster-wide roles, not on BRANCHLINE_TEST_PG_URL\n');
  return true;
}

before(async () => {
  server = await startTestServer('roles');
});

after(async () => {
  await Promise.all(worlds.map((w) => w.dispose()));
  await server?.dispose();
});

describe('least-privilege roles (docs/deployment.md)', () => {
  it('a pg-logical store role and an HQ role with only the listed grants pass doctor and move rows up and down', async (t) => {
    if (skippedOnSharedServer(t)) return;
    const world = await createWorld({ hqServer: server, storeServer: server, stores: ['S001'], connector: 'pg-logical' });
    worlds.push(world);
    const config = await withRoles(world, 'pg-logical', 'branchline_store', 'branchline_hq');
    onlyKeepSizeWarning(await runDoctor({ config, stores: config.stores }), 'pg-logical');
    const who = await withAgent(config, () => upAndDown(world, world.stores[0]!.workload, 'ROLES-1'));
    assert.deepEqual(who, ['branchline_hq', 'branchline_store']);
  });

  it('pg-trigger: the store role needs no REPLICATION; the ERP role writing a captured table needs nothing of branchline\'s (the capture runs with the installer\'s rights)', async (t) => {
    if (skippedOnSharedServer(t)) return;
    const world = await createWorld({ hqServer: server, storeServer: server, stores: ['S001'], connector: 'pg-trigger' });
    worlds.push(world);
    const store = world.stores[0]!;
    const config = await withRoles(world, 'pg-trigger', 'branchline_trigger_store', 'branchline_trigger_hq');
    onlyKeepSizeWarning(await runDoctor({ config, stores: config.stores }), 'pg-trigger');
    // The ERP's own role: its tables, nothing of branchline's.
    await server.query(store.db, `CREATE ROLE erp_app LOGIN PASSWORD 'erp-pw'`);
    await server.query(store.db, `GRANT USAGE ON SCHEMA public TO erp_app`);
    await server.query(store.db, `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO erp_app`);
    await server.query(store.db, `GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO erp_app`);
    const erp = new pg.Pool({ connectionString: as(store.url, 'erp_app', 'erp-pw'), max: 2 });
    erp.on('error', () => undefined);
    try {
      const workload = new RetailWorkload({ db: erp, storeCode: 'S001' });
      // No grant on branchline's schema: the ERP's writes go on, and are captured.
      const who = await withAgent(config, () => upAndDown(world, workload, 'ROLES-2'));
      assert.deepEqual(who, ['branchline_trigger_hq', 'branchline_trigger_store']);
    } finally {
      await erp.end();
    }
  });
});
