import { createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Agent } from '../agent/agent.js';
import { install } from '../agent/install.js';
import { checkAndCompile, checkAndCompileDown, downTablesOf, loadMappings, readCatalog, tablesOf } from '../agent/prepare.js';
import { loadConfig } from '../config/load.js';
import { BranchlineError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { EmbeddedServer } from '../embedded/pg-server.js';
import { compareStore, inStep, type TableComparison } from '../verify/compare.js';
import { EXIT, formatBytes, table } from '../cli/output.js';
import { hqSchemaSql, importExampleAssociations, RETAIL_EXAMPLE_DIR, storeSchemaSql } from './retail-example.js';
import { associationStory } from './associations-story.js';
import { priceStory } from './master-data-story.js';
import { queriesStory } from './queries-story.js';
import { settlementStory } from './settlement-story.js';
import { waitFor } from './wait.js';
import { RetailWorkload } from './workload.js';

export interface DemoOptions {
  readonly seconds: number;
  readonly keep: boolean;
  readonly dir?: string;
}

const STORES = [
  { code: 'S001', name: 'Loja Centro', city: 'Curitiba' },
  { code: 'S002', name: 'Loja Batel', city: 'Curitiba' },
] as const;

const say = (s: string) => process.stdout.write(s + '\n');

/**
 * The demo: an embedded HQ and two embedded stores running the example ERP,
 * everything installed, the agent running in this process, both stores
 * selling for a while with a live status line each, then a check that HQ
 * holds exactly what the stores hold.
 */
export async function runDemo(options: DemoOptions): Promise<number> {
  const base = options.dir ? path.resolve(options.dir) : await mkdtemp(path.join(os.tmpdir(), 'branchline-demo-'));
  await mkdir(base, { recursive: true });
  // As root the servers run as `postgres`, which must reach their folders.
  await chmod(base, 0o755);
  const servers: EmbeddedServer[] = [];
  const pools: pg.Pool[] = [];
  const controller = new AbortController();
  let agentRun: Promise<void> | null = null;
  const logFile = path.join(base, 'branchline.log');
  const logStream = createWriteStream(logFile, { flags: 'a' });
  const cleanup = async () => {
    controller.abort();
    await agentRun?.catch(() => undefined);
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
    for (const s of servers) await s.stop().catch(() => undefined);
    if (!options.dir) await rm(base, { recursive: true, force: true });
    logStream.end();
  };

  try {
    say(`branchline demo: an HQ and ${STORES.length} stores on embedded PostgreSQL 17 (data in ${base})`);
    const started = Date.now();
    const [hqServer, ...storeServers] = await Promise.all([
      EmbeddedServer.start({ name: 'hq', dataDir: path.join(base, 'hq') }),
      ...STORES.map((s) => EmbeddedServer.start({ name: s.code.toLowerCase(), dataDir: path.join(base, s.code.toLowerCase()) })),
    ]);
    servers.push(hqServer!, ...storeServers);
    say(`  servers up in ${((Date.now() - started) / 1000).toFixed(1)} s: HQ on port ${hqServer!.port}, ${STORES.map((s, i) => `${s.code} on ${storeServers[i]!.port}`).join(', ')}`);

    const hqUrl = await hqServer!.createDatabase('hq');
    await hqServer!.query('hq', await hqSchemaSql());
    for (const s of STORES) await hqServer!.query('hq', `INSERT INTO store (code, name, city) VALUES ($1, $2, $3)`, [s.code, s.name, s.city]);
    const storeUrls: string[] = [];
    for (const server of storeServers) {
      storeUrls.push(await server.createDatabase('erp'));
      await server.query('erp', await storeSchemaSql());
    }
    say('  example ERP created: store tables at each store, HQ tables at HQ');

    const configFile = path.join(base, 'branchline.yml');
    await writeFile(
      configFile,
      [
        '# written by `branchline demo`',
        'hq:',
        `  url: ${hqUrl}`,
        'stores:',
        ...STORES.flatMap((s, i) => [`  - code: ${s.code}`, `    name: ${s.name}`, `    url: ${storeUrls[i]}`]),
        `mappings: ${RETAIL_EXAMPLE_DIR}`,
        'source:',
        '  status_interval_ms: 1000',
        'queries:',
        '  stock: {table: store_stock, product: product_id, store: store_code, columns: [quantity, updated_at]}',
        '  prices: {table: store_price, product: product_id, store: store_code, columns: [price]}',
        '',
      ].join('\n'),
    );
    const config = await loadConfig(configFile);
    const logger = createLogger({ level: 'info', stream: logStream });
    const reports = await install(config, config.stores, logger);
    say('  installed:');
    for (const r of reports) for (const a of r.actions) say(`    ${r.database}: ${a}`);
    await importExampleAssociations(hqUrl, STORES.map((s) => s.code));
    say(`  associated the stores' cost centers CC-01, CC-02, CC-03 with HQ's 100, 101, 102 (${path.join(path.basename(RETAIL_EXAMPLE_DIR), 'associations.csv')})`);

    const workloads = STORES.map((s, i) => {
      const pool = new pg.Pool({ connectionString: storeUrls[i], max: 2 });
      pool.on('error', () => undefined);
      pools.push(pool);
      return new RetailWorkload({ db: pool, storeCode: s.code });
    });
    // HQ owns the catalogue; the stores get it from the agent's initial load (down.initial_load: auto).
    const hqPool = new pg.Pool({ connectionString: hqUrl, max: 2 });
    hqPool.on('error', () => undefined);
    pools.push(hqPool);
    await new RetailWorkload({ db: hqPool, storeCode: 'HQ' }).catalogue(300);
    await Promise.all(workloads.map((w) => w.setup({ products: 0, customers: 10 })));
    say('  HQ holds the product catalogue (300 products); the stores start with none');

    const agent = new Agent({ config, logger });
    await agent.prepare(controller.signal);
    const loadStarted = Date.now();
    agentRun = agent.run(controller.signal);
    say(`  agent running (log: ${logFile})`);
    await waitStreaming(agent, STORES.map((s) => s.code));
    const loaded = await Promise.all(pools.slice(0, STORES.length).map(async (p) => (await p.query<{ n: number }>(`SELECT count(*)::int AS n FROM product`)).rows[0]!.n));
    say(`  first start of each store: the agent loaded HQ's catalogue into it (${STORES.map((s, i) => `${s.code}: ${loaded[i]} products`).join(', ')}) in ${((Date.now() - loadStarted) / 1000).toFixed(1)} s, then follows HQ's changes`);
    say(`\nselling at both stores for ${options.seconds} s:`);

    const written = STORES.map(() => 0);
    const sellUntil = Date.now() + options.seconds * 1000;
    const selling = workloads.map(async (w, i) => {
      while (Date.now() < sellUntil) {
        await w.mixed(5);
        written[i]! += 5;
      }
    });
    const tty = process.stdout.isTTY;
    let printed = 0;
    const printStatus = async () => {
      const snaps = agent.snapshot();
      const lines: string[] = [];
      for (let i = 0; i < STORES.length; i++) {
        const s = STORES[i]!;
        const snap = snaps.get(s.code);
        const behind = await storeBehind(storeUrls[i]!, config.stores[i]!.slot);
        const lag = snap?.oldestUnapplied ? `${((Date.now() - snap.oldestUnapplied.getTime()) / 1000).toFixed(2)}s` : '0.00s';
        lines.push(
          `  ${s.code}  ${snap?.state ?? 'starting'}  store txns ${String(written[i]).padStart(6)}  HQ txns ${String(snap?.txnsApplied ?? 0).padStart(6)}  rows ${String(snap?.rowsApplied ?? 0).padStart(7)}  lag ${lag}  behind ${formatBytes(behind)}`,
        );
      }
      if (tty && printed) process.stdout.write(`\x1b[${printed}A`);
      for (const l of lines) process.stdout.write(`${tty ? '\x1b[2K' : ''}${l}\n`);
      printed = lines.length;
    };
    const ticker = setInterval(() => void printStatus().catch(() => undefined), 1000);
    await Promise.all(selling);
    clearInterval(ticker);
    await printStatus();

    await priceStory({ hq: hqPool, stores: STORES.map((s, i) => ({ code: s.code, pool: pools[i]! })) });
    await associationStory({ storeCode: STORES[0].code, store: pools[0]!, hq: hqPool, workload: workloads[0]! });
    await queriesStory({ config, stores: STORES.map((s, i) => ({ code: s.code, pool: pools[i]! })) });
    await settlementStory({ config, storeCode: STORES[0].code, store: pools[0]!, hq: hqPool, workload: workloads[0]!, logger });

    say('\nstores stopped selling; waiting for HQ to catch up and comparing every table...');
    const files = await loadMappings(config);
    const hqCatalog = await readCatalog(hqUrl, 'HQ', tablesOf(files).targets);
    const mappings = checkAndCompile(files, hqCatalog, null, 'HQ');
    const deadline = Date.now() + 60_000;
    let results: TableComparison[][] = [];
    for (;;) {
      results = await Promise.all(STORES.map((s, i) => compareStore({ storeUrl: storeUrls[i]!, hqUrl, storeCode: s.code, mappings })));
      if (results.every(inStep) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    await printStatus();
    const rows: string[][] = [];
    results.forEach((res, i) =>
      res.forEach((r) => rows.push([STORES[i]!.code, `${r.source} -> ${r.target}`, String(r.sourceRows), String(r.targetRows), String(r.missing), String(r.extra)])),
    );
    say('\n' + table(['STORE', 'TABLE', 'STORE ROWS', 'HQ ROWS', 'MISSING AT HQ', 'EXTRA AT HQ'], rows));
    // Down: every store holds what HQ hands it (products, its own prices).
    const hqDown = await readCatalog(hqUrl, 'HQ', downTablesOf(files).hqSources);
    const down = await Promise.all(
      STORES.map(async (s, i) => {
        const storeDown = await readCatalog(storeUrls[i]!, `store ${s.code}`, downTablesOf(files).storeTargets);
        const downMappings = checkAndCompileDown(files, hqDown, storeDown, `HQ and store ${s.code}`);
        // The same comparison the other way round: HQ is the source, the store the target.
        return compareStore({ storeUrl: hqUrl, hqUrl: storeUrls[i]!, storeCode: s.code, mappings: downMappings });
      }),
    );
    const downRows: string[][] = [];
    down.forEach((res, i) =>
      res.forEach((r) => downRows.push([STORES[i]!.code, `${r.source} -> ${r.target}`, String(r.sourceRows), String(r.targetRows), String(r.missing), String(r.extra)])),
    );
    say('\n' + table(['STORE', 'HQ TABLE -> STORE TABLE', 'HQ ROWS', 'STORE ROWS', 'MISSING AT STORE', 'EXTRA AT STORE'], downRows));
    if (!down.every(inStep)) {
      throw new BranchlineError({
        code: 'BL-U002',
        message: 'a store does not hold exactly what HQ hands it.',
        hint: `See the table above and the agent log in ${logFile}.`,
      });
    }
    say(`Every store holds exactly what HQ hands it: ${down.flat().reduce((n, r) => n + r.targetRows, 0)} rows in ${down[0]!.length} tables.`);
    const ok = results.every(inStep);
    if (!ok) {
      throw new BranchlineError({
        code: 'BL-U002',
        message: 'HQ does not hold exactly what the stores hold after 60 s of catching up.',
        hint: `See the table above and the agent log in ${logFile}.`,
      });
    }
    say(`HQ holds exactly what both stores hold: ${results.flat().reduce((n, r) => n + r.targetRows, 0)} rows in ${results[0]!.length} tables per store.`);
    const totals = results.flat().filter((r) => r.target.endsWith('daily_product_sales'));
    say(`The daily sales totals (daily_product_sales, ${totals.reduce((n, r) => n + r.targetRows, 0)} rows) equal the sum of each store's fiscal coupon items, cancelled coupons taken out.`);

    if (options.keep) {
      say('\n--keep: everything stays up until Ctrl-C.');
      say(`  HQ:   ${hqUrl}`);
      STORES.forEach((s, i) => say(`  ${s.code}: ${storeUrls[i]}`));
      say(`  config: ${configFile}   (try: npx branchline status --config ${configFile})`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
    return EXIT.ok;
  } finally {
    await cleanup();
  }
}

/** Waits until every store's up and down pipelines stream (the down one after the store's initial load). */
async function waitStreaming(agent: Agent, codes: readonly string[]): Promise<void> {
  const streaming = () => codes.every((c) => agent.snapshot().get(c)?.state === 'streaming' && agent.downSnapshot().get(c)?.state === 'streaming');
  await waitFor('the stores to be loaded and streaming', async () => (streaming() ? true : undefined), { ms: 120_000, everyMs: 100 });
}

async function storeBehind(url: string, slot: string): Promise<number | null> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const r = await c.query<{ b: string | null }>(
      `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text AS b FROM pg_replication_slots WHERE slot_name = $1`,
      [slot],
    );
    return r.rows[0]?.b == null ? null : Number(r.rows[0].b);
  } catch {
    return null;
  } finally {
    await c.end().catch(() => undefined);
  }
}
