import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Config } from '../src/config/load.js';
import { BranchlineError } from '../src/core/errors.js';
import { silentLogger } from '../src/core/logger.js';
import { runInitialLoad } from '../src/load/initial-load.js';
import { poolHqReader, type HqReader } from '../src/queries/hq-reader.js';
import type { QueryAnswer, StoreAnswer } from '../src/queries/query-product.js';
import { pricesRoute, productQueries, stockRoute } from '../src/queries/query-routes.js';
import type { Route, RouteRequest } from '../src/http/route.js';
import { runCli } from './support/agent-process.js';
import { assertNoStack, show } from './support/cli-output.js';
import { startInProcess, type InProcess } from './support/in-process.js';
import { eventually, type World } from './support/world.js';

/**
 * Cross-store queries answered from HQ's replicated data: stock (carried up
 * from the stores) and prices (handed down to them), each store with how
 * fresh its data is; the product bound, never spliced; the configuration
 * checked against HQ and the mappings; the CLI through the bundle.
 */

const HQ_SQL = `
  CREATE TABLE store_stock (store_code text NOT NULL, sku text NOT NULL, quantity numeric(12,3) NOT NULL, updated_at timestamptz NOT NULL,
                            PRIMARY KEY (store_code, sku));
  CREATE TABLE store_price (store_code text NOT NULL, product_id int NOT NULL, price numeric(12,2) NOT NULL, PRIMARY KEY (store_code, product_id));
  CREATE TABLE unmapped (store_code text NOT NULL, product_id int NOT NULL, n int, PRIMARY KEY (store_code, product_id));
  CREATE TABLE keyless (store_code text NOT NULL, product_id int NOT NULL, n int);
  CREATE TABLE numbered (store_no int NOT NULL, product_id int NOT NULL, n int, PRIMARY KEY (store_no, product_id));
  INSERT INTO store_price VALUES ('S1', 1, 1.10), ('S2', 1, 1.15), ('S1', 2, 19.90);`;

const STORE_SQL = `
  CREATE TABLE stock (sku text PRIMARY KEY, quantity numeric(12,3) NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE my_price (product_id int PRIMARY KEY, price numeric(12,2) NOT NULL);`;

const MAPPINGS = {
  'stock.yml': `source: stock
target: store_stock
key: [store_code, sku]
columns:
  store_code: store.code
  sku: sku
  quantity: quantity
  updated_at: updated_at
`,
  'price-down.yml': `direction: down
source: store_price
target: my_price
key: [product_id]
route: {column: store_code}
columns:
  product_id: product_id
  price: price
`,
};

const QUERIES = `queries:
  stock: {table: store_stock, product: sku, store: store_code, columns: [quantity, updated_at]}
  prices: {table: store_price, product: product_id, store: store_code, columns: [price]}
`;

const STORES = ['S1', 'S2', 'S3'];

function request(product: string, stores: readonly string[] = []): RouteRequest {
  const query = new URLSearchParams();
  for (const s of stores) query.append('store', s);
  return { caller: 'test', params: { product }, query, body: undefined, signal: new AbortController().signal };
}

async function answer(route: Route, product: string, stores?: readonly string[]): Promise<QueryAnswer> {
  const r = await route.handle(request(product, stores));
  assert.equal(r.status, 200);
  assert.ok('json' in r);
  return r.json as QueryAnswer;
}

async function refused(p: Promise<unknown>): Promise<BranchlineError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof BranchlineError) return e;
    throw e;
  }
  assert.fail('expected a BranchlineError');
}

const at = (a: QueryAnswer, store: string): StoreAnswer => a.stores.find((s) => s.store === store)!;

describe('cross-store queries: stock and prices from HQ', { timeout: 300_000 }, () => {
  let env: InProcess;
  let world: World;
  let config: Config;
  let hq: HqReader;
  let stock: Route;
  let prices: Route;
  const store = (code: string) => world.stores.find((s) => s.code === code)!;
  /** Runs an HQ statement; HQ's clock (ms) just before it and just after it committed. */
  const hqClockAround = async (sql: string): Promise<[number, number]> => {
    const clock = async () => (await world.hqQuery<{ t: Date }>(`SELECT clock_timestamp() AS t`))[0]!.t.getTime();
    const t0 = await clock();
    await world.hqQuery(sql);
    return [t0, await clock()];
  };

  before(async () => {
    env = await startInProcess({
      name: 'queries',
      stores: STORES,
      hqSql: HQ_SQL,
      storeSql: STORE_SQL,
      mappings: MAPPINGS,
      extraConfig: `down:\n  poll_ms: 200\n  purge_interval_s: 3600\n${QUERIES}`,
      beforeAgent: async (w) => {
        const c = await w.config();
        for (const s of c.stores) await runInitialLoad({ config: c, store: s, logger: silentLogger(), chunkRows: 20 });
      },
    });
    world = env.world;
    config = await world.config();
    hq = poolHqReader(config.hq.readUrl);
    const queries = productQueries({ config, hq });
    stock = stockRoute(queries);
    prices = pricesRoute(queries);
  });
  after(async () => {
    await hq?.close();
    await env?.dispose();
  });

  it('a stock change at a store shows in HQ\'s answer, streaming with a lag near 0; a store without the product: found false, values null', async () => {
    await store('S1').pool.query(`INSERT INTO stock (sku, quantity) VALUES ('SKU-1', 12.5), ('SKU-2', 0)`);
    await store('S2').pool.query(`INSERT INTO stock (sku, quantity) VALUES ('SKU-1', 3)`);
    await eventually('SKU-1 of S1 and S2 at HQ', async () => {
      const a = await answer(stock, 'SKU-1');
      return at(a, 'S1').found && at(a, 'S2').found;
    });
    const a = await answer(stock, 'SKU-1');
    assert.equal(a.product, 'SKU-1');
    assert.equal(a.query, 'stock');
    assert.equal(a.table, 'store_stock');
    assert.deepEqual(a.stores.map((s) => [s.store, s.name, s.found]), [['S1', 'S1', true], ['S2', 'S2', true], ['S3', 'S3', false]]);
    // numeric(12,3) exactly as PostgreSQL prints it.
    assert.equal(at(a, 'S1').values['quantity'], '12.500');
    assert.equal(at(a, 'S2').values['quantity'], '3.000');
    assert.match(at(a, 'S1').values['updated_at']!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\+00$/);
    assert.deepEqual(at(a, 'S3').values, { quantity: null, updated_at: null }, 'not stocked');
    const answered = Date.parse(a.answered_at);
    for (const s of a.stores) {
      assert.equal(s.freshness.direction, 'up');
      assert.equal(s.freshness.state, 'streaming', `${s.store}: ${JSON.stringify(s.freshness)}`);
      assert.ok(s.freshness.lag_seconds !== null && s.freshness.lag_seconds < 5, `${s.store} lag ${s.freshness.lag_seconds}`);
      assert.ok(Math.abs(answered - Date.parse(s.freshness.as_of!)) < 5_000, `${s.store} as_of ${s.freshness.as_of} vs ${a.answered_at}`);
    }
    // ?store= narrows the answer (stores in the configuration's order).
    const only = await answer(stock, 'SKU-1', ['S2', 'S3']);
    assert.deepEqual(only.stores.map((s) => s.store), ['S2', 'S3']);
    // A product nobody has: every store answers, none found.
    const none = await answer(stock, 'SKU-404');
    assert.deepEqual(none.stores.map((s) => [s.store, s.found, s.values['quantity']]), [['S1', false, null], ['S2', false, null], ['S3', false, null]]);
  });

  it('prices (down): a store whose reader has not applied HQ\'s latest change shows behind, with as_of before that change', async () => {
    const a0 = await answer(prices, '1');
    assert.deepEqual(a0.stores.map((s) => [s.store, s.found, s.values['price']]), [['S1', true, '1.10'], ['S2', true, '1.15'], ['S3', false, null]]);
    for (const s of a0.stores) assert.equal(s.freshness.direction, 'down');
    await eventually('every down reader in step', async () => (await answer(prices, '1')).stores.every((s) => s.freshness.state === 'streaming' && s.freshness.lag_seconds === 0));

    // S1's down apply waits behind a lock at the store: its reader cannot pass HQ's change. (SHARE, not ACCESS
    // EXCLUSIVE: that one takes an xid, and with HQ on the same server it would hold every reader's window back.)
    const lock = await store('S1').pool.connect();
    try {
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE my_price IN SHARE MODE');
      const [beforeChange, afterChange] = await hqClockAround(`UPDATE store_price SET price = price + 1 WHERE product_id = 1`);
      await eventually('S2 has the new price', async () => (await store('S2').pool.query(`SELECT price::text AS p FROM my_price WHERE product_id = 1`)).rows[0]?.p === '2.15');
      await eventually('S2 in step at HQ', async () => at(await answer(prices, '1'), 'S2').freshness.lag_seconds === 0);
      const a1 = await answer(prices, '1');
      const s1 = at(a1, 'S1').freshness;
      assert.equal(s1.state, 'streaming', JSON.stringify(s1));
      assert.ok(s1.lag_seconds !== null && s1.lag_seconds > 0, `S1 behind: ${JSON.stringify(s1)}`);
      const asOf = Date.parse(s1.as_of!);
      assert.ok(asOf >= beforeChange && asOf <= afterChange, `S1 as_of ${s1.as_of} is when HQ logged the change S1 lacks (${new Date(beforeChange).toISOString()} .. ${new Date(afterChange).toISOString()})`);
      assert.equal(at(a1, 'S1').values['price'], '2.10', 'HQ answers its own price; the freshness says S1 does not have it yet');
      await new Promise((r) => setTimeout(r, 300));
      const a2 = await answer(prices, '1');
      assert.ok(at(a2, 'S1').freshness.lag_seconds! > s1.lag_seconds!, 'the lag grows while S1 stays behind');
      assert.equal(at(a2, 'S1').freshness.as_of, s1.as_of, 'as_of stays at the change S1 lacks');
    } finally {
      await lock.query('ROLLBACK').catch(() => undefined);
      lock.release();
    }
    await eventually('S1 caught up', async () => at(await answer(prices, '1'), 'S1').freshness.lag_seconds === 0);
    assert.equal((await store('S1').pool.query(`SELECT price::text AS p FROM my_price WHERE product_id = 1`)).rows[0]?.p, '2.10');
  });

  it('with the agent stopped: stock says stopped, no lag, as of the last change HQ applied; a write meanwhile is not in the answer; prices say not running once the reader is silent', async () => {
    const before = at(await answer(stock, 'SKU-1'), 'S1');
    const appliedThrough = (await world.hqQuery<{ t: Date }>(`SELECT source_commit_time AS t FROM branchline.pipelines WHERE pipeline = 'up:S1'`))[0]!.t;
    await env.stopAgent();
    try {
      await store('S1').pool.query(`UPDATE stock SET quantity = 11 WHERE sku = 'SKU-1'`);
      const [beforeChange, afterChange] = await hqClockAround(`UPDATE store_price SET price = 5 WHERE store_code = 'S2' AND product_id = 1`);
      const a = await answer(stock, 'SKU-1');
      const s1 = at(a, 'S1');
      assert.equal(s1.values['quantity'], before.values['quantity'], 'HQ does not have the write yet');
      assert.deepEqual(s1.freshness, { direction: 'up', lag_seconds: null, as_of: appliedThrough.toISOString(), state: 'stopped' });
      // The down reader reports only by moving its position: HQ calls it not running once that is 30 s old.
      await eventually(
        'S2\'s down reader not running',
        async () => at(await answer(prices, '1'), 'S2').freshness.state === 'not running',
        60_000,
        1_000,
      );
      const p = at(await answer(prices, '1'), 'S2').freshness;
      assert.equal(p.lag_seconds, null);
      const asOf = Date.parse(p.as_of!);
      assert.ok(asOf >= beforeChange && asOf <= afterChange, `S2 as_of ${p.as_of} is when HQ logged the change S2 lacks (${new Date(beforeChange).toISOString()} .. ${new Date(afterChange).toISOString()})`);
    } finally {
      await env.startAgent();
    }
    await eventually('S1\'s write at HQ', async () => at(await answer(stock, 'SKU-1'), 'S1').values['quantity'] === '11.000');
    await eventually('S2 in step again', async () => at(await answer(prices, '1'), 'S2').freshness.lag_seconds === 0);
    assert.equal(at(await answer(stock, 'SKU-1'), 'S1').freshness.state, 'streaming');
  });

  it('injection attempts in the product are bound, never spliced: no rows or BL-H002, every table intact', async () => {
    const count = async () => (await world.hqQuery<{ n: number; p: number }>(`SELECT (SELECT count(*)::int FROM store_stock) AS n, (SELECT count(*)::int FROM store_price) AS p`))[0];
    const was = await count();
    const attempts = ['1; DROP TABLE store_stock', "' OR 1=1 --", "1' OR '1'='1", '"', "'", 'SKU-1\'; DELETE FROM store_price; --', 'x'.repeat(900)];
    for (const product of attempts) {
      // stock: the product column is text, so each is just a product nobody has.
      const a = await answer(stock, product);
      assert.equal(a.product, product);
      assert.deepEqual(a.stores.map((s) => s.found), [false, false, false], `stock ${JSON.stringify(product)}`);
      // prices: the column is an integer; none of them is one.
      const e = await refused(answer(prices, product));
      assert.equal(e.code, 'BL-H002', `prices ${JSON.stringify(product)}: ${e.message}`);
      assert.match(e.message, /is not a valid integer \(the type of store_price\.product_id\)/);
    }
    const abc = await refused(answer(prices, 'abc'));
    assert.equal(abc.message, 'BL-H002 the product "abc" is not a valid integer (the type of store_price.product_id): invalid input syntax for type integer: "abc". Give a value of that type, e.g. the product\'s product_id as HQ stores it.');
    const big = await refused(answer(prices, '99999999999'));
    assert.equal(big.code, 'BL-H002', 'out of range for integer');
    const nul = await refused(answer(stock, 'SKU\0-1'));
    assert.equal(nul.message, 'BL-H002 the product "SKU\\u0000-1" contains a NUL character, which no product value can hold. Give a value of store_stock.sku.');
    const long = await refused(answer(stock, 'x'.repeat(10_240)));
    assert.equal(long.message, 'BL-H002 the product is 10240 characters long; at most 1000 are taken. Give a value of store_stock.sku.');
    const unknown = await refused(answer(stock, 'SKU-1', ['S1', 'S9']));
    assert.equal(unknown.message, 'BL-H002 store "S9" is not configured, so HQ cannot answer for it. Ask for one of the configured stores: S1, S2, S3.');
    assert.deepEqual(await count(), was);
    assert.equal(at(await answer(stock, 'SKU-1'), 'S1').found, true, 'the stock table still answers');
  });

  it('BL-Q001 and BL-Q002: not configured, table or columns that do not fit HQ, a table no mapping carries', async () => {
    const ask = (queries: Partial<Config['queries']>, name: 'stock' | 'prices' = 'stock') =>
      refused(productQueries({ config: { ...config, queries: { stock: null, prices: null, ...queries } }, hq }).answer(name, '1'));
    const q = (table: string, columns: string[] = ['n'], product = 'product_id', storeCol = 'store_code') => ({ table, product, store: storeCol, columns });
    const file = config.file;

    const unconfigured = await ask({}, 'prices');
    assert.equal(unconfigured.code, 'BL-Q001');
    assert.equal(unconfigured.message, `BL-Q001 the prices query is not configured: ${file} has no \`queries: prices:\` entry. Add \`queries: prices: {table: store_price, product: product_id, store: store_code, columns: [price]}\` naming the HQ table and its columns (docs/queries.md).`);
    const noRoute = await refused(pricesRoute({ config: { ...config, queries: { stock: null, prices: null } }, hq }).handle(request('1')));
    assert.equal(noRoute.code, 'BL-Q001', 'the route says the same');

    const cases: [Partial<Config['queries']>, string][] = [
      [{ stock: q('nosuch') }, `BL-Q002 the stock query does not fit HQ: its table nosuch does not exist at HQ. Name the HQ table that holds one row per store and product, as "table" or "schema.table" (queries.stock in ${file}).`],
      [{ stock: q('store_stock', ['qty', 'quantity', 'price'], 'sku') }, `BL-Q002 the stock query does not fit HQ: store_stock at HQ has no column qty, price. Its columns are: store_code, sku, quantity, updated_at. Correct the column names (queries.stock in ${file}).`],
      [{ stock: q('numbered', ['n'], 'product_id', 'store_no') }, `BL-Q002 the stock query does not fit HQ: its store column store_no is integer, not text: it cannot hold store codes such as S1. Name the column of numbered that holds the store code. Its columns are: store_no, product_id, n (queries.stock in ${file}).`],
      [{ stock: q('keyless') }, `BL-Q002 the stock query does not fit HQ: keyless has no primary key or unique key on (store_code, product_id): a store could have two rows for one product. Add one, e.g. ALTER TABLE keyless ADD PRIMARY KEY (store_code, product_id), or name a table that has one (queries.stock in ${file}).`],
      [{ stock: q('unmapped') }, `BL-Q002 the stock query does not fit HQ: no mapping file carries unmapped between the stores and HQ (no up mapping writes it, no down mapping reads it), so nothing says how fresh each store's rows are. Name a table an up mapping targets or a down mapping reads, or add that mapping file to ${config.mappingsDir} (queries.stock in ${file}).`],
    ];
    for (const [queries, message] of cases) {
      const e = await ask(queries);
      assert.equal(e.code, 'BL-Q002');
      assert.equal(e.message, message);
    }
  });

  it('reads through hq.read_url in a READ ONLY transaction; a role with the grants docs/queries.md lists is enough', async () => {
    const e = await hq.read((db) => db.query('CREATE TABLE not_here (id int)')).then(
      () => null,
      (err: { code?: string }) => err,
    );
    assert.equal(e?.code, '25006', 'a read-only transaction refuses writes');
    assert.equal((await world.hqQuery(`SELECT to_regclass('not_here') IS NULL AS gone`))[0]?.['gone'], true);

    await world.hqQuery(`CREATE ROLE branchline_read LOGIN PASSWORD 'read-only-test'`);
    await world.hqQuery(`GRANT USAGE ON SCHEMA public, branchline TO branchline_read`);
    await world.hqQuery(`GRANT SELECT ON store_stock, store_price TO branchline_read`);
    await world.hqQuery(
      `GRANT SELECT ON branchline.pipelines, branchline.pipeline_status, branchline.change_log, branchline.change_log_readers, branchline.change_log_purged TO branchline_read`,
    );
    const url = new URL(world.hq.url);
    url.username = 'branchline_read';
    url.password = 'read-only-test';
    const reader = poolHqReader(url.toString());
    try {
      const queries = productQueries({ config: { ...config, hq: { ...config.hq, readUrl: url.toString() } }, hq: reader });
      const a = await queries.answer('stock', 'SKU-1');
      assert.equal(at(a, 'S1').values['quantity'], '11.000');
      const p = await queries.answer('prices', '2');
      assert.deepEqual(p.stores.map((s) => [s.store, s.values['price']]), [['S1', '19.90'], ['S2', null], ['S3', null]]);
    } finally {
      await reader.close();
    }
  });

  it('the CLI prints the table and --json (through the bundle); a bad product is exit 2 with the same sentence, no stack', async () => {
    const t = await runCli(['stock', 'SKU-1', '--config', world.configFile]);
    assert.equal(t.code, 0, show(t));
    const lines = t.stdout.split('\n');
    assert.match(lines[0]!, /^STORE\s+NAME\s+QUANTITY\s+UPDATED_AT\s+LAG$/);
    assert.match(lines[1]!, /^S1\s+S1\s+11\.000\s+\d{4}-\d\d-\d\d \S+\s+\d+\.\ds$/);
    assert.match(lines[2]!, /^S2\s+S2\s+3\.000\s+/);
    assert.match(lines[3]!, /^S3\s+S3\s+-\s+-\s+\d+\.\ds$/);
    assert.ok(t.stdout.includes('-: HQ has no row of product SKU-1 for that store (store_stock).'), show(t));

    const j = await runCli(['prices', '1', '--store', 'S2', '--store', 'S1', '--json', '--config', world.configFile]);
    assert.equal(j.code, 0, show(j));
    const parsed = JSON.parse(j.stdout) as QueryAnswer;
    assert.equal(parsed.query, 'prices');
    assert.deepEqual(parsed.stores.map((s) => [s.store, s.found, s.values['price'], s.freshness.direction]), [['S1', true, '2.10', 'down'], ['S2', true, '5.00', 'down']]);

    const leading = await runCli(['stock', '0042', '--json', '--config', world.configFile]);
    assert.equal(leading.code, 0, show(leading));
    assert.equal((JSON.parse(leading.stdout) as QueryAnswer).product, '0042', 'the product stays text');

    const bad = await runCli(['prices', 'abc', '--config', world.configFile]);
    assert.equal(bad.code, 2, show(bad));
    assert.equal(bad.stderr, 'error: BL-H002 the product "abc" is not a valid integer (the type of store_price.product_id): invalid input syntax for type integer: "abc". Give a value of that type, e.g. the product\'s product_id as HQ stores it.\n');
    assertNoStack(bad);
  });
});
