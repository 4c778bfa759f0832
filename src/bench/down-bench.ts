import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { install } from '../agent/install.js';
import { loadConfig } from '../config/load.js';
import { silentLogger } from '../core/logger.js';
import { quoteIdent, quoteLiteral } from '../db/connect.js';
import { hqSchemaSql, RETAIL_EXAMPLE_DIR, storeSchemaSql } from '../demo/retail-example.js';
import { RetailWorkload } from '../demo/workload.js';
import { EmbeddedServer } from '../embedded/pg-server.js';
import type { AgentCommand } from './agent-process.js';
import { measureCatchUp, type CatchUpResult } from './catch-up.js';
import type { Contender, Probe } from './contender.js';
import { DownBranchlineContender } from './down-branchline-contender.js';
import { NativeContender, type NativeSpec } from './native-contender.js';
import type { BenchOptions, ContenderName } from './options.js';
import { DURABLE_SETTINGS, type Say } from './topology.js';
import { waitFor } from './wait.js';

/** The example's down file of store price lists (HQ store_price -> the store's local_price, routed by store_code). */
export const DOWN_MAPPING_FILE = 'store-price-down.yml';
/** Rows one UPDATE (one HQ transaction) of the price changes changes. */
export const DOWN_ROWS_PER_TRANSACTION = 1_000;
/** Every store price starts at this and each change sets it to NEW_PRICE: a store row at NEW_PRICE has arrived. */
const OLD_PRICE = '1.00';
const NEW_PRICE = '2.00';
const POLL_MS = 100;

export interface DownStoreResult {
  readonly store: string;
  readonly changes: number;
  /** From start to the poll that first saw all of this store's changes. */
  readonly seconds: Readonly<Record<ContenderName, number>>;
}

export interface DownResult {
  /** PostgreSQL version of both servers. */
  readonly postgres: string;
  readonly stores: number;
  readonly changes: number;
  readonly rowsPerTransaction: number;
  /** Writing the price changes at HQ (through branchline's capture trigger; native's publication reads the same WAL). */
  readonly writeSeconds: number;
  readonly order: readonly ContenderName[];
  readonly drain: Readonly<Record<ContenderName, CatchUpResult>>;
  readonly perStore: readonly DownStoreResult[];
  readonly verification: { readonly ok: boolean; readonly problems: readonly string[] };
}

interface DownStore {
  readonly code: string;
  /** branchline's store database (the example ERP). */
  readonly db: string;
  /** Native's store database: HQ's store_price columns, fed by its own subscription. */
  readonly nativeDb: string;
  readonly subscription: string;
  readonly changes: number;
}

/**
 * The down channel under a burst: HQ changes `--down-changes` store prices
 * (split evenly across `--down-stores` stores, each row changed once, in
 * transactions of 1,000) while nothing replicates, then each contender
 * drains them to every store at once: native (per store a publication at HQ
 * of store_price with a row filter on the store's code, a subscription in a
 * store database of its own) and branchline's down pipelines (the example's
 * store-price-down.yml, one agent). Both start from the same loaded state;
 * afterwards every store must equal HQ.
 */
export async function runDownBench(options: BenchOptions, command: AgentCommand, cleanup: (step: () => Promise<void>) => void, say: Say): Promise<DownResult> {
  const n = options.downStores;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-bench-down-'));
  await chmod(dir, 0o755);
  cleanup(() => rm(dir, { recursive: true, force: true }));
  const servers: EmbeddedServer[] = [];
  cleanup(async () => {
    for (const s of servers) await s.destroy().catch(() => undefined);
  });
  const settings = {
    ...DURABLE_SETTINGS,
    max_wal_senders: 2 * n + 10,
    max_replication_slots: 2 * n + 10,
    max_logical_replication_workers: 3 * n + 4,
    max_worker_processes: 3 * n + 12,
    max_connections: Math.max(100, 6 * n + 40),
  };
  say(`down: starting the embedded servers in ${dir}`);
  for (const name of ['hq', 'stores'] as const) servers.push(await EmbeddedServer.start({ name, dataDir: path.join(dir, name), settings }));
  const [hq, storesServer] = servers as [EmbeddedServer, EmbeddedServer];

  const shares = Array.from({ length: n }, (_, i) => Math.floor(options.downChanges / n) + (i < options.downChanges % n ? 1 : 0));
  const products = Math.max(...shares);
  const stores: DownStore[] = shares.map((changes, i) => {
    const code = `S${String(i + 1).padStart(3, '0')}`;
    return { code, db: `store_${code.toLowerCase()}`, nativeDb: `native_${code.toLowerCase()}`, subscription: `down_${code.toLowerCase()}`, changes };
  });

  // HQ: the example schema, the stores, a catalogue, and every store's price list at OLD_PRICE (one row per product it changes).
  const hqUrl = await hq.createDatabase('hq');
  await hq.query('hq', await hqSchemaSql());
  await withPool(hqUrl, async (pool) => {
    for (const s of stores) await pool.query(`INSERT INTO store (code, name, city) VALUES ($1, $1, 'Bench')`, [s.code]);
    await new RetailWorkload({ db: pool, storeCode: 'HQ' }).catalogue(products);
    for (const s of stores) await pool.query(`INSERT INTO store_price (store_code, product_id, price) SELECT $1, g, ${OLD_PRICE} FROM generate_series(1, $2::int) g`, [s.code, s.changes]);
  });
  // The stores: the example ERP with the same catalogue; native's databases: HQ's store_price columns.
  const storeSql = await storeSchemaSql();
  for (const s of stores) {
    const url = await storesServer.createDatabase(s.db);
    await storesServer.query(s.db, storeSql);
    await withPool(url, (pool) => new RetailWorkload({ db: pool, storeCode: s.code }).catalogue(products));
    await storesServer.createDatabase(s.nativeDb);
    await storesServer.query(s.nativeDb, `CREATE TABLE store_price (store_code text NOT NULL, product_id integer NOT NULL, price numeric(12,2) NOT NULL, PRIMARY KEY (store_code, product_id))`);
  }
  say(`down: HQ and ${n} store databases created (${products} products; ${options.downChanges} store prices at HQ)`);

  // branchline: only the example's store price file, installed (HQ's change log and capture trigger), each store loaded by the agent.
  const mappings = path.join(dir, 'mappings');
  await mkdir(mappings);
  await copyFile(path.join(RETAIL_EXAMPLE_DIR, DOWN_MAPPING_FILE), path.join(mappings, DOWN_MAPPING_FILE));
  const configFile = path.join(dir, 'branchline.yml');
  const batch = [...(options.batchMaxRows !== undefined ? [`  max_rows: ${options.batchMaxRows}`] : []), ...(options.batchMaxDelayMs !== undefined ? [`  max_delay_ms: ${options.batchMaxDelayMs}`] : [])];
  await writeFile(
    configFile,
    [
      '# written by `npm run bench` (down); everything not set here is the product default',
      'hq:',
      `  url: ${hqUrl}`,
      'stores:',
      ...stores.flatMap((s) => [`  - code: ${s.code}`, `    url: ${storesServer.url(s.db)}`]),
      `mappings: ${mappings}`,
      ...(batch.length ? ['batch:', ...batch] : []),
      '',
    ].join('\n'),
  );
  const config = await loadConfig(configFile);
  await install(config, config.stores, silentLogger());
  const changed = (table: string, where = ''): string => `SELECT count(*)::text AS n FROM ${table} WHERE price = ${NEW_PRICE}${where}`;
  const branchline = await DownBranchlineContender.create({
    command,
    configFile,
    dir,
    cpuProfDir: options.agentCpuProf,
    hqUrl: hq.url('postgres'),
    storesUrl: storesServer.url('postgres'),
    rowsProbes: stores.map((s): Probe => ({ url: storesServer.url(s.db), sql: changed('local_price'), params: [] })),
  });
  cleanup(() => branchline.dispose());
  const loaded = (probe: (s: DownStore) => Promise<number>) => async () => (await Promise.all(stores.map(async (s) => (await probe(s)) === s.changes))).every(Boolean);
  await branchline.start();
  await waitFor('branchline to load the stores (down.initial_load: auto)', options.timeoutMs, async () => {
    await branchline.assertRunning();
    if ((await branchline.logged('down pipeline starting')) < n) return false;
    return loaded(async (s) => count(storesServer, s.db, 'SELECT count(*)::int AS n FROM local_price'))();
  }, 200);
  await branchline.stop();
  say('down: branchline installed, every store loaded by the agent (initial load), agent stopped');

  // Native: per store a row-filtered publication at HQ and a subscription that copies the store's rows, then is disabled.
  for (const s of stores) {
    await hq.query('hq', `CREATE PUBLICATION ${quoteIdent(s.subscription)} FOR TABLE store_price (store_code, product_id, price) WHERE (store_code = ${quoteLiteral(s.code)})`);
    await storesServer.query(
      s.nativeDb,
      `CREATE SUBSCRIPTION ${quoteIdent(s.subscription)} CONNECTION ${quoteLiteral(hqUrl)} PUBLICATION ${quoteIdent(s.subscription)}
         WITH (copy_data = true, synchronous_commit = '${options.nativeSynchronousCommit}')`,
    );
  }
  const spec: NativeSpec = {
    publisherUrl: hq.url('postgres'),
    subscriberUrl: storesServer.url('postgres'),
    subscriptions: stores.map((s) => ({ url: storesServer.url(s.nativeDb), name: s.subscription })),
    rowsProbes: stores.map((s) => ({ url: storesServer.url(s.nativeDb), sql: changed('store_price'), params: [] })),
    maxSaleProbe: () => {
      throw new Error('the down scenario has no live phase');
    },
  };
  const native = await NativeContender.create(spec);
  cleanup(() => native.dispose());
  await waitFor('the native subscriptions\' initial copy', options.timeoutMs, loaded(async (s) => {
    const ready = await storesServer.query<{ n: number }>(s.nativeDb, `SELECT count(*)::int AS n FROM pg_subscription_rel WHERE srsubstate = 'r'`);
    return ready[0]?.n === 1 ? count(storesServer, s.nativeDb, 'SELECT count(*)::int AS n FROM store_price') : -1;
  }), 200);
  await native.stop();
  say('down: native publications and subscriptions made, every store copied, subscriptions disabled');

  // The burst: every store's prices changed once, in transactions of DOWN_ROWS_PER_TRANSACTION rows, while nothing replicates.
  const chunks = stores.flatMap((s) => Array.from({ length: Math.ceil(s.changes / DOWN_ROWS_PER_TRANSACTION) }, (_, k) => [s.code, k * DOWN_ROWS_PER_TRANSACTION + 1, Math.min(s.changes, (k + 1) * DOWN_ROWS_PER_TRANSACTION)] as const));
  // Stores interleaved, as a price list update for several regions would be.
  chunks.sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
  say(`down: writing ${options.downChanges} price changes at HQ (${chunks.length} transactions, ${options.concurrency} connections)`);
  const t = performance.now();
  await withPool(hqUrl, async (pool) => {
    let next = 0;
    const writer = async () => {
      for (let i = next++; i < chunks.length; i = next++) {
        const [code, from, to] = chunks[i]!;
        await pool.query(`UPDATE store_price SET price = ${NEW_PRICE}, updated_at = now() WHERE store_code = $1 AND product_id BETWEEN $2 AND $3`, [code, from, to]);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, writer));
  }, options.concurrency);
  const writeSeconds = (performance.now() - t) / 1000;
  say(`down: price changes written in ${writeSeconds.toFixed(1)} s`);

  const contenders: Record<ContenderName, Contender> = { native, branchline };
  const drain = {} as Record<ContenderName, CatchUpResult>;
  for (const name of options.order) {
    await hq.query('postgres', 'CHECKPOINT');
    await storesServer.query('postgres', 'CHECKPOINT');
    say(`down: ${name}`);
    const c = contenders[name];
    try {
      drain[name] = await measureCatchUp(c, { expectedRows: options.downChanges, expectedPerProbe: stores.map((s) => s.changes), pollMs: POLL_MS, timeoutMs: options.timeoutMs, say, target: 'the stores' });
    } catch (e) {
      const tail = await c.logTail().catch(() => '');
      if (tail) say(`${name} log, last lines:\n${tail}`);
      throw e;
    }
  }
  const problems = await verifyDown(hq, storesServer, stores);
  say(problems.length ? `down: verification failed: ${problems.join(' ')}` : 'down: verified: every store equals HQ (both contenders)');
  const [version] = await hq.query<{ v: string }>('postgres', `SELECT current_setting('server_version') AS v`);
  return {
    postgres: version?.v ?? 'unknown',
    stores: n,
    changes: options.downChanges,
    rowsPerTransaction: DOWN_ROWS_PER_TRANSACTION,
    writeSeconds,
    order: options.order,
    drain,
    perStore: stores.map((s, i) => ({ store: s.code, changes: s.changes, seconds: { native: drain.native.probeSeconds![i]!, branchline: drain.branchline.probeSeconds![i]! } })),
    verification: { ok: problems.length === 0, problems },
  };
}

/** Per store: HQ's price list for it, the store's local_price and native's copy, by count and md5 of every (product, price). */
async function verifyDown(hq: EmbeddedServer, storesServer: EmbeddedServer, stores: readonly DownStore[]): Promise<string[]> {
  const digest = (table: string, where: string) =>
    `SELECT count(*)::int AS n, coalesce(md5(string_agg(product_id || ':' || price, ',' ORDER BY product_id)), '') AS md5 FROM ${table} ${where}`;
  const show = (d: { n: number; md5: string } | undefined) => (d ? `${d.n} prices (md5 ${d.md5.slice(0, 8)})` : 'nothing');
  const problems: string[] = [];
  for (const s of stores) {
    const [want] = await hq.query<{ n: number; md5: string }>('hq', digest('store_price', 'WHERE store_code = $1'), [s.code]);
    const [store] = await storesServer.query<{ n: number; md5: string }>(s.db, digest('local_price', ''));
    const [native] = await storesServer.query<{ n: number; md5: string }>(s.nativeDb, digest('store_price', 'WHERE store_code = $1'), [s.code]);
    if (show(store) !== show(want)) problems.push(`${s.code}: HQ holds ${show(want)} for it; branchline's store holds ${show(store)}.`);
    if (show(native) !== show(want)) problems.push(`${s.code}: HQ holds ${show(want)} for it; native's store holds ${show(native)}.`);
  }
  return problems;
}

async function count(server: EmbeddedServer, db: string, sql: string): Promise<number> {
  const [r] = await server.query<{ n: number }>(db, sql);
  return r?.n ?? 0;
}

async function withPool<T>(url: string, fn: (pool: pg.Pool) => Promise<T>, max = 2): Promise<T> {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on('error', () => undefined);
  try {
    return await fn(pool);
  } finally {
    await pool.end().catch(() => undefined);
  }
}
