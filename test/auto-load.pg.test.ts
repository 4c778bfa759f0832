import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Agent } from '../src/agent/agent.js';
import { createLogger, silentLogger } from '../src/core/logger.js';
import { runInitialLoad } from '../src/load/initial-load.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { within } from './support/stall.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { createWorld, eventually, type World } from './support/world.js';

/**
 * `down.initial_load`: with `manual` a store that was never loaded waits for
 * `branchline snapshot` (BL-S007) and gets nothing; with `auto` (the
 * default) the agent loads it before its down pipeline streams, and resumes
 * a load that stopped midway from its checkpoint instead of starting over.
 */
const HQ_SQL = `
  CREATE TABLE product (id int PRIMARY KEY, description text NOT NULL, price numeric(12,2) NOT NULL);
  INSERT INTO product SELECT g, 'product ' || g, (g % 97) + 0.49 FROM generate_series(1, 2000) g;`;
const STORE_SQL = `
  CREATE TABLE product (id int PRIMARY KEY, description text NOT NULL, price numeric(12,2) NOT NULL);
  -- counts every insert per product: a row copied twice would show here
  CREATE TABLE product_inserts (id int PRIMARY KEY, n int NOT NULL);
  CREATE FUNCTION count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO product_inserts VALUES (NEW.id, 1) ON CONFLICT (id) DO UPDATE SET n = product_inserts.n + 1;
    RETURN NEW;
  END $$;
  CREATE TRIGGER count_insert AFTER INSERT ON product FOR EACH ROW EXECUTE FUNCTION count_insert();
  ALTER TABLE product ENABLE ALWAYS TRIGGER count_insert;`;
const PRODUCT_DOWN = `direction: down
source: product
target: product
columns:
  id: id
  description: description
  price: price
`;

describe('down.initial_load: the agent loads a store that was never loaded', { timeout: 180_000 }, () => {
  let server: TestServer;
  let world: World;
  let mappingsDir: string;
  const logLines: Record<string, unknown>[] = [];
  let baseConfig: string | undefined;
  const store = <R extends Record<string, unknown>>(sql: string) => world.stores[0]!.server.query(world.stores[0]!.db, sql) as Promise<R[]>;

  const runAgent = async (initialLoad: 'auto' | 'manual', until: (a: Agent) => Promise<boolean>, what: string, extraConfig = '') => {
    baseConfig ??= await readFile(world.configFile, 'utf8');
    await writeFile(world.configFile, `${baseConfig}\ndown:\n  initial_load: ${initialLoad}\n  poll_ms: 200\n${extraConfig}`);
    const capture = new Writable({
      write(chunk: Buffer, _e, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logLines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const agent = new Agent({ config: await world.config(), logger: createLogger({ level: 'info', stream: capture }) });
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    try {
      await eventually(what, () => until(agent), 60_000);
    } finally {
      controller.abort();
      await running;
    }
  };

  before(async () => {
    server = await startTestServer('auto-load');
    mappingsDir = await mkdtemp(path.join(os.tmpdir(), 'branchline-maps-'));
    await chmod(mappingsDir, 0o755);
    await writeFile(path.join(mappingsDir, 'product-down.yml'), PRODUCT_DOWN);
    world = await createWorld({ hqServer: server, storeServer: server, stores: ['S1'], hqSql: HQ_SQL, storeSql: STORE_SQL, mappingsDir });
  });
  after(async () => {
    await world?.dispose();
    if (mappingsDir) await rm(mappingsDir, { recursive: true, force: true });
    await server?.dispose();
  });

  it('manual: the down pipeline waits for `branchline snapshot` (BL-S007) and the store gets nothing', async () => {
    await runAgent('manual', async (a) => a.downSnapshot().get('S1')?.lastError?.code === 'BL-S007', 'BL-S007 on the down pipeline');
    assert.deepEqual(await store(`SELECT count(*)::int AS n FROM product`), [{ n: 0 }]);
    assert.equal(logLines.some((l) => l['message'] === 'store never loaded: running its initial load (down.initial_load: auto)'), false);
  });

  it('auto: a load that stopped midway is resumed from its checkpoint, then the stream follows', async () => {
    // A load that dies after 5 of its 20 chunks (as if its process were killed): its checkpoints stay.
    let chunks = 0;
    await assert.rejects(
      runInitialLoad({
        config: await world.config(),
        store: (await world.config()).stores[0]!,
        logger: silentLogger(),
        chunkRows: 100,
        onProgress: () => {
          if (++chunks === 5) throw new Error('killed');
        },
      }),
      /killed/,
    );
    const [started] = await store<{ at: string; copied: string }>(`SELECT started_at::text AS at, rows_copied::text AS copied FROM branchline.initial_loads`);
    assert.equal(started?.copied, '500');
    // HQ changes while the store is not followed: a price, a new product, a deleted one.
    await world.hqQuery(`UPDATE product SET price = 999.99 WHERE id = 1500`);
    await world.hqQuery(`INSERT INTO product VALUES (2001, 'new product', 1.00)`);
    await world.hqQuery(`DELETE FROM product WHERE id = 10`);

    logLines.length = 0;
    const hqText = async () =>
      (await world.hqQuery<{ t: string }>(`SELECT string_agg(id || '|' || description || '|' || price, ',' ORDER BY id) AS t FROM product`))[0]!.t;
    const storeText = async () => (await store<{ t: string }>(`SELECT string_agg(id || '|' || description || '|' || price, ',' ORDER BY id) AS t FROM product`))[0]!.t;
    await runAgent('auto', async (a) => a.downSnapshot().get('S1')?.state === 'streaming' && (await storeText()) === (await hqText()), 'the store equal to HQ');

    assert.ok(logLines.some((l) => l['message'] === "resuming the store's unfinished initial load"), 'the agent resumed the load');
    const [after] = await store<{ at: string; status: string }>(`SELECT started_at::text AS at, status FROM branchline.initial_loads`);
    assert.deepEqual(after, { at: started!.at, status: 'done' }, 'the same load, finished, not a new one');
    assert.deepEqual(await store(`SELECT count(*)::int AS n FROM product`), [{ n: 2000 }]);
    // Rows were copied once each; only the changed product was written again (by the stream).
    assert.deepEqual(await store(`SELECT n, count(*)::int AS products FROM product_inserts GROUP BY n ORDER BY n`), [{ n: 1, products: 2001 }]);
  });

  it('auto: HQ lost mid-load (its session terminated, as by a restart) is waited out, and the load resumes from its checkpoint', async () => {
    // The store as never loaded, and enough rows at HQ for a load of many chunks.
    await store(`DELETE FROM branchline.pipelines WHERE pipeline = 'down:S1'; DELETE FROM branchline.initial_loads; TRUNCATE product, product_inserts`);
    await world.hqQuery(`INSERT INTO product SELECT g, 'product ' || g, 1.00 FROM generate_series(3000, 12999) g`);
    logLines.length = 0;
    // Once 1,000 rows are in, HQ ends the load's session (57P01, what a restart or an administrator does).
    let terminated = 0;
    let watching = true;
    const killer = (async () => {
      while (watching && terminated === 0) {
        const [copying] = await store<{ n: number }>(`SELECT rows_copied::int AS n FROM branchline.initial_loads WHERE status = 'copying'`);
        if (copying && copying.n >= 1_000)
          terminated = (
            await world.hqQuery<{ ok: boolean }>(`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'branchline-snapshot-S1' AND datname = current_database()`)
          ).filter((r) => r.ok).length;
        else await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const hqText = async () =>
      (await world.hqQuery<{ t: string }>(`SELECT string_agg(id || '|' || description || '|' || price, ',' ORDER BY id) AS t FROM product`))[0]!.t;
    const storeText = async () => (await store<{ t: string }>(`SELECT string_agg(id || '|' || description || '|' || price, ',' ORDER BY id) AS t FROM product`))[0]!.t;
    try {
      await runAgent('auto', async (a) => a.downSnapshot().get('S1')?.state === 'streaming' && (await storeText()) === (await hqText()), 'the store equal to HQ', 'batch:\n  chunk_rows: 100\n');
    } finally {
      watching = false;
      await killer;
    }
    assert.ok(terminated > 0, 'the load\'s session at HQ was terminated mid-load');
    const interrupted = logLines.filter((l) => l['message'] === 'initial load interrupted: a database is not reachable; it resumes from its last checkpoint');
    assert.equal(interrupted.length, 1, `the agent waited the loss out (log: ${JSON.stringify(logLines.filter((l) => l['level'] !== 'info'))})`);
    assert.ok(logLines.some((l) => l['message'] === "resuming the store's unfinished initial load"), 'and resumed the same load');
    assert.deepEqual(await store(`SELECT status FROM branchline.initial_loads`), [{ status: 'done' }]);
    assert.deepEqual(await store(`SELECT n, count(*)::int AS products FROM product_inserts GROUP BY n ORDER BY n`), [{ n: 1, products: 12000 }], 'every row copied once');
  });

  it('a load whose HQ link stalls mid-chunk (no reset) fails with BL-S010 within its deadline, and the next run resumes from its checkpoint', async () => {
    await store(`DELETE FROM branchline.pipelines WHERE pipeline = 'down:S1'; DELETE FROM branchline.initial_loads; TRUNCATE product, product_inserts`);
    const config = await world.config();
    const proxy = await new TcpProxy(Number(new URL(config.hq.url).port)).start();
    try {
      // Everything the load asks HQ goes through the proxy; 1 s statements, so a chunk's deadline is 11 s.
      const viaProxy = { ...config, hq: { ...config.hq, url: proxy.url(config.hq.url) }, apply: { ...config.apply, statementTimeoutMs: 1_000 } };
      let chunks = 0;
      const started = Date.now();
      const loading = runInitialLoad({
        config: viaProxy,
        store: config.stores[0]!,
        logger: silentLogger(),
        chunkRows: 100,
        onProgress: () => {
          if (++chunks === 10) proxy.stall(true); // after 1,000 rows: the link stops carrying bytes, both ways, and nothing is reset
        },
      });
      loading.catch(() => undefined);
      assert.equal(await within(loading, 40_000), 'settled', 'the load ends on its own');
      await assert.rejects(loading, (e: { code?: string; message?: string }) => e.code === 'BL-S010' && /stopped answering during the initial load/.test(e.message ?? ''), 'a hung link, named as such');
      assert.ok(Date.now() - started < 30_000, `the load failed after ${Date.now() - started} ms`);
      const [state] = await store<{ status: string; copied: number }>(`SELECT status, rows_copied::int AS copied FROM branchline.initial_loads`);
      assert.equal(state?.status, 'copying', 'its checkpoint stays');
      assert.ok(state!.copied >= 1_000, `${state!.copied} rows kept`);
    } finally {
      proxy.stall(false);
      await proxy.close();
    }
    const resumed = await runInitialLoad({ config, store: config.stores[0]!, logger: silentLogger(), chunkRows: 1_000 });
    assert.equal(resumed.resumed, true, 'the next run resumes the same load');
    const [atHq] = await world.hqQuery<{ n: number }>(`SELECT count(*)::int AS n FROM product`);
    assert.deepEqual(await store(`SELECT n, count(*)::int AS products FROM product_inserts GROUP BY n ORDER BY n`), [{ n: 1, products: atHq!.n }], 'every row copied once');
  });
});
