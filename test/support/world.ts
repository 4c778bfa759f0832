import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { install } from '../../src/agent/install.js';
import { loadConfig, type Config } from '../../src/config/load.js';
import { silentLogger } from '../../src/core/logger.js';
import { hqSchemaSql, importExampleAssociations, RETAIL_EXAMPLE_DIR, storeSchemaSql } from '../../src/demo/retail-example.js';
import { RetailWorkload } from '../../src/demo/workload.js';
import type { TestServer } from './pg.js';

export interface WorldStore {
  readonly code: string;
  readonly server: TestServer;
  readonly db: string;
  /** URL the agent uses (through a proxy when the test asked for one). */
  readonly url: string;
  readonly pool: pg.Pool;
  readonly workload: RetailWorkload;
}

export interface World {
  readonly dir: string;
  readonly hq: { readonly server: TestServer; readonly db: string; readonly url: string };
  readonly stores: readonly WorldStore[];
  readonly configFile: string;
  config(): Promise<Config>;
  hqQuery<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  dispose(): Promise<void>;
}

export interface WorldOptions {
  readonly hqServer: TestServer;
  readonly storeServer: TestServer;
  readonly stores: readonly string[];
  /** Rewrites a database URL as the agent should see it (e.g. through a TcpProxy). */
  readonly agentUrl?: (role: 'hq' | string, url: string) => string;
  /** Extra YAML appended to the configuration. */
  readonly extraConfig?: string;
  readonly mappingsDir?: string;
  readonly hqSql?: string;
  readonly storeSql?: string;
  /** Set up products and customers at each store (default true). */
  readonly setup?: boolean;
  /** Run `install` (default true). */
  readonly install?: boolean;
  /** More lines of the `source:` section, e.g. `purge_interval_s: 1`. */
  readonly sourceConfig?: readonly string[];
  /** More lines of the `hq:` section, e.g. `read_url: ...`. */
  readonly hqConfig?: readonly string[];
  /** More lines of a store's entry, e.g. `read_url: ...` (given the store code and its database URL as the test sees it). */
  readonly storeConfig?: (code: string, url: string) => readonly string[];
  /** How the stores' changes are captured (default: BRANCHLINE_TEST_UP_CONNECTOR, else the configuration's default, pg-logical). */
  readonly connector?: 'pg-logical' | 'pg-trigger';
}

/**
 * The up connector the tests' stores use: `npm test` runs the up-channel
 * files once with the default (pg-logical) and once more with
 * BRANCHLINE_TEST_UP_CONNECTOR=pg-trigger (scripts/run-tests.mjs).
 */
export const TEST_UP_CONNECTOR: 'pg-logical' | 'pg-trigger' = process.env['BRANCHLINE_TEST_UP_CONNECTOR'] === 'pg-trigger' ? 'pg-trigger' : 'pg-logical';

/**
 * The example ERP on real PostgreSQL: an HQ database and one database per
 * store, schemas loaded, stores registered at HQ, a configuration file
 * written and `install` run. Each world has its own databases.
 */
export async function createWorld(options: WorldOptions): Promise<World> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-test-'));
  await chmod(dir, 0o755);
  const hqDb = await options.hqServer.createDatabase('hq');
  await options.hqServer.query(hqDb, options.hqSql ?? (await hqSchemaSql()));
  const rewrite = options.agentUrl ?? ((_r: string, u: string) => u);
  const hqUrl = rewrite('hq', options.hqServer.url(hqDb));
  const stores: WorldStore[] = [];
  for (const code of options.stores) {
    if (!options.hqSql) await options.hqServer.query(hqDb, `INSERT INTO store (code, name, city) VALUES ($1, $1, 'Test')`, [code]);
    const db = await options.storeServer.createDatabase(`store_${code}`);
    await options.storeServer.query(db, options.storeSql ?? (await storeSchemaSql()));
    const pool = new pg.Pool({ connectionString: options.storeServer.url(db), max: 4 });
    pool.on('error', () => undefined);
    // A server stopped under a checked-out client: its query fails (the writer sees it), the client's event must not crash the test.
    pool.on('connect', (c) => c.on('error', () => undefined));
    stores.push({ code, server: options.storeServer, db, url: rewrite(code, options.storeServer.url(db)), pool, workload: new RetailWorkload({ db: pool, storeCode: code }) });
  }
  const connector = options.connector ?? TEST_UP_CONNECTOR;
  const configFile = path.join(dir, 'branchline.yml');
  await writeFile(
    configFile,
    [
      'hq:',
      `  url: ${hqUrl}`,
      ...(options.hqConfig ?? []).map((l) => `  ${l}`),
      'stores:',
      ...stores.flatMap((s) => [
        `  - code: ${s.code}`,
        `    url: ${s.url}`,
        ...(connector !== 'pg-logical' ? [`    connector: ${connector}`] : []),
        ...(options.storeConfig?.(s.code, s.server.url(s.db)) ?? []).map((l) => `    ${l}`),
      ]),
      `mappings: ${options.mappingsDir ?? RETAIL_EXAMPLE_DIR}`,
      'retry:',
      '  initial_ms: 100',
      '  max_ms: 1000',
      'source:',
      '  status_interval_ms: 500',
      '  silence_timeout_ms: 5000',
      ...(options.sourceConfig ?? []).map((l) => `  ${l}`),
      options.extraConfig ?? '',
    ].join('\n'),
  );
  const world: World = {
    dir,
    hq: { server: options.hqServer, db: hqDb, url: hqUrl },
    stores,
    configFile,
    config: () => loadConfig(configFile),
    hqQuery: (sql, params) => options.hqServer.query(hqDb, sql, params),
    async dispose() {
      await Promise.all(stores.map((s) => s.pool.end().catch(() => undefined)));
      await rm(dir, { recursive: true, force: true });
    },
  };
  if (options.install ?? true) {
    await install(await world.config(), (await world.config()).stores, silentLogger());
    // The example's cost centers are associated by a person; without it its receivables park.
    if (!options.hqSql && !options.mappingsDir) await importExampleAssociations(options.hqServer.url(hqDb), options.stores);
  }
  if (options.setup ?? !options.storeSql) await Promise.all(stores.map((s) => s.workload.setup({ products: 100, customers: 5 })));
  return world;
}

/** Polls `check` until it returns true (or fails with `what` after `ms`). */
export async function eventually(what: string, check: () => Promise<boolean>, ms = 30_000, everyMs = 200): Promise<void> {
  const deadline = Date.now() + ms;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
