import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { LSN_CODEC } from '../connectors/pg-logical/lsn-codec.js';
import { XID8_CODEC } from '../connectors/pg-trigger/index.js';
import { PgSnapshot } from '../src/core/pg-snapshot.js';
import { install } from '../src/agent/install.js';
import { checkAndCompile, loadMappings, readCatalog, tablesOf } from '../src/agent/prepare.js';
import { silentLogger } from '../src/core/logger.js';
import { importExampleAssociations } from '../src/demo/retail-example.js';
import { NothingToPickError } from '../src/demo/workload.js';
import { runInitialLoadUp } from '../src/load/initial-load-up.js';
import { compareStore, inStep } from '../src/verify/compare.js';
import { AgentProcess, runCli, spawnCli } from './support/agent-process.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { createWorld, eventually, TEST_UP_CONNECTOR, type World } from './support/world.js';

/**
 * The initial load upwards (`snapshot --direction up`): a store's history,
 * written before its slot existed, copied into HQ through the retail
 * example's up mappings (expressions, filters, allocated customer keys,
 * daily totals) while the store keeps writing; then the agent's stream
 * carries on. HQ must equal the store exactly, totals included, with no
 * sale inserted twice: the stream skips exactly the transactions the copy's
 * snapshot saw, decided by xid.
 */

const AUDIT_SQL = `
  CREATE TABLE audit_sale_insert (store_code text NOT NULL, sale_id bigint NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
  CREATE FUNCTION audit_sale_insert() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO audit_sale_insert (store_code, sale_id) VALUES (NEW.store_code, NEW.sale_id); RETURN NEW; END $$;
  CREATE TRIGGER audit_sale_insert AFTER INSERT ON store_sale FOR EACH ROW EXECUTE FUNCTION audit_sale_insert();`;

/** A store's history written before `install` made its slot, then the slot, the example's associations and HQ's insert audit. */
async function storeWithHistory(server: TestServer, code: string, events: number, extraConfig: string): Promise<World> {
  const world = await createWorld({ hqServer: server, storeServer: server, stores: [code], install: false, extraConfig });
  await world.stores[0]!.workload.mixed(events);
  const config = await world.config();
  await install(config, config.stores, silentLogger());
  await importExampleAssociations(world.hq.url, [code]);
  await world.hqQuery(AUDIT_SQL);
  return world;
}

/** Writes a random mix (sales, edits, deletes, coupons, cancellations, customers, ...) one transaction at a time until stopped. */
function startWriters(world: World) {
  const s = world.stores[0]!;
  let stopped = false;
  let txns = 0;
  const errors: unknown[] = [];
  const run = (async () => {
    while (!stopped) {
      try {
        await s.workload.mixed(1);
        txns++;
      } catch (e) {
        if (!(e instanceof NothingToPickError)) errors.push(e);
      }
      if (txns % 10 === 0) await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    get txns() {
      return txns;
    },
    errors,
    async stop() {
      stopped = true;
      await run;
    },
  };
}

async function assertExact(world: World): Promise<void> {
  const s = world.stores[0]!;
  const config = await world.config();
  const files = await loadMappings(config);
  const mappings = checkAndCompile(files, await readCatalog(world.hq.url, 'HQ', tablesOf(files).targets), null, 'HQ');
  let last: unknown;
  await eventually(
    `HQ to equal store ${s.code} through the mappings`,
    async () => {
      const cmp = await compareStore({ storeUrl: s.server.url(s.db), hqUrl: world.hq.url, storeCode: s.code, mappings });
      last = cmp.filter((c) => c.missing || c.extra);
      return inStep(cmp);
    },
    60_000,
    500,
  ).catch((e: Error) => {
    throw new Error(`${e.message}: ${JSON.stringify(last)}`);
  });
  const cmp = await compareStore({ storeUrl: s.server.url(s.db), hqUrl: world.hq.url, storeCode: s.code, mappings });
  assert.ok(cmp.find((c) => c.target === 'public.daily_product_sales')!.targetRows > 0, 'no daily totals at HQ: the aggregate was not exercised');
  assert.ok(cmp.find((c) => c.target === 'public.store_sale')!.targetRows > 0);
  const dups = await world.hqQuery(`SELECT store_code, sale_id, count(*)::int AS n FROM audit_sale_insert GROUP BY 1, 2 HAVING count(*) > 1`);
  assert.deepEqual(dups, [], 'a sale was inserted at HQ more than once');
}

/** The initial load's snapshot that a stored up position still carries (an LSN with it, or pg-trigger's snapshot position); null once the stream passed it. */
function loadSnapshot(position: string): PgSnapshot | null {
  if (TEST_UP_CONNECTOR === 'pg-trigger') {
    const p = XID8_CODEC.parse(position);
    return p.snapshot === null ? null : PgSnapshot.parse(p.snapshot);
  }
  return LSN_CODEC.parse(position).load?.snapshot ?? null;
}

const storedPosition = async (world: World) =>
  (await world.hqQuery<{ position: string }>(`SELECT position FROM branchline.pipelines WHERE pipeline = $1`, [`up:${world.stores[0]!.code}`]))[0]?.position ?? null;

describe('initial load upwards: a store\'s history into HQ', { timeout: 600_000 }, () => {
  let server: TestServer;
  const worlds: World[] = [];
  const agents: AgentProcess[] = [];

  before(async () => {
    // A synchronous standby that never comes: a session that asks for synchronous_commit=on
    // writes its commit record, then waits, still "running" for every snapshot (the race below).
    server = await startTestServer('initial-load-up', { synchronous_standby_names: 'branchline_nobody' });
  });
  after(async () => {
    for (const a of agents) await a.dispose();
    for (const w of worlds) await w.dispose();
    await server?.dispose();
  });

  it('copies history and concurrent writes exactly once, skipping by xid what the snapshot saw; the position survives an agent restart', async () => {
    const world = await storeWithHistory(server, 'S1', 300, 'batch:\n  chunk_rows: 200\n');
    worlds.push(world);
    const s = world.stores[0]!;
    const config = await world.config();
    const writers = startWriters(world);
    await eventually('writers to commit into the slot before the load', async () => writers.txns >= 20);

    // A transaction whose commit record is written before the load's snapshot, while the
    // snapshot still sees it running: not in the copy, so the stream must deliver it.
    const race = new pg.Client({ connectionString: s.server.url(s.db) });
    race.on('error', () => undefined);
    await race.connect();
    let raceXid = '';
    let racing: Promise<unknown> | null = null;
    if (server.controllable) {
      await race.query(`SET synchronous_commit = on`);
      await race.query('BEGIN');
      raceXid = (await race.query<{ x: string }>(`SELECT pg_current_xact_id()::text AS x`)).rows[0]!.x;
      // A cancelled sale: no writer picks it again, so only this transaction can bring it to HQ.
      await race.query(`INSERT INTO sale (seller, status, notes) VALUES ('race', 'cancelled', 'committed before the snapshot, seen running')`);
      racing = race.query('COMMIT').catch(() => undefined);
      const pid = (race as unknown as { processID: number }).processID;
      await eventually('the racing commit to wait for its standby', async () => {
        const r = await s.server.query<{ w: string | null }>(s.db, `SELECT wait_event AS w FROM pg_stat_activity WHERE pid = $1`, [pid]);
        return r[0]?.w === 'SyncRep';
      });
    } else {
      console.log('# skipping the commit-before-snapshot race: the external test server cannot be given synchronous_standby_names');
    }

    const before = writers.txns;
    let reports = 0;
    const result = await runInitialLoadUp({ config, store: config.stores[0]!, logger: silentLogger(), chunkRows: 50, onProgress: () => void reports++ });
    assert.ok(writers.txns > before, 'the store kept writing while the load ran');
    assert.equal(result.resumed, false);
    assert.ok(result.rows > 500, `history copied (${result.rows} rows)`);
    assert.ok(reports > 10, `progress reported per chunk (${reports})`);
    const position = (await storedPosition(world))!;
    const snapshot = loadSnapshot(position);
    assert.ok(snapshot, `the up position carries the snapshot: ${position}`);
    if (racing) {
      assert.equal(snapshot.sees(BigInt(raceXid)), false, 'the racing transaction was running for the snapshot');
      await s.server.query(s.db, `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`);
      await racing;
      const seen = await s.server.query(s.db, `SELECT 1 FROM sale WHERE seller = 'race'`);
      assert.equal(seen.length, 1, 'the racing transaction committed');
    }
    await race.end().catch(() => undefined);

    // An agent whose first batch cannot commit (HQ's tables locked) is killed: the position
    // with the snapshot stays, and the next agent skips by it again.
    const lock = new pg.Client({ connectionString: world.hq.url });
    await lock.connect();
    await lock.query('BEGIN');
    await lock.query('LOCK TABLE store_sale, store_customer, customer, store_fiscal_coupon, store_fiscal_coupon_item IN ACCESS EXCLUSIVE MODE');
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    agents.push(agent);
    agent.start();
    await eventually('the agent\'s first batch to wait for HQ', async () => {
      const r = await world.hqQuery(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = 'branchline-up:S1'`);
      return r.length > 0;
    });
    await agent.kill();
    await world.hqQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'branchline-up:S1'`);
    await lock.query('ROLLBACK');
    await lock.end();
    assert.equal(await storedPosition(world), position, 'the killed agent committed nothing');
    agent.start();
    await new Promise((r) => setTimeout(r, 3_000));
    await writers.stop();
    assert.deepEqual(writers.errors, []);
    await assertExact(world);
    if (racing) assert.equal((await world.hqQuery(`SELECT 1 FROM store_sale WHERE seller = 'race'`)).length, 1, 'the racing transaction reached HQ');
    const now = (await storedPosition(world))!;
    assert.equal(loadSnapshot(now), null, `once the stream passed the snapshot, the position is a plain one again (${now})`);
    await agent.stop();
  });

  it('a load killed midway resumes from its checkpoints and ends exact; the pipeline waits for it; a second load and an inexact resume are refused', async () => {
    const world = await storeWithHistory(server, 'K1', 400, 'batch:\n  chunk_rows: 5\n');
    worlds.push(world);
    const s = world.stores[0]!;
    const args = ['snapshot', '--config', world.configFile, '--store', 'K1', '--direction', 'up'];
    const copied = async () =>
      Number((await world.hqQuery<{ n: string }>(`SELECT coalesce(sum(rows_copied), 0)::text AS n FROM branchline.initial_loads WHERE pipeline = 'up:K1'`))[0]!.n);

    const killMidway = async (extra: string[] = []) => {
      const child = spawnCli([...args, ...extra]);
      let output = '';
      child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise((r) => child.once('exit', r));
      child.once('exit', (code) => {
        if (code !== null) console.log(`# the load ended by itself (exit ${code}) before it could be killed:\n${output}`);
      });
      // Midway through the table the daily totals sum (a resume from a new snapshot must mind it).
      await eventually(
        'the load to be midway through fiscal_coupon_item',
        async () =>
          (
            await world.hqQuery(
              `SELECT 1 FROM branchline.initial_loads WHERE pipeline = 'up:K1' AND source_table = 'public.fiscal_coupon_item' AND status = 'copying' AND rows_copied > 0`,
            )
          ).length > 0,
        60_000,
        5,
      );
      child.kill('SIGKILL');
      await exited;
      const state = await world.hqQuery<{ status: string }>(`SELECT status FROM branchline.initial_loads WHERE pipeline = 'up:K1'`);
      assert.ok(state.some((r) => r.status === 'copying'), 'killed before the load finished');
    };

    await killMidway();
    const atKill = await copied();

    // The agent's up pipeline does not start while the load is unfinished.
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    agents.push(agent);
    agent.start();
    await eventually('the pipeline to refuse with BL-S007', async () => (await agent.logText()).includes('BL-S007'));
    assert.equal(await storedPosition(world), null, 'the pipeline applied nothing');
    await agent.stop();

    // Resume; the store writes again once the resumed load has its snapshot.
    const resume = spawnCli(args);
    let out = '';
    let err = '';
    resume.stdout!.on('data', (d) => (out += d));
    resume.stderr!.on('data', (d) => (err += d));
    const code = new Promise<number | null>((r) => resume.once('exit', (c) => r(c)));
    await eventually('the resumed load to take its snapshot', async () => {
      const r = await s.server.query(s.db, `SELECT 1 FROM pg_stat_activity WHERE application_name = 'branchline-snapshot-K1' AND (state = 'idle in transaction' OR query ILIKE 'copy%')`);
      return r.length > 0 || resume.exitCode !== null;
    }, 60_000, 10);
    const writers = startWriters(world);
    assert.equal(await code, 0, `resume failed: ${err}`);
    assert.match(out, /resumed and finished the initial load of store K1 into HQ/);
    assert.ok((await copied()) > atKill, 'the resumed load copied the rest');
    const perTable = await world.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM branchline.initial_loads WHERE pipeline = 'up:K1' AND status = 'done'`);
    assert.ok(Number(perTable[0]!.n) >= 5, 'every table done');

    agent.start();
    await new Promise((r) => setTimeout(r, 2_000));
    await writers.stop();
    assert.deepEqual(writers.errors, []);
    await assertExact(world);
    await agent.stop();

    // Loading again over what HQ holds would double the daily totals.
    const again = await runCli(args);
    assert.equal(again.code, 3, again.stderr);
    assert.match(again.stderr, /BL-S008/);

    // A load killed midway, the store sells meanwhile: finishing from a new snapshot would
    // count those coupons twice in the totals, so the resume refuses.
    await killMidway(['--restart']);
    for (let i = 0; i < 5; i++) await s.workload.coupon();
    const inexact = await runCli(args);
    assert.equal(inexact.code, 3, inexact.stderr + inexact.stdout);
    assert.match(inexact.stderr, /BL-S009/);
  });
});
