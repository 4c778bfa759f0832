import pg from 'pg';
import { PgLogicalInstaller, PgLogicalSource } from '../../connectors/pg-logical/index.js';
import { PgTriggerInstaller, PgTriggerSource, type XidPosition } from '../../connectors/pg-trigger/index.js';
import { downOriginName } from '../../src/agent/prepare.js';
import type { TableId } from '../../src/core/change.js';
import { silentLogger } from '../../src/core/logger.js';
import type { SlotPosition } from '../../src/core/slot-position.js';
import { qualified, quoteIdent } from '../../src/db/connect.js';
import { startTestServer, type TestServer } from './pg.js';
import type { ContractContext, ContractHarness, ContractOp, ContractWriter, OpenTransaction } from './source-contract-types.js';

/**
 * The contract suite's adapters for the two PostgreSQL sources, on ONE
 * PostgreSQL server (embedded, or BRANCHLINE_TEST_PG_URL) started at the
 * first setup() and stopped when both harnesses are closed. Each setup()
 * creates its own database with the suite's `item` table and the source
 * installed the way `branchline install` does it.
 */
export interface PgContractHarnesses {
  readonly logical: ContractHarness<SlotPosition>;
  readonly trigger: ContractHarness<XidPosition>;
  /** Stops the server (idempotent; for a file's after(), in case a suite was skipped). */
  close(): Promise<void>;
}

const TABLE: TableId = { schema: 'public', table: 'item' };
const CREATE_TABLE = `CREATE TABLE ${qualified(TABLE.schema, TABLE.table)} (id integer PRIMARY KEY, name text, qty integer)`;

export function pgContractHarnesses(): PgContractHarnesses {
  let server: Promise<TestServer> | null = null;
  let users = 2;
  const shared = () => (server ??= startTestServer('source-contract'));
  const stop = async () => {
    const s = server;
    server = null;
    if (s) await (await s).dispose();
  };
  const release = async () => {
    if (--users <= 0) await stop();
  };
  const logger = silentLogger();
  /** A database of its own for one context, holding the suite's table. */
  const freshDatabase = async (prefix: string) => {
    const srv = await shared();
    const db = await srv.createDatabase(prefix);
    await srv.query(db, CREATE_TABLE);
    return { srv, db, url: srv.url(db) };
  };

  const logical: ContractHarness<SlotPosition> = {
    name: 'pg-logical',
    unavailable: null,
    close: release,
    async setup() {
      const { srv, db, url } = await freshDatabase('contract_logical');
      const slot = `bl_${db}`;
      const publication = 'branchline';
      const installer = new PgLogicalInstaller({ url, role: 'contract store', slot, publication, logger });
      // The suite asks for whole before-images: pgoutput sends them with REPLICA IDENTITY FULL.
      await installer.ensureFullBeforeImages([TABLE]);
      await installer.install([TABLE]);
      // What branchline's down apply writes at a store carries this replication origin (see PgSink's setOrigin).
      const origin = downOriginName(db);
      const writer = new PgWriter(url, {
        session: [
          { sql: `SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)`, params: [origin] },
          { sql: `SELECT pg_replication_origin_session_setup($1)`, params: [origin] },
        ],
        transaction: [],
      });
      return context(writer, () => new PgLogicalSource({ url, role: 'contract store', slot, publication, logger, statusIntervalMs: 200, highWaterMark: 20 }), async () => {
        await installer.uninstall({ force: true });
        await srv.query(db, `SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = $1`, [origin]);
        await dropDatabase(srv, db);
      });
    },
  };

  const trigger: ContractHarness<XidPosition> = {
    name: 'pg-trigger',
    unavailable: null,
    close: release,
    async setup() {
      const { srv, db, url } = await freshDatabase('contract_trigger');
      await new PgTriggerInstaller({ url, role: 'contract HQ', logger }).install([TABLE]);
      // What branchline's apply writes here is marked with the side it came from; this reader is that side.
      const writer = new PgWriter(url, { session: [], transaction: [{ sql: `SELECT set_config('branchline.origin', 'HQ', true)`, params: [] }] });
      // Pages of 7 log rows: a window of any size is read in several queries and must still arrive whole.
      return context(writer, () => new PgTriggerSource({ url, role: 'contract HQ', logger, pollMs: 100, pageRows: 7, skipOrigin: 'HQ' }), () => dropDatabase(srv, db));
    },
  };

  return { logical, trigger, close: stop };
}

function context<P>(writer: PgWriter, source: ContractContext<P>['source'], drop: () => Promise<void>): ContractContext<P> {
  return {
    table: TABLE,
    writer,
    source,
    async dispose() {
      await writer.end();
      await drop();
    },
  };
}

async function dropDatabase(srv: TestServer, db: string): Promise<void> {
  await srv.query('postgres', `DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
}

interface Statement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

/** How branchline's own apply marks a session (before its transaction) and a transaction (inside it). */
interface BranchlineMark {
  readonly session: readonly Statement[];
  readonly transaction: readonly Statement[];
}

/** The suite's writer on PostgreSQL: one pooled connection per transaction, so open ones run side by side. */
class PgWriter implements ContractWriter {
  private readonly pool: pg.Pool;
  private readonly open = new Set<pg.PoolClient>();

  constructor(
    private readonly url: string,
    private readonly mark: BranchlineMark,
  ) {
    this.pool = new pg.Pool({ connectionString: url, max: 10 });
    // pool.end() resolves before its idle clients' sockets are closed, and the
    // context drops its database WITH (FORCE) right after: a backend still
    // closing is then terminated, and the pool emits that as 'error'. Without
    // a listener that is an uncaught exception in whatever test runs then (it
    // failed CI once). The suite's own statements reject on their own.
    this.pool.on('error', () => undefined);
  }

  async transaction(ops: readonly ContractOp[]): Promise<void> {
    const t = await this.begin(ops);
    await t.commit();
  }

  async begin(ops: readonly ContractOp[]): Promise<OpenTransaction> {
    const c = await this.pool.connect();
    this.open.add(c);
    const end = async (sql: 'COMMIT' | 'ROLLBACK') => {
      this.open.delete(c);
      try {
        await c.query(sql);
        c.release();
      } catch (e) {
        c.release(true);
        throw e;
      }
    };
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_current_xact_id()'); // takes its xid now, whatever the operations
      await runOps(c, ops);
    } catch (e) {
      await end('ROLLBACK').catch(() => undefined);
      throw e;
    }
    return { run: (more) => runOps(c, more), commit: () => end('COMMIT'), rollback: () => end('ROLLBACK') };
  }

  async transactionAsBranchline(ops: readonly ContractOp[]): Promise<void> {
    // A session of its own: a replication origin stays set up for the session until it ends.
    const c = new pg.Client({ connectionString: this.url });
    await c.connect();
    try {
      for (const s of this.mark.session) await c.query(s.sql, [...s.params]);
      await c.query('BEGIN');
      for (const s of this.mark.transaction) await c.query(s.sql, [...s.params]);
      await runOps(c, ops);
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
  }

  async end(): Promise<void> {
    for (const c of this.open) {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release(true);
    }
    this.open.clear();
    await this.pool.end();
  }
}

const ITEM = qualified(TABLE.schema, TABLE.table);

async function runOps(c: pg.ClientBase, ops: readonly ContractOp[]): Promise<void> {
  for (const op of ops) {
    switch (op.op) {
      case 'insert':
        await c.query(`INSERT INTO ${ITEM} (id, name, qty) VALUES ($1, $2, $3)`, [op.row.id, op.row.name, op.row.qty]);
        break;
      case 'update':
        expectRows(await update(c, op.set, `id = $1`, [op.id]), 1, op);
        break;
      case 'update-range':
        await update(c, op.set, `id BETWEEN $1 AND $2`, [op.from, op.to]);
        break;
      case 'delete':
        expectRows(await c.query(`DELETE FROM ${ITEM} WHERE id = $1`, [op.id]), 1, op);
        break;
    }
  }
}

async function update(c: pg.ClientBase, set: { name?: string; qty?: number }, where: string, params: unknown[]): Promise<pg.QueryResult> {
  const cols = Object.entries(set).filter(([, v]) => v !== undefined);
  if (cols.length === 0) throw new Error('test bug: an update that sets nothing');
  const assignments = cols.map(([k], i) => `${quoteIdent(k)} = $${params.length + i + 1}`);
  return c.query(`UPDATE ${ITEM} SET ${assignments.join(', ')} WHERE ${where}`, [...params, ...cols.map(([, v]) => v)]);
}

function expectRows(r: pg.QueryResult, n: number, op: ContractOp): void {
  if (r.rowCount !== n) throw new Error(`test bug: ${JSON.stringify(op)} touched ${r.rowCount} rows, not ${n}`);
}
