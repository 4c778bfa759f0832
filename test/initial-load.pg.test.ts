import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PRODUCT_DIGEST_SQL, PRODUCT_DOWN_MAPPING, PRODUCT_TABLE_SQL, productRowsSql } from '../src/bench/load-workload.js';
import { AgentProcess, startCli } from './support/agent-process.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { createWorld, eventually, type World } from './support/world.js';

/**
 * The down initial load at scale: 1,000,000 HQ products copied into a store
 * by `branchline snapshot` (a child process, the bundle) while HQ keeps
 * changing (small transactions updating, inserting and deleting products,
 * and one long transaction open across the snapshot start that commits
 * late). The load is SIGKILLed midway and resumes from its checkpoint; then
 * the down pipeline catches up and the store equals HQ exactly, every
 * product inserted at the store once. BRANCHLINE_LOAD_ROWS sets the size
 * (for a quick local run); the figures go to stderr.
 */

const ROWS = Number(process.env['BRANCHLINE_LOAD_ROWS'] ?? 1_000_000);
const CHUNK_ROWS = 20_000;

const HQ_SQL = `${PRODUCT_TABLE_SQL};
  CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL);
  ${productRowsSql(ROWS)};
  ANALYZE product;`;

// The store counts every row actually inserted per product (not the upserts that found the row there).
const STORE_SQL = `${PRODUCT_TABLE_SQL};
  CREATE TABLE sale (id int PRIMARY KEY, total numeric(12,2) NOT NULL);
  CREATE TABLE product_inserts (id int PRIMARY KEY, n int NOT NULL);
  CREATE FUNCTION count_product_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO product_inserts AS p (id, n) SELECT id, count(*) FROM new_rows GROUP BY id
      ON CONFLICT (id) DO UPDATE SET n = p.n + EXCLUDED.n;
    RETURN NULL;
  END $$;
  CREATE TRIGGER product_inserts AFTER INSERT ON product REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_product_inserts();
  ALTER TABLE product ENABLE ALWAYS TRIGGER product_inserts;`;

const MAPPINGS: Record<string, string> = {
  'sale-up.yml': `source: sale
target: customer
columns:
  id: id
  name: total
`,
  'product-down.yml': PRODUCT_DOWN_MAPPING,
};

const DIGEST_SQL = PRODUCT_DIGEST_SQL;

type Digest = {
  n: number;
  md5: string;
};

/** Concurrent HQ writers: small transactions of price updates, inserts and deletes, until stopped. */
class HqWriters {
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  readonly counts = { updates: 0, inserts: 0, deletes: 0 };

  constructor(private readonly url: string) {}

  start(): void {
    let nextId = 2_000_000;
    this.loops.push(
      this.loop(async (db) => {
        await db.query('BEGIN');
        for (let i = 0; i < 5; i++) await db.query(`UPDATE product SET price = price + 0.01 WHERE id = $1`, [randomId()]);
        await db.query('COMMIT');
        this.counts.updates += 5;
      }),
      this.loop(async (db) => {
        const id = nextId++;
        await db.query(`INSERT INTO product VALUES ($1::int, 'N' || $1::text, 'new ' || $1::text, 9.99, NULL, 19.00, 'pc', true, date '2026-12-01')`, [id]);
        this.counts.inserts++;
        // Some new rows change again, some go again.
        if (id % 3 === 0) await db.query(`UPDATE product SET description = description || ' (changed)' WHERE id = $1`, [id]);
        if (id % 5 === 0) {
          await db.query(`DELETE FROM product WHERE id = $1`, [id]);
          this.counts.deletes++;
        }
      }),
      this.loop(async (db) => {
        await db.query('BEGIN');
        await db.query(`DELETE FROM product WHERE id = $1`, [randomId()]);
        await db.query(`UPDATE product SET description = 'renamed ' || id, active = NOT active WHERE id = $1`, [randomId()]);
        await db.query('COMMIT');
        this.counts.deletes++;
        this.counts.updates++;
      }),
    );
  }

  /** Stops them; a writer that failed fails the test here. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    if (this.error) throw this.error;
  }

  private error: unknown;

  private loop(step: (db: pg.Client) => Promise<void>): Promise<void> {
    return this.run(step).catch((e: unknown) => {
      this.error ??= e;
      this.stopped = true;
    });
  }

  private async run(step: (db: pg.Client) => Promise<void>): Promise<void> {
    const db = new pg.Client({ connectionString: this.url });
    await db.connect();
    try {
      while (!this.stopped) {
        await step(db);
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      await db.end();
    }
  }
}

/** Ids the small writers touch: never those of the long transaction (no lock waits on it). */
function randomId(): number {
  return 1_000 + Math.floor(Math.random() * (ROWS - 2_000));
}

describe(`initial load of ${ROWS} products while HQ keeps changing`, { timeout: 900_000 }, () => {
  let server: TestServer;
  let world: World;
  let mappingsDir: string;
  let agent: AgentProcess | undefined;
  const storeQuery = async <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => (await world.stores[0]!.pool.query<R>(sql, params)).rows;

  before(async () => {
    server = await startTestServer('initial-load', { max_wal_size: '2GB', checkpoint_timeout: '30min' });
    mappingsDir = await mkdtemp(path.join(os.tmpdir(), 'branchline-maps-'));
    for (const [file, text] of Object.entries(MAPPINGS)) await writeFile(path.join(mappingsDir, file), text);
    const t0 = Date.now();
    world = await createWorld({
      hqServer: server,
      storeServer: server,
      stores: ['S1'],
      hqSql: HQ_SQL,
      storeSql: STORE_SQL,
      mappingsDir,
      extraConfig: `batch:\n  chunk_rows: ${CHUNK_ROWS}\ndown:\n  poll_ms: 200\n  purge_interval_s: 3600\n`,
    });
    process.stderr.write(`# initial load: HQ with ${ROWS} products set up in ${Date.now() - t0} ms\n`);
  });
  after(async () => {
    await agent?.dispose();
    await world?.dispose();
    if (mappingsDir) await rm(mappingsDir, { recursive: true, force: true });
    await server?.dispose();
  });

  it('is killed midway, resumes from its checkpoint, and the down channel then makes the store equal HQ, each product inserted once', async () => {
    const writers = new HqWriters(world.hq.url);
    // The long transaction: it writes before the snapshot starts and commits only after the resumed load is under way.
    const long = new pg.Client({ connectionString: world.hq.url });
    await long.connect();
    await long.query('BEGIN');
    await long.query(`UPDATE product SET price = price + 100, description = 'long ' || id WHERE id <= 200 OR id > $1`, [ROWS - 200]);
    await long.query(`DELETE FROM product WHERE id BETWEEN 300 AND 309`);
    await long.query(`INSERT INTO product VALUES (3000000, 'LONG', 'from the long transaction', 1.00, NULL, 7.00, 'pc', true, date '2026-12-01')`);
    writers.start();

    const args = ['snapshot', '--store', 'S1', '--config', world.configFile];
    const started = Date.now();
    const first = startCli(args);
    // Midway, after some checkpoints: SIGKILL (no chance to clean up).
    let killedAt = 0;
    await eventually(
      'the first load past a third of the rows',
      async () => {
        const r = await storeQuery<{ n: string }>(`SELECT coalesce(sum(rows_copied), 0)::text AS n FROM branchline.initial_loads WHERE pipeline = 'down:S1'`).catch(() => [{ n: '0' }]);
        killedAt = Number(r[0]!.n);
        return killedAt >= ROWS / 3;
      },
      600_000,
      100,
    );
    first.child.kill('SIGKILL');
    assert.equal(await first.exited, null, `the first load was killed (${first.output().stderr})`);
    const firstSecs = (Date.now() - started) / 1000;
    const [checkpoint] = await storeQuery<{ rows_copied: string; status: string; snapshot: string; last_key: string[] }>(
      `SELECT rows_copied::text, status, snapshot, last_key FROM branchline.initial_loads WHERE pipeline = 'down:S1'`,
    );
    const copiedBefore = Number(checkpoint!.rows_copied);
    assert.equal(checkpoint!.status, 'copying');
    assert.ok(copiedBefore >= killedAt && copiedBefore < ROWS, `checkpoint at ${copiedBefore} rows`);
    assert.equal(copiedBefore % CHUNK_ROWS, 0, 'whole chunks only');
    assert.deepEqual(await storeQuery(`SELECT count(*)::int AS n FROM product`), [{ n: copiedBefore }], 'the store holds exactly the checkpointed chunks');

    // Again: it resumes after the checkpoint, with the first snapshot as the down position.
    const t1 = Date.now();
    const second = startCli(args);
    await eventually('the resumed load under way', async () => {
      const r = await storeQuery<{ n: string }>(`SELECT rows_copied::text AS n FROM branchline.initial_loads WHERE pipeline = 'down:S1'`);
      return Number(r[0]!.n) > copiedBefore;
    }, 120_000, 100);
    await long.query(`COMMIT`);
    await long.end();
    const code = await second.exited;
    const secondSecs = (Date.now() - t1) / 1000;
    const out = second.output();
    assert.equal(code, 0, out.stderr);
    const m = /resumed and finished the initial load of store S1: (\d+) rows, (\d+) of them copied by this run/.exec(out.stdout);
    assert.ok(m, out.stdout);
    const total = Number(m[1]);
    const thisRun = Number(m[2]);
    assert.equal(total - thisRun, copiedBefore, 'the resumed run counted on from the checkpoint');
    assert.ok(thisRun < ROWS - copiedBefore + 1_000, `the resumed run copied ${thisRun} rows, not all ${ROWS} again`);
    const [after] = await storeQuery<{ snapshot: string; status: string }>(`SELECT snapshot, status FROM branchline.initial_loads WHERE pipeline = 'down:S1'`);
    assert.deepEqual(after, { snapshot: checkpoint!.snapshot, status: 'done' }, 'the same (first) snapshot throughout');
    const loadSecs = firstSecs + secondSecs;
    process.stderr.write(
      `# initial load: ${total} rows in ${loadSecs.toFixed(1)} s over two runs (first ${copiedBefore} rows in ${firstSecs.toFixed(1)} s until killed, ` +
        `then ${thisRun} in ${secondSecs.toFixed(1)} s), ${Math.round(total / loadSecs)} rows/s overall, ${Math.round(thisRun / secondSecs)} rows/s in the resumed run\n`,
    );

    // The down channel catches up with what HQ changed meanwhile (and the long transaction).
    agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    agent.start();
    await new Promise((r) => setTimeout(r, 3_000)); // writers still writing while the agent streams
    await writers.stop();
    const t2 = Date.now();
    const [hq] = await world.hqQuery<Digest>(DIGEST_SQL);
    await eventually('the store equal to HQ', async () => {
      const [s] = await storeQuery<Digest>(DIGEST_SQL);
      return s!.n === hq!.n && s!.md5 === hq!.md5;
    }, 300_000, 1_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}\n${(await agent!.logText()).slice(-4_000)}`);
    });
    const redone = (await agent.logText()).split('\n').filter((l) => l.includes('redoing the failed batch')).length;
    process.stderr.write(
      `# initial load: the down channel caught up in ${Date.now() - t2} ms after the writers stopped (${writers.counts.updates} updates, ${writers.counts.inserts} inserts, ${writers.counts.deletes} deletes during the run; ${redone} batches redone change by change)\n`,
    );
    // What changed between the first start and the resume is replayed over rows copied after it: as upserts, not plain inserts that fail and have the batch redone change by change.
    assert.equal(redone, 0, 'no batch redone change by change');
    assert.ok(writers.counts.updates > 100 && writers.counts.inserts > 50 && writers.counts.deletes > 50, JSON.stringify(writers.counts));
    // The long transaction's changes are there, below and above the checkpoint.
    assert.deepEqual(await storeQuery(`SELECT count(*)::int AS n FROM product WHERE description LIKE 'long %'`), await world.hqQuery(`SELECT count(*)::int AS n FROM product WHERE description LIKE 'long %'`));
    assert.deepEqual(await storeQuery(`SELECT description FROM product WHERE id = 3000000`), [{ description: 'from the long transaction' }]);
    assert.deepEqual(await storeQuery(`SELECT count(*)::int AS n FROM product WHERE id BETWEEN 300 AND 309`), [{ n: 0 }]);
    // Nothing applied twice: every product the store holds was inserted there once.
    assert.deepEqual(await storeQuery(`SELECT count(*)::int AS n, max(n) AS most FROM product_inserts WHERE n <> 1`), [{ n: 0, most: null }]);
    assert.deepEqual(await storeQuery(`SELECT count(*)::int AS n FROM product p WHERE NOT EXISTS (SELECT 1 FROM product_inserts i WHERE i.id = p.id)`), [{ n: 0 }]);
  });
});
