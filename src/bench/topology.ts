import { readFileSync } from 'node:fs';
import { chmod, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { install } from '../agent/install.js';
import { defaultSlotName, loadConfig } from '../config/load.js';
import { silentLogger } from '../core/logger.js';
import { quoteIdent, quoteLiteral } from '../db/connect.js';
import { hqSchemaSql, RETAIL_EXAMPLE_DIR, storeSchemaSql, UP_TABLES } from '../demo/retail-example.js';
import { RetailWorkload } from '../demo/workload.js';
import { EmbeddedServer } from '../embedded/pg-server.js';
import type { BenchOptions } from './options.js';

/** Durability as PostgreSQL ships it, on both servers, for both contenders. */
export const DURABLE_SETTINGS = { fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on' } as const;

/** The publication the native subscriptions read (the same tables as branchline's). */
export const NATIVE_PUBLICATION = 'bench_native';

/** HQ database of branchline. */
export const HQ_DB = 'hq';

export interface BenchStore {
  readonly code: string;
  /** Database of the store on the stores server. */
  readonly db: string;
  readonly url: string;
  /** Writers of the store (backlog and live). */
  readonly pool: pg.Pool;
  readonly workload: RetailWorkload;
  /** HQ database the native subscription of this store writes into (store schema). */
  readonly nativeDb: string;
  /** Name of the native subscription and of its slot. */
  readonly nativeSubscription: string;
  readonly branchlineSlot: string;
  /** The server holding the store's database (one of `storeServers`). */
  readonly server: EmbeddedServer;
  /** The decode ceiling's slot (pgoutput, read by pg_recvlogical), when the topology has one. */
  readonly ceilingSlot: string;
}

/** Which parts a topology is built with besides branchline (the scale scenario runs branchline alone). */
export interface TopologyParts {
  /** Native publications, HQ databases and disabled subscriptions. */
  readonly native: boolean;
  /** A pgoutput slot per store for the decode ceiling (pg_recvlogical). */
  readonly ceiling: boolean;
  /** Settings of both servers over the defaults above (the scale scenario keeps shared_buffers small). */
  readonly settings?: Readonly<Record<string, string | number>>;
  /**
   * Store databases per stores server (default: all on one). More servers
   * spare each walsender the WAL of the other servers' stores, as stores with
   * servers of their own would; the native parts and the ceiling need one.
   */
  readonly storesPerServer?: number;
}

export type Say = (line: string) => void;

/**
 * Everything both contenders need, on two embedded servers: a "stores"
 * server holding one database per store (the example ERP), and an "HQ"
 * server holding branchline's HQ database and, per store, a database with
 * the store schema for PostgreSQL's own subscription. Both contenders' slots
 * are created here, before any sale is written, so both decode the same WAL.
 */
export class BenchTopology {
  private readonly servers: EmbeddedServer[] = [];
  private readonly pools: pg.Pool[] = [];
  readonly stores: BenchStore[] = [];
  /** The first (with the native parts and the ceiling: the only) stores server. */
  storesServer!: EmbeddedServer;
  /** Every stores server, in store order. */
  storeServers: EmbeddedServer[] = [];
  hqServer!: EmbeddedServer;
  configFile = '';

  private constructor(readonly dir: string) {}

  static async create(options: BenchOptions, say: Say, parts: TopologyParts = { native: true, ceiling: false }): Promise<BenchTopology> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-bench-'));
    // As root the servers run as `postgres`, which must reach their folders.
    await chmod(dir, 0o755);
    const topology = new BenchTopology(dir);
    try {
      await topology.build(options, say, parts);
      return topology;
    } catch (e) {
      await topology.dispose();
      throw e;
    }
  }

  get hqUrl(): string {
    return this.hqServer.url(HQ_DB);
  }

  private async build(options: BenchOptions, say: Say, parts: TopologyParts): Promise<void> {
    const n = options.stores;
    const perServer = Math.min(n, parts.storesPerServer ?? n);
    if (perServer < n && (parts.native || parts.ceiling)) throw new Error('the native parts and the decode ceiling need every store on one server');
    const sized = (m: number) => ({
      ...DURABLE_SETTINGS,
      max_wal_senders: Math.max(20, 3 * m + 4),
      max_replication_slots: Math.max(20, 3 * m + 4),
      max_logical_replication_workers: m + 4,
      max_worker_processes: m + 12,
      max_connections: Math.max(100, 12 * m + 40),
      ...parts.settings,
    });
    const storeServerCount = Math.ceil(n / perServer);
    const names = storeServerCount === 1 ? ['stores'] : Array.from({ length: storeServerCount }, (_, i) => `stores-${i + 1}`);
    say(`starting the embedded servers in ${this.dir}${storeServerCount > 1 ? ` (${storeServerCount} stores servers, ${perServer} store databases each)` : ''}`);
    const started = await Promise.allSettled(
      [...names, 'hq'].map((name) => EmbeddedServer.start({ name, dataDir: path.join(this.dir, name), settings: sized(name === 'hq' ? n : perServer) })),
    );
    for (const s of started) if (s.status === 'fulfilled') this.servers.push(s.value);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    this.storeServers = this.servers.slice(0, storeServerCount);
    this.storesServer = this.storeServers[0]!;
    this.hqServer = this.servers[storeServerCount]!;

    const storeSql = await storeSchemaSql();
    for (let i = 1; i <= n; i++) {
      const code = `S${String(i).padStart(3, '0')}`;
      const db = `store_${code.toLowerCase()}`;
      const server = this.storeServers[Math.floor((i - 1) / perServer)]!;
      const url = await server.createDatabase(db);
      await server.query(db, storeSql);
      const pool = new pg.Pool({ connectionString: url, max: options.concurrency });
      pool.on('error', () => undefined);
      this.pools.push(pool);
      const store: BenchStore = {
        code,
        db,
        url,
        pool,
        workload: new RetailWorkload({ db: pool, storeCode: code, linesPerSale: options.lines }),
        nativeDb: `native_${code.toLowerCase()}`,
        nativeSubscription: `native_${code.toLowerCase()}`,
        branchlineSlot: defaultSlotName(code),
        server,
        ceilingSlot: `bench_ceiling_${code.toLowerCase()}`,
      };
      // Products and customers first: only the sales are the backlog.
      await store.workload.setup({ products: 300, customers: 20 });
      this.stores.push(store);
    }
    say(`${n} store databases created (example ERP, 300 products, 20 customers each)`);

    // branchline: its HQ database, the stores registered there, a configuration and `install`.
    await this.hqServer.createDatabase(HQ_DB);
    await this.hqServer.query(HQ_DB, await hqSchemaSql());
    for (const s of this.stores) await this.hqServer.query(HQ_DB, `INSERT INTO store (code, name, city) VALUES ($1, $1, 'Bench')`, [s.code]);
    this.configFile = path.join(this.dir, 'branchline.yml');
    // The catch-up and live phases measure the up channel against native's: the example's down files
    // (HQ's products and prices to the stores) are left out, as native replicates nothing down.
    const mappingsDir = path.join(this.dir, 'mappings');
    await cp(RETAIL_EXAMPLE_DIR, mappingsDir, {
      recursive: true,
      filter: (src) => !src.endsWith('.sql') && !src.endsWith('.md') && !(src.endsWith('.yml') && /^direction:\s*down\b/m.test(readFileSync(src, 'utf8'))),
    });
    await writeFile(this.configFile, branchlineConfig(this.hqUrl, this.stores, options, mappingsDir));
    const config = await loadConfig(this.configFile);
    await install(config, config.stores, silentLogger());
    say('branchline installed (HQ schema, publication "branchline" and one slot per store)');

    // Native: per store a publication of the same tables, an HQ database with the store schema and a disabled subscription.
    // The decode ceiling reads the same publication through a slot of its own.
    const tables = UP_TABLES.map((t) => quoteIdent(t)).join(', ');
    if (parts.ceiling && !parts.native) throw new Error('the decode ceiling reads the native publication: build the native parts too');
    for (const s of parts.native ? this.stores : []) {
      await this.storesServer.query(s.db, `CREATE PUBLICATION ${quoteIdent(NATIVE_PUBLICATION)} FOR TABLE ${tables}`);
      await this.hqServer.createDatabase(s.nativeDb);
      await this.hqServer.query(s.nativeDb, storeSql);
      await this.hqServer.query(
        s.nativeDb,
        `CREATE SUBSCRIPTION ${quoteIdent(s.nativeSubscription)} CONNECTION ${quoteLiteral(s.url)}
           PUBLICATION ${quoteIdent(NATIVE_PUBLICATION)}
           WITH (enabled = false, copy_data = false, synchronous_commit = '${options.nativeSynchronousCommit}')`,
      );
      if (parts.ceiling) await this.storesServer.query(s.db, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [s.ceilingSlot]);
    }
    if (parts.native) say(`native replication installed (publication "${NATIVE_PUBLICATION}" and a disabled subscription per store${parts.ceiling ? '; a pgoutput slot per store for the decode ceiling' : ''})`);

    for (const server of this.storeServers) {
      const here = this.stores.filter((s) => s.server === server);
      const expected = here.flatMap((s) => [s.branchlineSlot, ...(parts.native ? [s.nativeSubscription] : []), ...(parts.ceiling ? [s.ceilingSlot] : [])]);
      const slots = await server.query<{ n: number }>('postgres', `SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = ANY($1)`, [expected]);
      if (slots[0]?.n !== expected.length) throw new Error(`expected ${expected.length} replication slots at the ${server.name} server, found ${slots[0]?.n ?? 0}`);
    }
  }

  /** Rows of sale and sale_line at one store right now. */
  async storeRows(store: BenchStore): Promise<number> {
    const r = await store.pool.query<{ n: string }>(`SELECT ((SELECT count(*) FROM sale) + (SELECT count(*) FROM sale_line))::text AS n`);
    return Number(r.rows[0]?.n ?? 0);
  }

  /** A checkpoint on every server, so no phase pays for the previous one's dirty pages. */
  async checkpoint(): Promise<void> {
    for (const server of this.storeServers) await server.query('postgres', 'CHECKPOINT');
    await this.hqServer.query('postgres', 'CHECKPOINT');
  }

  /** PostgreSQL version of the servers (both run the same binaries). */
  async serverVersion(): Promise<string> {
    const r = await this.hqServer.query<{ v: string }>('postgres', `SELECT current_setting('server_version') AS v`);
    return r[0]?.v ?? 'unknown';
  }

  /** Ends the writers' pools, stops both servers and removes every file. */
  async dispose(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.end().catch(() => undefined)));
    this.pools.length = 0;
    for (const s of this.servers) await s.destroy().catch(() => undefined);
    this.servers.length = 0;
    await rm(this.dir, { recursive: true, force: true });
  }
}

function branchlineConfig(hqUrl: string, stores: readonly BenchStore[], options: BenchOptions, mappingsDir: string): string {
  const batch: string[] = [];
  if (options.batchMaxRows !== undefined) batch.push(`  max_rows: ${options.batchMaxRows}`);
  if (options.batchMaxDelayMs !== undefined) batch.push(`  max_delay_ms: ${options.batchMaxDelayMs}`);
  if (options.batchChunkRows !== undefined) batch.push(`  chunk_rows: ${options.batchChunkRows}`);
  return [
    '# written by `npm run bench`; everything not set here is the product default',
    'hq:',
    `  url: ${hqUrl}`,
    'stores:',
    ...stores.flatMap((s) => [`  - code: ${s.code}`, `    url: ${s.url}`]),
    `mappings: ${mappingsDir}`,
    ...(batch.length ? ['batch:', ...batch] : []),
    'apply:',
    `  session_replication_role: ${options.sessionReplicationRole}`,
    ...(options.applyConcurrency !== undefined ? [`  concurrency: ${options.applyConcurrency}`] : []),
    '',
  ].join('\n');
}
