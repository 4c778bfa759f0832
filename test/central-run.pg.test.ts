import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { pushConfig } from '../src/config/central.js';
import { migrateLatest } from '../src/state/migrate.js';
import { AgentProcess, runCli } from './support/agent-process.js';
import { assertNoStack, show } from './support/cli-output.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { eventually } from './support/world.js';

/**
 * `branchline run --store S --store-url URL --hq-url URL`: a store agent with
 * no configuration file, a child process of the bundled CLI, running the
 * real up and down pipelines from the configuration HQ published, switching
 * when HQ publishes another version and refusing one that does not fit the
 * store's tables. Exactly once across the switch is counted two ways: every
 * sale once at HQ, and HQ's totals (an aggregate mapping adds each sale to
 * them, so a sale applied twice would count twice).
 */

const HQ_SQL = `
  CREATE TABLE store_sale (store_code text NOT NULL, sale_id int NOT NULL, amount numeric(12,2) NOT NULL, label text NOT NULL, PRIMARY KEY (store_code, sale_id));
  CREATE TABLE sales_total (store_code text PRIMARY KEY, sales bigint NOT NULL, amount numeric(14,2) NOT NULL);
  CREATE TABLE product (id int PRIMARY KEY, description text NOT NULL, price numeric(12,2) NOT NULL);
  INSERT INTO product SELECT g, 'product ' || g, g + 0.99 FROM generate_series(1, 20) g;`;

const STORE_SQL = `
  CREATE TABLE sale (id int PRIMARY KEY, amount numeric(12,2) NOT NULL);
  CREATE TABLE product (id int PRIMARY KEY, description text NOT NULL, price numeric(12,2) NOT NULL);`;

/** The store's URL and HQ's are never in the published file: each agent is given its own. */
const CONFIG = `hq:
  url: \${HQ_URL}
stores:
  - code: S001
    url: \${S001_URL}
  - code: S002
    url: \${S002_URL}
mappings: mappings
retry:
  initial_ms: 100
  max_ms: 1000
source:
  status_interval_ms: 500
  silence_timeout_ms: 5000
down:
  poll_ms: 200
`;

const saleMapping = (label: string, amount = 'amount') => `source: sale
target: store_sale
columns:
  store_code: store.code
  sale_id: id
  amount: ${amount}
  label: ${label}
`;

const MAPPINGS: Record<string, string> = {
  'sale.yml': saleMapping(`"'v1'"`),
  'sale-total.yml': `source: sale
target: sales_total
columns:
  store_code: store.code
  sales: count()
  amount: sum(amount)
`,
  'product-down.yml': `direction: down
source: product
target: product
columns:
  id: id
  description: description
  price: price
`,
};

describe('run from the central configuration (child process)', { timeout: 300_000 }, () => {
  let server: TestServer;
  let tmp: string;
  let hqDb: string;
  let hqUrl: string;
  let storeDb: string;
  let storeUrl: string;
  let cacheDir: string;
  let cfgDir: string;
  let agent: AgentProcess;
  let store: pg.Pool;
  /** A second store with its own agent, to show each agent runs its own store only. */
  let s002Url: string;
  let s002: pg.Pool;
  let agent2: AgentProcess;
  /** Sales written at the store so far (ids 1..written). */
  let written = 0;

  const hq = <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => server.query<R>(hqDb, sql, params);
  const atStore = async <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => (await store.query<R>(sql, params)).rows;
  const push = async (files: Record<string, string>) => {
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(cfgDir, 'mappings', name), text);
    return pushConfig({ hqUrl, configFile: path.join(cfgDir, 'branchline.yml'), publishedBy: 'test@hq' });
  };
  const logged = async (message: string, of = agent) =>
    (await of.logText())
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['message'] === message);
  const s002Labels = async () => (await hq<{ label: string; n: number }>(`SELECT label, count(*)::int AS n FROM store_sale WHERE store_code = 'S002' GROUP BY label ORDER BY label`));
  /** One sale per store transaction, ids going up. */
  const sell = async (n: number) => {
    for (let i = 0; i < n; i++) {
      written++;
      await store.query(`INSERT INTO sale VALUES ($1, $2)`, [written, (written % 17) + 0.25]);
    }
  };
  /** HQ holds every sale exactly once and its totals equal the store's, or says what differs. */
  const hqMatchesStore = async () => {
    const [s] = await atStore<{ n: number; total: string; ids: number[] }>(`SELECT count(*)::int AS n, sum(amount)::text AS total, array_agg(id ORDER BY id) AS ids FROM sale`);
    const [h] = await hq<{ n: number; ids: number[] }>(`SELECT count(*)::int AS n, array_agg(sale_id ORDER BY sale_id) AS ids FROM store_sale WHERE store_code = 'S001'`);
    const totals = await hq<{ sales: string; amount: string }>(`SELECT sales::text, amount::text FROM sales_total WHERE store_code = 'S001'`);
    return { store: s!, hq: h!, totals };
  };
  /** The oid of HQ's capture trigger on product (a new one each time it is created). */
  const captureTrigger = async () =>
    (await hq<{ oid: string }>(`SELECT oid::text FROM pg_trigger WHERE tgrelid = 'product'::regclass AND tgname = 'branchline_capture'`))[0]?.oid ?? null;
  const caughtUp = async () => {
    const m = await hqMatchesStore();
    return m.hq.n === m.store.n && m.totals[0]?.sales === String(m.store.n);
  };
  const assertExact = async () => {
    const m = await hqMatchesStore();
    assert.equal(m.store.n, written);
    assert.deepEqual(m.hq.ids, m.store.ids, 'every sale once at HQ');
    assert.deepEqual(m.totals, [{ sales: String(written), amount: m.store.total }], 'each sale added to the totals once');
  };

  before(async () => {
    server = await startTestServer('central-run');
    tmp = await mkdtemp(path.join(os.tmpdir(), 'branchline-central-run-'));
    hqDb = await server.createDatabase('hq');
    await server.query(hqDb, HQ_SQL);
    hqUrl = server.url(hqDb);
    // HQ's own install (branchline's schema, with the table of configuration versions).
    await migrateLatest(hqUrl);
    storeDb = await server.createDatabase('store_s001');
    await server.query(storeDb, STORE_SQL);
    storeUrl = server.url(storeDb);
    store = new pg.Pool({ connectionString: storeUrl, max: 2 });
    store.on('error', () => undefined);
    cfgDir = path.join(tmp, 'hq-config');
    await mkdir(path.join(cfgDir, 'mappings'), { recursive: true });
    await writeFile(path.join(cfgDir, 'branchline.yml'), CONFIG);
    const s002Db = await server.createDatabase('store_s002');
    await server.query(s002Db, STORE_SQL);
    s002Url = server.url(s002Db);
    s002 = new pg.Pool({ connectionString: s002Url, max: 1 });
    s002.on('error', () => undefined);
    cacheDir = path.join(tmp, 'cache');
    agent = new AgentProcess(null, path.join(tmp, 'agent.log'), ['--store', 'S001', '--store-url', storeUrl, '--hq-url', hqUrl, '--cache-dir', cacheDir]);
  });
  after(async () => {
    await agent?.dispose();
    await agent2?.dispose();
    await store?.end().catch(() => undefined);
    await s002?.end().catch(() => undefined);
    await server?.dispose();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('wrong options: BL-U003 with what to do, exit 2, no stack', async () => {
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['run', '--config', 'branchline.yml', '--store', 'S001', '--store-url', 'postgres://x@localhost/s', '--hq-url', 'postgres://x@localhost/hq'], {}, /given both --config and the options of a store configured from HQ/],
      [['run', '--store', 'S001', '--hq-url', 'postgres://x@localhost/hq'], {}, /needs the store's database URL/],
      [['run', '--store', 'S001', '--store-url', 'postgres://x@localhost/s'], { BRANCHLINE_HQ_URL: '' }, /needs HQ's database URL/],
      [['run', '--store', 'S001', '--store', 'S002', '--store-url', 'postgres://x@localhost/s', '--hq-url', 'postgres://x@localhost/hq'], {}, /serves one store; it was given 2 \(S001, S002\)/],
      [['install', '--hq-url', 'postgres://x@localhost/hq'], { BRANCHLINE_STORE_URL: 'postgres://x@localhost/s', BRANCHLINE_STORE: '' }, /`branchline install` configured from HQ needs the store's code/],
      [['config', 'pull', '--store', 'S001', '--hq-url', 'postgres://x@localhost/hq'], { BRANCHLINE_STORE_URL: '' }, /`branchline config pull` configured from HQ needs the store's database URL/],
    ];
    for (const [args, env, message] of cases) {
      const r = await runCli(args, env);
      assert.equal(r.code, 2, show(r));
      assert.match(r.stderr, /^error: BL-U003 /m, show(r));
      assert.match(r.stderr, message, show(r));
      assertNoStack(r);
    }
  });

  it('a new store: install and snapshot from HQ, then run; its sales reach HQ and HQ master data reaches it', async () => {
    const v1 = await push(MAPPINGS);
    assert.equal(v1.version, 1);
    // What the agent will do, checked first with only the environment.
    const pulled = await runCli(['config', 'pull', '--cache-dir', cacheDir], { BRANCHLINE_STORE: 'S001', BRANCHLINE_STORE_URL: storeUrl, BRANCHLINE_HQ_URL: hqUrl });
    assert.equal(pulled.code, 0, show(pulled));
    assert.match(pulled.stdout, /^It checks out for store S001: 3 mapping files, the store at 127\.0\.0\.1:\d+\/store_s001_\w+, HQ at 127\.0\.0\.1:\d+\/hq_\w+\.$/m, show(pulled));
    const installed = await runCli(['install', '--store', 'S001', '--store-url', storeUrl, '--hq-url', hqUrl, '--cache-dir', cacheDir]);
    assert.equal(installed.code, 0, show(installed));
    assert.match(installed.stdout, /^installed for store S001 from configuration version 1 published at HQ$/m, show(installed));
    assert.match(installed.stdout, /created replication slot "branchline_s001"/, show(installed));
    // The URLs from the environment this time (they need not be on a command line `ps` shows).
    const loaded = await runCli(['snapshot', '--store', 'S001', '--cache-dir', cacheDir], { BRANCHLINE_STORE_URL: storeUrl, BRANCHLINE_HQ_URL: hqUrl });
    assert.equal(loaded.code, 0, show(loaded));
    assert.match(loaded.stdout, /finished the initial load of store S001: 20 rows/, show(loaded));

    // The agent creates HQ's capture trigger of a down table when it is missing (here: dropped by hand, nothing written meanwhile).
    await hq(`DROP TRIGGER branchline_capture ON product`);
    agent.start();
    await eventually('version 1 running', async () => (await logged('running configuration version 1')).length === 1, 30_000);
    await eventually('the capture trigger back', async () => (await captureTrigger()) !== null, 30_000);
    await sell(40);
    await eventually('the 40 sales at HQ', caughtUp, 30_000);
    await assertExact();
    assert.deepEqual(await hq(`SELECT DISTINCT label FROM store_sale`), [{ label: 'v1' }]);

    await hq(`UPDATE product SET price = 42.42 WHERE id = 3`);
    await hq(`INSERT INTO product VALUES (21, 'product 21', 7.00)`);
    await eventually('the HQ changes at the store', async () => {
      const rows = await atStore<{ id: number; price: string }>(`SELECT id, price::text FROM product WHERE id IN (3, 21) ORDER BY id`);
      return JSON.stringify(rows) === JSON.stringify([{ id: 3, price: '42.42' }, { id: 21, price: '7.00' }]);
    }, 30_000);
    assert.deepEqual(await atStore(`SELECT count(*)::int AS n FROM product`), [{ n: 21 }]);
    // Only its own store: S002 is in the published file but this agent runs no pipeline for it.
    assert.deepEqual(await hq(`SELECT pipeline FROM branchline.pipelines ORDER BY 1`), [{ pipeline: 'up:S001' }]);

    // S002 joins the same way (the URLs from the environment for install this time), with an agent of its own.
    const cache2 = path.join(tmp, 'cache-s002');
    const installed2 = await runCli(['install', '--cache-dir', cache2], { BRANCHLINE_STORE: 'S002', BRANCHLINE_STORE_URL: s002Url, BRANCHLINE_HQ_URL: hqUrl });
    assert.equal(installed2.code, 0, show(installed2));
    const loaded2 = await runCli(['snapshot', '--store', 'S002', '--store-url', s002Url, '--hq-url', hqUrl, '--cache-dir', cache2]);
    assert.equal(loaded2.code, 0, show(loaded2));
    assert.match(loaded2.stdout, /finished the initial load of store S002: 21 rows/, show(loaded2));
    agent2 = new AgentProcess(null, path.join(tmp, 'agent-s002.log'), ['--store', 'S002', '--store-url', s002Url, '--hq-url', hqUrl, '--cache-dir', cache2]);
    agent2.start();
    await eventually('S002 running version 1', async () => (await logged('running configuration version 1', agent2)).length === 1, 30_000);
    for (let id = 1; id <= 5; id++) await s002.query(`INSERT INTO sale VALUES ($1, 10.00)`, [id]);
    await eventually('the S002 sales at HQ', async () => JSON.stringify(await s002Labels()) === JSON.stringify([{ label: 'v1', n: 5 }]), 30_000);
    assert.deepEqual(await hq(`SELECT store_code, sales::int, amount::text FROM sales_total ORDER BY 1`), [
      { store_code: 'S001', sales: 40, amount: (await hqMatchesStore()).store.total },
      { store_code: 'S002', sales: 5, amount: '50.00' },
    ]);
    assert.deepEqual(await hq(`SELECT pipeline FROM branchline.pipelines ORDER BY 1`), [{ pipeline: 'up:S001' }, { pipeline: 'up:S002' }]);
  });

  it('a new version with a changed column expression: the agent switches while the store sells, nothing lost or applied twice', async () => {
    const trigger = await captureTrigger();
    assert.ok(trigger);
    let selling = true;
    const seller = (async () => {
      while (selling) {
        await sell(1);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 500));
      const v2 = await push({ 'sale.yml': saleMapping(`"'v2:' || store.code"`) });
      assert.equal(v2.version, 2);
      await eventually('version 2 running', async () => (await logged('running configuration version 2')).length === 1, 30_000);
      await new Promise((r) => setTimeout(r, 1_500));
    } finally {
      selling = false;
      await seller;
    }
    assert.equal((await logged('configuration version 2 published; restarting the pipelines')).length, 1);
    await eventually('every sale at HQ', caughtUp, 30_000);
    await assertExact();
    const labels = await hq<{ label: string; n: number; first: number; last: number }>(
      `SELECT label, count(*)::int AS n, min(sale_id) AS first, max(sale_id) AS last FROM store_sale WHERE store_code = 'S001' GROUP BY label ORDER BY first`,
    );
    assert.deepEqual(labels.map((l) => l.label), ['v1', 'v2:S001'], JSON.stringify(labels));
    // One switch point in the store's order: every sale before it by version 1, every one after by version 2.
    assert.ok(labels[0]!.last < labels[1]!.first, JSON.stringify(labels));
    assert.ok(labels[1]!.n > 0 && labels[0]!.n > 40, JSON.stringify(labels));
    assert.equal(labels[0]!.n + labels[1]!.n, written);
    process.stderr.write(`# central run: ${written} sales, ${labels[0]!.n} by version 1 and ${labels[1]!.n} by version 2, each once\n`);

    await hq(`UPDATE product SET description = 'after the switch' WHERE id = 5`);
    await eventually('the down pipeline after the switch', async () => (await atStore<{ d: string }>(`SELECT description AS d FROM product WHERE id = 5`))[0]?.d === 'after the switch', 30_000);

    // S002's agent took version 2 too, on its own.
    await eventually('S002 running version 2', async () => (await logged('running configuration version 2', agent2)).length === 1, 30_000);
    await eventually('S002 pipelines started on version 2', async () => (await agent2.logText()).split('down pipeline starting').length === 3, 30_000);
    // Two agents switched, neither rewrote HQ's existing trigger (a rewrite drops it for a moment).
    assert.equal(await captureTrigger(), trigger);
    for (let id = 6; id <= 8; id++) await s002.query(`INSERT INTO sale VALUES ($1, 10.00)`, [id]);
    await eventually('the later S002 sales at HQ by version 2', async () => JSON.stringify(await s002Labels()) === JSON.stringify([{ label: 'v1', n: 5 }, { label: 'v2:S002', n: 3 }]), 30_000);
    await eventually('the description at S002', async () => (await s002.query<{ d: string }>(`SELECT description AS d FROM product WHERE id = 5`)).rows[0]?.d === 'after the switch', 30_000);
  });

  it('a version that does not fit the store\'s tables is logged with its problems and not run; version 2 keeps replicating', async () => {
    // push checks syntax and schema only; the tables are each store's to check.
    const v3 = await push({ 'sale.yml': saleMapping(`"'v3'"`, 'amount_cents') });
    assert.equal(v3.version, 3);
    await eventually('the refusal logged', async () => (await logged('configuration version 3 cannot run here; still running version 2')).length === 1, 30_000);
    const [refusal] = await logged('configuration version 3 cannot run here; still running version 2');
    assert.equal(refusal!['level'], 'error');
    const problems = refusal!['problems'] as string[];
    assert.ok(
      problems.some((p) => p.includes(path.join(cacheDir, 'v3', 'mappings', 'sale.yml')) && p.includes('amount_cents')),
      JSON.stringify(refusal),
    );
    const before = written;
    await sell(15);
    await hq(`UPDATE product SET price = 1.23 WHERE id = 7`);
    await eventually('the 15 new sales at HQ', caughtUp, 30_000);
    await assertExact();
    assert.deepEqual(await hq(`SELECT DISTINCT label FROM store_sale WHERE sale_id > $1`, [before]), [{ label: 'v2:S001' }]);
    assert.deepEqual(await hq(`SELECT count(*)::int AS n FROM store_sale WHERE label = 'v3'`), [{ n: 0 }]);
    await eventually('the price at the store', async () => (await atStore<{ p: string }>(`SELECT price::text AS p FROM product WHERE id = 7`))[0]?.p === '1.23', 30_000);
    assert.equal((await logged('running configuration version 3')).length, 0, 'version 3 never ran');
    await eventually('S002 refusing version 3', async () => (await logged('configuration version 3 cannot run here; still running version 2', agent2)).length === 1, 30_000);
    assert.equal((await logged('running configuration version 3', agent2)).length, 0);
    await s002.query(`INSERT INTO sale VALUES (9, 10.00)`);
    await eventually('S002 still replicating', async () => JSON.stringify(await s002Labels()) === JSON.stringify([{ label: 'v1', n: 5 }, { label: 'v2:S002', n: 4 }]), 30_000);
    assert.deepEqual(await hq(`SELECT sales::int, amount::text FROM sales_total WHERE store_code = 'S002'`), [{ sales: 9, amount: '90.00' }]);
    assert.equal(await agent2.stop(), 0);

    // Another one that does not fit, refused the same way.
    assert.equal((await push({ 'sale.yml': saleMapping(`"'v4'"`, 'amount_cents') })).version, 4);
    await eventually('version 4 refused', async () => (await logged('configuration version 4 cannot run here; still running version 2')).length === 1, 30_000);

    // SIGTERM: a clean stop.
    assert.equal(await agent.stop(), 0);
    assert.equal((await logged('agent stopped')).length, 1);
  });

  it('restarted while the three newest versions do not fit, the agent runs the cached version it ran before', async () => {
    // One more that does not fit, published while the agent is stopped: it finds it at start.
    assert.equal((await push({ 'sale.yml': saleMapping(`"'v5'"`, 'amount_cents') })).version, 5);
    agent.start();
    for (const [from, to] of [[5, 4], [4, 3], [3, 2]])
      await eventually(`the fallback from ${from} to ${to} logged`, async () => (await logged(`configuration version ${from} cannot run here; starting from the cached configuration version ${to}`)).length === 1, 30_000);
    await eventually('version 2 running again', async () => (await logged('running configuration version 2')).length === 2, 30_000);
    for (const v of [3, 4, 5]) assert.equal((await logged(`running configuration version ${v}`)).length, 0, `version ${v} never ran`);
    const before = written;
    await sell(10);
    await eventually('the 10 new sales at HQ', caughtUp, 30_000);
    await assertExact();
    assert.deepEqual(await hq(`SELECT DISTINCT label FROM store_sale WHERE store_code = 'S001' AND sale_id > $1`, [before]), [{ label: 'v2:S001' }]);
    assert.equal(await agent.stop(), 0);
    // The cache kept version 2, the one it runs, beside the three newest.
    assert.deepEqual((await readdir(cacheDir)).filter((n) => n.startsWith('v')).sort(), ['v2', 'v3', 'v4', 'v5']);
  });
});
