import os from 'node:os';
import type pg from 'pg';
import type { TableInfo } from '../catalog/pg-catalog.js';
import { BranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { TargetOp, TargetTable } from '../core/target-op.js';
import { connect, connectionError, isConnectionError } from '../db/connect.js';
import { planChunk, type PlanMode } from './plan.js';
import { MIGRATION_NAMES } from '../state/schema-version.js';
import { TableStatements } from './statements.js';

export interface PipelineIdentity {
  /** e.g. `up:S001` */
  readonly name: string;
  readonly storeCode: string;
  readonly direction: 'up' | 'down';
  readonly connector: string;
}

export interface BatchStats {
  readonly txns: number;
  readonly rows: number;
  readonly sourceCommitTime: Date | null;
}

export interface PgSinkOptions {
  readonly url: string;
  readonly role: string;
  readonly pipeline: PipelineIdentity;
  readonly positionKind: string;
  /** HQ catalog of every target table. */
  readonly catalog: ReadonlyMap<string, TableInfo>;
  /** Target tables parents first. */
  readonly targetOrder: readonly TargetTable[];
  readonly statementTimeoutMs: number;
  /** `replica`: HQ skips foreign-key checks and ordinary triggers for applied rows, as PostgreSQL's subscriptions do. */
  readonly sessionReplicationRole?: 'origin' | 'replica';
  readonly logger: Logger;
}

/** Advisory lock namespace for pipelines (the first int of the two-int form). */
const LOCK_CLASS = 0x42_4c_01; // "BL" 1

/**
 * Applies batches to a PostgreSQL target (HQ) in one transaction each,
 * together with the pipeline's new position: the rows and the position
 * commit or vanish together, which is what makes delivery exactly once.
 *
 * It holds a session advisory lock for its pipeline while connected, so a
 * second agent started for the same store waits instead of applying twice.
 */
export class PgSink {
  private client: pg.Client | null = null;
  private inTransaction = false;
  private readonly tables = new Map<string, TableStatements>();
  private readonly ranks = new Map<string, number>();
  private rowsInTransaction = 0;
  /** Changes a policy left out in the open transaction (written with the position). */
  private ignoredInTransaction = 0;
  private inFlight: Promise<void> | null = null;

  constructor(private readonly options: PgSinkOptions) {
    options.targetOrder.forEach((t, i) => this.ranks.set(`${t.schema}.${t.table}`, i));
  }

  async connect(): Promise<void> {
    const { url, role, pipeline, statementTimeoutMs } = this.options;
    const client = await connect(url, {
      role,
      applicationName: `branchline-${pipeline.name}`,
      statementTimeoutMs,
    });
    try {
      const lock = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok`, [LOCK_CLASS, pipeline.name]);
      if (!lock.rows[0]?.ok)
        throw new BranchlineError({
          code: 'BL-A002',
          message: `another agent is already applying pipeline ${pipeline.name} at ${role}.`,
          hint: 'Only one agent may serve a store at a time; this one waits and takes over if the other stops.',
        });
      await this.ensureInstalled(client);
      if (this.options.sessionReplicationRole === 'replica') await this.setReplicaRole(client);
    } catch (e) {
      await client.end().catch(() => undefined);
      throw this.mapError(e);
    }
    this.client = client;
  }

  private async ensureInstalled(client: pg.Client): Promise<void> {
    const res = await client.query(`SELECT to_regclass('branchline.pipelines') IS NOT NULL AS ok`);
    if (!(res.rows[0] as { ok: boolean }).ok)
      throw new BranchlineError({
        code: 'BL-D005',
        message: `branchline's state tables are missing at ${this.options.role}.`,
        hint: 'Run `branchline install` once to create the branchline schema.',
      });
    const applied = await client.query<{ name: string }>(`SELECT name FROM branchline.knex_migrations WHERE name = ANY($1::text[])`, [MIGRATION_NAMES]);
    const have = new Set(applied.rows.map((r) => r.name));
    const missing = MIGRATION_NAMES.filter((n) => !have.has(n));
    if (missing.length > 0)
      throw new BranchlineError({
        code: 'BL-D005',
        message: `branchline's state schema at ${this.options.role} is older than this agent (missing ${missing.join(', ')}).`,
        hint: 'Run `branchline install` once: it brings the branchline schema up to date and changes nothing else.',
      });
  }

  private async setReplicaRole(client: pg.Client): Promise<void> {
    try {
      await client.query(`SET session_replication_role = replica`);
    } catch (e) {
      if ((e as { code?: string }).code !== '42501') throw e;
      throw new BranchlineError(
        {
          code: 'BL-D004',
          message: `the HQ user may not set session_replication_role (apply.session_replication_role: replica).`,
          hint: 'Run GRANT SET ON PARAMETER session_replication_role TO <user>; (PostgreSQL 15 or later) or use a superuser, or set apply.session_replication_role: origin.',
        },
        { cause: e },
      );
    }
  }

  /** The position stored with the last committed batch, or null before the first. */
  async storedPosition(): Promise<string | null> {
    const res = await this.db.query<{ position: string; position_kind: string }>(
      `SELECT position, position_kind FROM branchline.pipelines WHERE pipeline = $1`,
      [this.options.pipeline.name],
    );
    const row = res.rows[0];
    if (!row) return null;
    if (row.position_kind !== this.options.positionKind)
      throw new BranchlineError({
        code: 'BL-A003',
        message: `pipeline ${this.options.pipeline.name} was last run with another connector (its position at HQ is a ${row.position_kind} position).`,
        hint: 'Changing a store\'s connector needs a fresh start: reset its position and run an initial load.',
      });
    return row.position;
  }

  get open(): boolean {
    return this.inTransaction;
  }

  /**
   * Applies a chunk inside the current transaction, opening one if needed.
   * Double-buffered: the chunk's statements are queued on the connection and
   * not waited for, so the pipeline decodes and maps the next chunk while HQ
   * executes this one; the next call plans its chunk, then waits for this one
   * before queuing (at most two chunks in memory). `commit` waits for all. An
   * error surfaces at the next call.
   */
  async apply(ops: readonly TargetOp[], mode: PlanMode): Promise<number> {
    if (ops.length === 0) return 0;
    const db = this.db;
    const { statements, ignored } = planChunk(ops, mode, {
      statements: (t) => this.statementsFor(t),
      rank: (t) => this.ranks.get(`${t.schema}.${t.table}`) ?? Number.MAX_SAFE_INTEGER,
    });
    await this.drain();
    // One statement after the other (a chain, not pg's deprecated query
    // queue); a failure skips the rest of the chunk.
    let chain: Promise<unknown> = Promise.resolve();
    if (!this.inTransaction) {
      this.inTransaction = true;
      this.rowsInTransaction = 0;
      this.ignoredInTransaction = 0;
      chain = db.query('BEGIN');
    }
    this.ignoredInTransaction += ignored;
    let rows = 0;
    for (const st of statements) {
      chain = chain.then(() =>
        db.query(st.sql, st.params).then(
          (res) => {
            // Rows HQ already held: an insert_only policy left them alone.
            if (st.kind === 'insert-missing') this.ignoredInTransaction += st.rows - (res.rowCount ?? 0);
          },
          (e: unknown) => Promise.reject(this.mapError(e, st.table)),
        ),
      );
      rows += st.rows;
    }
    const done = chain.then(() => undefined);
    done.catch(() => undefined); // handled by drain(); never an unhandled rejection meanwhile
    this.inFlight = done;
    this.rowsInTransaction += rows;
    return rows;
  }

  /** Waits for the queued chunk; its first failure is thrown. */
  private async drain(): Promise<void> {
    const pending = this.inFlight;
    this.inFlight = null;
    if (pending) await pending;
  }

  /** Writes the position with the rows and commits. */
  async commit(position: string, stats: BatchStats): Promise<void> {
    const db = this.db;
    if (!this.inTransaction) {
      await db.query('BEGIN');
      this.inTransaction = true;
      this.ignoredInTransaction = 0;
    }
    const p = this.options.pipeline;
    try {
      await this.drain();
      await db.query(
        `INSERT INTO branchline.pipelines AS p
                (pipeline, store_code, direction, connector, position_kind, position, source_commit_time, applied_at,
                 txns_applied, rows_applied, batches_applied, changes_ignored)
         VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp(), $8, $9, 1, $10)
         ON CONFLICT (pipeline) DO UPDATE SET
           position = EXCLUDED.position,
           source_commit_time = COALESCE(EXCLUDED.source_commit_time, p.source_commit_time),
           applied_at = EXCLUDED.applied_at,
           txns_applied = p.txns_applied + EXCLUDED.txns_applied,
           rows_applied = p.rows_applied + EXCLUDED.rows_applied,
           batches_applied = p.batches_applied + 1,
           changes_ignored = p.changes_ignored + EXCLUDED.changes_ignored`,
        [p.name, p.storeCode, p.direction, p.connector, this.options.positionKind, position, stats.sourceCommitTime, stats.txns, stats.rows, this.ignoredInTransaction],
      );
      await db.query('COMMIT');
      this.inTransaction = false;
      this.ignoredInTransaction = 0;
    } catch (e) {
      // Still "in a transaction" for rollback(), which ends it on a live connection.
      throw this.mapError(e);
    }
  }

  async rollback(): Promise<void> {
    await this.drain().catch(() => undefined);
    this.ignoredInTransaction = 0;
    if (!this.client || !this.inTransaction) return;
    this.inTransaction = false;
    await this.client.query('ROLLBACK').catch(() => undefined);
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    this.inFlight = null;
    this.inTransaction = false;
    if (c) await c.end().catch(() => undefined);
  }

  /** Report runtime status outside any batch (best effort: HQ may be the thing that is down). */
  async reportStatus(state: string, fields: { receivedPosition?: string | null; oldestUnapplied?: Date | null; error?: { code: string; message: string } | null }): Promise<void> {
    if (!this.client || this.inTransaction) return;
    await this.client
      .query(
        `INSERT INTO branchline.pipeline_status AS s (pipeline, agent, state, received_position, oldest_unapplied_commit_time,
                last_error_code, last_error, last_error_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $6::text IS NULL THEN NULL ELSE clock_timestamp() END, clock_timestamp())
         ON CONFLICT (pipeline) DO UPDATE SET agent = EXCLUDED.agent, state = EXCLUDED.state,
           received_position = COALESCE(EXCLUDED.received_position, s.received_position),
           oldest_unapplied_commit_time = EXCLUDED.oldest_unapplied_commit_time,
           last_error_code = COALESCE(EXCLUDED.last_error_code, s.last_error_code),
           last_error = COALESCE(EXCLUDED.last_error, s.last_error),
           last_error_at = COALESCE(EXCLUDED.last_error_at, s.last_error_at),
           updated_at = EXCLUDED.updated_at`,
        [
          this.options.pipeline.name,
          `${os.hostname()}:${process.pid}`,
          state,
          fields.receivedPosition ?? null,
          fields.oldestUnapplied ?? null,
          fields.error?.code ?? null,
          fields.error?.message ?? null,
        ],
      )
      .catch((e: Error) => this.options.logger.debug('status not reported', { error: e.message }));
  }

  private get db(): pg.Client {
    if (!this.client) throw new Error('sink not connected');
    return this.client;
  }

  private statementsFor(t: TargetTable): TableStatements {
    // Two mapping files may write one HQ table by different unique keys.
    const id = `${t.schema}.${t.table}|${t.key.join(',')}`;
    let s = this.tables.get(id);
    if (!s) {
      const info = this.options.catalog.get(`${t.schema}.${t.table}`);
      if (!info) throw new Error(`target table ${id} not described`);
      s = new TableStatements(t, info);
      this.tables.set(id, s);
    }
    return s;
  }

  private mapError(e: unknown, table?: TargetTable): unknown {
    if (e instanceof BranchlineError) return e;
    if (isConnectionError(e)) return connectionError(e, this.options.url, this.options.role);
    const err = e as { code?: string; message?: string; detail?: string; constraint?: string };
    if (err?.code && /^(23|22|42)/.test(err.code)) {
      const where = table ? ` in ${table.schema}.${table.table}` : '';
      return new ApplyRejected(
        {
          code: 'BL-A001',
          message: `${this.options.role} rejected a batch${where}: ${err.message}${err.detail ? ` (${err.detail})` : ''}.`,
          hint: 'The batch is retried in exact source order; if it still fails the data or the mapping needs a fix (see the mapping file for this table).',
        },
        err.code,
        e,
      );
    }
    return e;
  }
}

/** HQ refused the data itself (a constraint, a type): worth a retry in exact order, not a reconnect loop. */
export class ApplyRejected extends BranchlineError {
  constructor(
    problem: ConstructorParameters<typeof BranchlineError>[0],
    readonly sqlState: string,
    cause: unknown,
  ) {
    super(problem, { cause });
  }
}
