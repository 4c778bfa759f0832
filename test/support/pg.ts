import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import pg from 'pg';
import { EmbeddedServer } from '../../src/embedded/pg-server.js';

/**
 * A PostgreSQL server for a test file: an embedded one started for the file,
 * or the server in BRANCHLINE_TEST_PG_URL (databases are created and dropped
 * there; tests that must stop or restart a server say they cannot run).
 */
export interface TestServer {
  readonly name: string;
  /** True when this file owns the server and may stop and restart it. */
  readonly controllable: boolean;
  url(database: string): string;
  /** Creates a uniquely named database and returns its name. */
  createDatabase(prefix: string): Promise<string>;
  query<R extends Record<string, unknown> = Record<string, unknown>>(database: string, sql: string, params?: unknown[]): Promise<R[]>;
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Stops (embedded) or drops the databases this file created (external). */
  dispose(): Promise<void>;
}

export const EXTERNAL_URL = process.env['BRANCHLINE_TEST_PG_URL'];

/** `env`: the server process's extra environment (embedded servers only; see EmbeddedServerOptions.env). */
export async function startTestServer(name: string, settings?: Record<string, string | number>, env?: Record<string, string>): Promise<TestServer> {
  if (EXTERNAL_URL) return externalServer(name, EXTERNAL_URL);
  const server = await EmbeddedServer.start({ name, settings: settings ?? {}, ...(env ? { env } : {}) });
  const created: string[] = [];
  return {
    name,
    controllable: true,
    url: (db) => server.url(db),
    async createDatabase(prefix) {
      const db = uniqueName(prefix);
      await server.createDatabase(db);
      created.push(db);
      return db;
    },
    query: (db, sql, params) => server.query(db, sql, params),
    stop: () => server.stop(),
    restart: () => server.restart(),
    dispose: () => server.destroy(),
  };
}

function externalServer(name: string, url: string): TestServer {
  const created: string[] = [];
  const urlFor = (db: string) => {
    const u = new URL(url);
    u.pathname = `/${db}`;
    return u.toString();
  };
  const query = async <R extends Record<string, unknown>>(db: string, sql: string, params?: unknown[]) => {
    const c = new pg.Client({ connectionString: urlFor(db) });
    await c.connect();
    try {
      return (await c.query<R>(sql, params)).rows;
    } finally {
      await c.end();
    }
  };
  return {
    name,
    controllable: false,
    url: urlFor,
    async createDatabase(prefix) {
      const db = uniqueName(prefix);
      await query('postgres', `CREATE DATABASE "${db}"`);
      created.push(db);
      return db;
    },
    query,
    stop: () => Promise.reject(new Error('cannot stop the server in BRANCHLINE_TEST_PG_URL')),
    restart: () => Promise.reject(new Error('cannot restart the server in BRANCHLINE_TEST_PG_URL')),
    async dispose() {
      for (const db of created) {
        await query('postgres', `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, [db]).catch(() => undefined);
        await query('postgres', `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
      }
    },
  };
}

function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`.toLowerCase();
}

/** Why a test that needs to stop servers cannot run here (printed, never silent). */
export function cannotControl(server: TestServer): string | false {
  return server.controllable ? false : 'needs to stop and restart PostgreSQL, which it cannot do to the server in BRANCHLINE_TEST_PG_URL';
}

/**
 * HQ's server and the stores' for the tests of a describe block: started
 * before them, removed after. `stores` settings, e.g. `{ max_slot_wal_keep_size: '1MB' }`.
 */
export function serversForTests(options: { readonly stores?: Record<string, string | number> } = {}): { readonly hq: TestServer; readonly stores: TestServer } {
  const servers = {} as { hq: TestServer; stores: TestServer };
  before(async () => {
    [servers.hq, servers.stores] = await Promise.all([startTestServer('hq'), startTestServer('stores', options.stores)]);
  });
  after(async () => {
    await Promise.all([servers.hq?.dispose(), servers.stores?.dispose()]);
  });
  return servers;
}
