import os from 'node:os';
import type pg from 'pg';
import type { TableInfo } from '../catalog/pg-catalog.js';
import { BranchlineError, describeProblem } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { TargetOp, TargetTable } from '../core/target-op.js';
import { bounded, connect, connectionError, endClient, isConnectionError } from '../db/connect.js';
import { planChunk, type ChunkPlan, type PlanMode } from './plan.js';
import { ChangeApplier, type ChangeOutcome } from './change-applier.js';
import { MIGRATION_NAMES } from '../state/schema-version.js';
import { TableStatements } from './statements.js';
import { runStatement } from './run-statement.js';
import { AssociationResolver, type KeyTranslator } from '../associate/resolver.js';
import { opRowKeys, parksJson, parkUnresolved, PARK_SQL } from './parked-chunk.js';
import { changeFromJson, parkRecord, type ChangeOrigin, type MappedChange, type ParkRecord } from '../pipeline/parking.js';

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
  /** Translates store codes to HQ keys (one per pipeline: its cache outlives sessions). */
  readonly associations?: KeyTranslator;
  /**
   * Who the applied rows are written for (no echo): `name` goes into
   * `branchline.origin` for the session (HQ's change-log triggers record it,
   * and the store it came from does not read it back); `replicationOrigin`
   * also marks the session's transactions with that replication origin, so
   * a logical slot reading this database with origin 'none' skips them.
   */
  readonly origin?: { readonly name: string; readonly replicationOrigin?: string };
  /**
   * False: the target may hold rows the source inserted (a store's down
   * channel after an initial load that resumed replays what changed at HQ
   * meanwhile over rows copied later), so inserts are upserts instead of
   * plain INSERTs that would fail and have the batch redone change by change.
   * Default true.
   */
  readonly plainInserts?: boolean;
  /** Rows a source inserted go by COPY when a statement holds at least this many (apply.copy_min_rows); undefined or 0: never. */
  readonly copyMinRows?: number;
  readonly logger: Logger;
}

/** What a chunk brings besides its operations. */
export interface ChunkExtras {
  /** origins[i]: the change and mapping operation i came from (set for operations that carry associations). */
  readonly origins?: readonly (ChangeOrigin | undefined)[];
  /** Changes the pipeline parked while mapping (an expression failed, an earlier change of the row is parked). */
  readonly parks?: readonly ParkRecord[];
  /** Mappings whose parked changes a TRUNCATE supersedes: discarded (by branchline, with the reason) before this chunk runs. */
  readonly supersede?: readonly { mapping: string; reason: string }[];
}

/** Advisory lock namespace for pipelines (the first int of the two-int form). */
const LOCK_CLASS = 0x42_4c_01; // "BL" 1
/** Each pipeline's last session at each target in this process (`pid@backend_start`): a lock still held by it is our own hung connection. */
const OWN_SESSIONS = new Map<string, string>();
/** Sessions a sink of this process holds open now: never "our hung connection", whatever OWN_SESSIONS says (two sinks of one pipeline in one process, e.g. `reconcile --fix` beside a held sink). */
const LIVE_SESSIONS = new Set<string>();

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
  /** Changes parked in the open transaction (counted with the position). */
  private parkedInTransaction = 0;
  private inFlight: Promise<void> | null = null;
  /** The session holding the pipeline's lock (`pid@backend_start`), while connected. */
  private session: string | null = null;

  constructor(private readonly options: PgSinkOptions) {
    options.targetOrder.forEach((t, i) => this.ranks.set(`${t.schema}.${t.table}`, i));
  }

  async connect(): Promise<void> {
    const { url, role, pipeline, statementTimeoutMs } = this.options;
    const client = await connect(url, {
      role,
      applicationName: `branchline-${pipeline.name}`,
      // The server answers every statement within its timeout, if only with a cancel: past that the link hangs.
      ...bounded(statementTimeoutMs),
    });
    try {
      if (!(await this.tryLock(client)))
        throw new BranchlineError({
          code: 'BL-A002',
          message: `another agent is already applying pipeline ${pipeline.name} at ${role}.`,
          hint: 'Only one agent may serve a store at a time; this one waits and takes over if the other stops.',
        });
      await this.ensureInstalled(client);
      if (this.options.sessionReplicationRole === 'replica') await this.setReplicaRole(client);
      if (this.options.origin) await this.setOrigin(client, this.options.origin);
    } catch (e) {
      await client.end().catch(() => undefined);
      throw this.mapError(e);
    }
    this.client = client;
  }

  /**
   * The pipeline's lock. Held by this process' own former session (its
   * backend pid remembered), it is a connection that hung without a reset
   * (BL-S010) and that the server still serves: that backend is terminated
   * and the lock taken. Any other holder is another agent (BL-A002).
   */
  private async tryLock(client: pg.Client): Promise<boolean> {
    const { url, pipeline } = this.options;
    const key = `${url}\u0000${pipeline.name}`;
    // The session is named by pid and start time: a pid alone may since belong to another agent's session.
    const take = async () =>
      (
        await client.query<{ ok: boolean; session: string }>(
          `SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok, pg_backend_pid() || '@' || (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()) AS session`,
          [LOCK_CLASS, pipeline.name],
        )
      ).rows[0]!;
    let lock = await take();
    const former = OWN_SESSIONS.get(key);
    if (!lock.ok && former !== undefined) {
      const holder = await client.query<{ pid: number; session: string }>(
        `SELECT l.pid, l.pid || '@' || a.backend_start AS session FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = $1::bigint::oid AND l.objid = (hashtext($2)::bigint & 4294967295)::oid AND l.objsubid = 2`,
        [LOCK_CLASS, pipeline.name],
      );
      const stale = holder.rows[0];
      if (stale?.session === former && !LIVE_SESSIONS.has(former)) {
        this.options.logger.warn('the pipeline\'s lock is held by this agent\'s former connection, which hung: terminating that session', { pid: stale.pid });
        await client.query(`SELECT pg_terminate_backend($1)`, [stale.pid]);
        for (let i = 0; i < 25 && !lock.ok; i++) {
          await new Promise((r) => setTimeout(r, 200));
          lock = await take();
        }
      }
    }
    if (lock.ok) {
      OWN_SESSIONS.set(key, lock.session);
      LIVE_SESSIONS.add(lock.session);
      this.session = lock.session;
    }
    return lock.ok;
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

  private async setOrigin(client: pg.Client, origin: NonNullable<PgSinkOptions['origin']>): Promise<void> {
    await client.query(`SELECT set_config('branchline.origin', $1, false)`, [origin.name]);
    const ro = origin.replicationOrigin;
    if (!ro) return;
    try {
      await client.query(`SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)`, [ro]);
      await client.query(`SELECT pg_replication_origin_session_setup($1)`, [ro]);
    } catch (e) {
      if ((e as { code?: string }).code !== '42501') throw e;
      throw new BranchlineError(
        {
          code: 'BL-D004',
          message: `the ${this.options.role} user may not mark what branchline applies with a replication origin (needed so those rows are not captured back).`,
          hint: 'As a superuser, run GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text) TO <user>; or connect as a superuser.',
        },
        { cause: e },
      );
    }
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
    await this.refuseDuringLoad();
    if (!row) return null;
    if (row.position_kind !== this.options.positionKind)
      throw new BranchlineError({
        code: 'BL-A003',
        message: `pipeline ${this.options.pipeline.name} was last run with another connector (its position at HQ is a ${row.position_kind} position).`,
        hint: 'Changing a store\'s connector needs a fresh start: reset its position and run an initial load.',
      });
    return row.position;
  }

  /**
   * An unfinished initial load of this pipeline's target (`branchline
   * snapshot`) holds a part of the tables only: streaming now would apply
   * changes around rows the load has yet to copy (twice, in aggregates).
   * The pipeline backs off and starts once the load is done.
   */
  private async refuseDuringLoad(): Promise<void> {
    const p = this.options.pipeline;
    const res = await this.db.query(`SELECT 1 FROM branchline.initial_loads WHERE pipeline = $1 AND status = 'copying' LIMIT 1`, [p.name]);
    if (res.rowCount === 0) return;
    throw new BranchlineError({
      code: 'BL-S007',
      message: `the initial load of store ${p.storeCode} (${p.name}) into ${this.options.role} did not finish, so the pipeline cannot start yet.`,
      hint: `Run \`branchline snapshot --store ${p.storeCode}${p.direction === 'up' ? ' --direction up' : ''}\`: it resumes the load; this pipeline starts once it is done.`,
    });
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
  async apply(ops: readonly TargetOp[], mode: PlanMode, extras: ChunkExtras = {}): Promise<ParkRecord[]> {
    if (extras.supersede && extras.supersede.length > 0) {
      await this.drain();
      await this.begin();
      for (const s of extras.supersede)
        await this.db
          .query(
            `UPDATE branchline.parked SET status = 'discarded', discarded_at = clock_timestamp(), discarded_by = 'branchline', discard_reason = $3
              WHERE pipeline = $1 AND mapping = $2 AND status = 'parked'`,
            [this.options.pipeline.name, s.mapping, s.reason],
          )
          .catch((e: unknown) => Promise.reject(this.mapError(e)));
    }
    if (mode === 'ordered' && extras.origins && ops.length > 0) return this.applyEach(ops, extras.origins, extras.parks ?? []);
    let parks: ParkRecord[] = extras.parks ? [...extras.parks] : [];
    const resolver = this.options.associations;
    if (resolver && AssociationResolver.needed(ops)) {
      // Look-ups and allocations run in the batch transaction, before planning.
      await this.drain();
      await this.begin();
      const resolution = await resolver.resolve(this.db, ops).catch((e: unknown) => Promise.reject(this.mapError(e)));
      const r = parkUnresolved(ops, resolution, extras.origins ?? []);
      ops = r.ops;
      // In stream order: the pipeline's own parks and these interleave within the chunk.
      parks = [...parks, ...r.parks].sort((a, b) => a.at - b.at);
    }
    if (ops.length === 0 && parks.length === 0) return parks;
    const db = this.db;
    const { statements, ignored } = planChunk(ops, mode, {
      statements: (t) => this.statementsFor(t),
      rank: (t) => this.ranks.get(`${t.schema}.${t.table}`) ?? Number.MAX_SAFE_INTEGER,
      plainInserts: this.options.plainInserts ?? true,
      ...(this.options.copyMinRows ? { copyMinRows: this.options.copyMinRows } : {}),
    });
    await this.drain();
    // One statement after the other (a chain, not pg's deprecated query
    // queue); a failure skips the rest of the chunk.
    let chain: Promise<unknown> = Promise.resolve();
    if (!this.inTransaction) {
      this.inTransaction = true;
      this.rowsInTransaction = 0;
      this.ignoredInTransaction = 0;
      this.parkedInTransaction = 0;
      chain = db.query('BEGIN');
    }
    this.ignoredInTransaction += ignored;
    if (parks.length > 0) {
      const p = this.options.pipeline;
      const json = parksJson(parks);
      chain = chain.then(() => db.query(PARK_SQL, [p.name, p.storeCode, json]).catch((e: unknown) => Promise.reject(this.mapError(e))));
      this.parkedInTransaction += parks.length;
    }
    let rows = 0;
    for (const st of statements) {
      chain = chain.then(() =>
        runStatement(db, st).then(
          (rowCount) => {
            // Rows HQ already held: an insert_only policy left them alone.
            if (st.kind === 'insert-missing') this.ignoredInTransaction += st.rows - rowCount;
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
    return parks;
  }

  /** The row keys of the pipeline's parked changes, by mapping (later changes of those rows park behind them). */
  async parkedRows(): Promise<{ mapping: string; rowKeys: string[] }[]> {
    const res = await this.db.query<{ mapping: string; row_keys: string[] }>(
      `SELECT mapping, row_keys FROM branchline.parked WHERE pipeline = $1 AND status = 'parked' ORDER BY id`,
      [this.options.pipeline.name],
    );
    return res.rows.map((r) => ({ mapping: r.mapping, rowKeys: r.row_keys }));
  }

  /**
   * Whether a parked change of this pipeline may go now (its association
   * exists, or `branchline retry` asked), and how many are parked (a
   * discarded one no longer holds its row's later changes back). Where the
   * associations are kept elsewhere (down: at HQ), the translator is asked
   * about the ones the parked changes wait for.
   */
  async parkedState(): Promise<{ retryable: boolean; parked: number }> {
    const elsewhere = this.options.associations?.associatedAny?.bind(this.options.associations);
    const res = await this.db.query<{ retryable: boolean; parked: string }>(
      `SELECT EXISTS (
         SELECT 1 FROM branchline.parked p
          WHERE p.pipeline = $1 AND p.status = 'parked'
            AND (p.retry_requested_at IS NOT NULL
                 OR (p.reason_code = 'BL-M021' AND NOT $2 AND EXISTS (SELECT 1 FROM branchline.associations a
                       WHERE a.store_code = p.store_code AND a.entity = p.entity AND a.branch_code = p.branch_code))
                 -- waiting behind a change that is no longer parked (applied elsewhere, or discarded)
                 OR (p.reason_code = 'BL-P006' AND NOT EXISTS (SELECT 1 FROM branchline.parked q
                       WHERE q.pipeline = p.pipeline AND q.status = 'parked' AND q.mapping = p.mapping AND q.id < p.id AND q.row_keys && p.row_keys)))) AS retryable,
         (SELECT count(*) FROM branchline.parked WHERE pipeline = $1 AND status = 'parked') AS parked`,
      [this.options.pipeline.name, elsewhere !== undefined],
    );
    const r = res.rows[0];
    const parked = Number(r?.parked ?? 0);
    if (r?.retryable || !elsewhere || parked === 0) return { retryable: r?.retryable ?? false, parked };
    const waiting = await this.db.query<{ entity: string; code: string }>(
      `SELECT DISTINCT entity, branch_code AS code FROM branchline.parked
        WHERE pipeline = $1 AND status = 'parked' AND reason_code = 'BL-M021' AND entity IS NOT NULL AND branch_code IS NOT NULL`,
      [this.options.pipeline.name],
    );
    return { retryable: waiting.rows.length > 0 && (await elsewhere(waiting.rows)), parked };
  }

  /**
   * Retries every parked change of this pipeline, oldest first, in one HQ
   * transaction (the position does not move). Each change is mapped again by
   * `remap` (so a fixed mapping file applies), its associations resolved, and
   * its operations applied in exact order under a savepoint: applied, its
   * parked record is deleted in the same transaction; otherwise it stays with
   * the new reason, and later changes of its rows stay behind it.
   */
  async retryParked(remap: (mapping: string, change: MappedChange, commitTime: Date | null) => TargetOp[]): Promise<{ applied: number; remaining: { mapping: string; rowKeys: string[] }[] }> {
    const db = this.db;
    if (this.inTransaction) throw new Error('internal: retryParked inside a batch');
    await this.begin();
    try {
      const res = await db.query<{ id: string; mapping: string; target_table: string; row_keys: string[]; change: unknown; source_commit_time: Date | null }>(
        `SELECT id, mapping, target_table, row_keys, change, source_commit_time FROM branchline.parked
          WHERE pipeline = $1 AND status = 'parked' ORDER BY id FOR UPDATE`,
        [this.options.pipeline.name],
      );
      const applier = this.changeApplier();
      const remaining: { mapping: string; rowKeys: string[] }[] = [];
      let applied = 0;
      for (const e of res.rows) {
        const change = { mapping: e.mapping, target: e.target_table.slice(e.target_table.indexOf('.') + 1), rowKeys: e.row_keys };
        let outcome: ChangeOutcome;
        try {
          outcome = await applier.apply(change, remap(e.mapping, changeFromJson(e.change), e.source_commit_time));
        } catch (err) {
          // The mapping fails on it again (or is gone): it stays, with that reason.
          if (!(err instanceof BranchlineError) || !err.code.startsWith('BL-M') && !err.code.startsWith('BL-P')) throw err;
          applier.hold(e.mapping, e.row_keys);
          outcome = { kind: 'held', reason: { code: err.code, message: describeProblem(err.problem) } };
        }
        if (outcome.kind === 'applied') {
          await db.query(`DELETE FROM branchline.parked WHERE id = $1`, [e.id]);
          applied++;
          continue;
        }
        const why = outcome.reason;
        await db.query(
          `UPDATE branchline.parked SET attempts = attempts + 1, last_attempt_at = clock_timestamp(), retry_requested_at = NULL,
                  reason_code = $2, reason = $3, entity = $4, branch_code = $5 WHERE id = $1`,
          [e.id, why.code, why.message, why.entity ?? null, why.branchCode ?? null],
        );
        remaining.push({ mapping: e.mapping, rowKeys: e.row_keys });
      }
      await this.commitOpen();
      return { applied, remaining };
    } catch (e) {
      await this.rollback();
      throw this.mapError(e);
    }
  }

  /**
   * The exact plan, change by change (see ChangeApplier): a change HQ rejects
   * for its data is parked with HQ's reason (BL-A004) instead of failing the
   * batch, and so are later changes of its rows; the others are applied.
   * Used to redo a batch the grouped plan could not apply, so a bad row
   * stops nothing. Slower (a round trip per change), and only for that batch.
   */
  private async applyEach(ops: readonly TargetOp[], origins: readonly (ChangeOrigin | undefined)[], given: readonly ParkRecord[]): Promise<ParkRecord[]> {
    await this.drain();
    await this.begin();
    const applier = this.changeApplier();
    for (const p of given) applier.hold(p.mapping, p.rowKeys);
    const parks: ParkRecord[] = [...given];
    for (let i = 0; i < ops.length; ) {
      const origin = origins[i];
      let j = i + 1;
      while (j < ops.length && origin !== undefined && origins[j] === origin) j++;
      const group = ops.slice(i, j);
      const at = i;
      i = j;
      if (origin === undefined) {
        // A truncate: no change to park it with; a failure fails the batch.
        const { statements, ignored } = this.planExact(group);
        this.ignoredInTransaction += ignored;
        for (const st of statements) await runStatement(this.db, st).catch((e: unknown) => Promise.reject(this.mapError(e, st.table)));
        continue;
      }
      const keys = group.flatMap(opRowKeys);
      const outcome = await applier.apply({ mapping: origin.mapping.name, target: origin.mapping.target.table, rowKeys: keys }, group);
      if (outcome.kind === 'applied') {
        this.rowsInTransaction += outcome.rows;
        this.ignoredInTransaction += outcome.ignored;
      } else {
        parks.push(parkRecord(origin, keys, outcome.reason, at));
      }
    }
    if (parks.length > 0) {
      parks.sort((a, b) => a.at - b.at);
      const p = this.options.pipeline;
      await this.db.query(PARK_SQL, [p.name, p.storeCode, parksJson(parks)]).catch((e: unknown) => Promise.reject(this.mapError(e)));
      this.parkedInTransaction += parks.length;
    }
    return parks;
  }

  private planExact(ops: readonly TargetOp[]): ChunkPlan {
    return planChunk(ops, 'ordered', {
      statements: (t) => this.statementsFor(t),
      rank: (t) => this.ranks.get(`${t.schema}.${t.table}`) ?? Number.MAX_SAFE_INTEGER,
    });
  }

  private changeApplier(): ChangeApplier {
    return new ChangeApplier({
      db: this.db,
      associations: this.options.associations,
      plan: (ops) => this.planExact(ops),
      mapError: (e) => this.mapError(e),
      // Only what is wrong with this row (integrity 23xxx, data 22xxx) holds it; a
      // schema problem at HQ (42xxx: a missing column, a privilege) fails the batch.
      isRowProblem: (e) => e instanceof ApplyRejected && /^2[23]/.test(e.sqlState),
      rejection: (e) => (e instanceof ApplyRejected ? e.rejection : String(e)),
    });
  }

  /** Opens the batch transaction now (when something must run in it before the chunk's statements). */
  private async begin(): Promise<void> {
    if (this.inTransaction) return;
    await this.db.query('BEGIN').catch((e: unknown) => Promise.reject(this.mapError(e)));
    this.inTransaction = true;
    this.rowsInTransaction = 0;
    this.ignoredInTransaction = 0;
    this.parkedInTransaction = 0;
  }

  /** Waits for the queued chunk; its first failure is thrown. */
  private async drain(): Promise<void> {
    const pending = this.inFlight;
    this.inFlight = null;
    if (pending) await pending;
  }

  /** Writes the position with the rows and commits. */
  /**
   * Moves the stored position on over changes that held nothing for this
   * target (an idle position), outside any batch: only the position, and
   * only for a pipeline that has committed before. False when there is no
   * such row (nothing to move; the caller does not acknowledge).
   */
  async storeIdlePosition(position: string): Promise<boolean> {
    if (this.inTransaction) throw new Error('storeIdlePosition inside a batch');
    const r = await this.db.query(`UPDATE branchline.pipelines SET position = $2 WHERE pipeline = $1 AND position_kind = $3`, [
      this.options.pipeline.name,
      position,
      this.options.positionKind,
    ]);
    return r.rowCount === 1;
  }

  async commit(position: string, stats: BatchStats): Promise<void> {
    const db = this.db;
    if (!this.inTransaction) {
      await db.query('BEGIN');
      this.inTransaction = true;
      this.ignoredInTransaction = 0;
      this.parkedInTransaction = 0;
    }
    const p = this.options.pipeline;
    try {
      await this.drain();
      await db.query(
        `INSERT INTO branchline.pipelines AS p
                (pipeline, store_code, direction, connector, position_kind, position, source_commit_time, applied_at,
                 txns_applied, rows_applied, batches_applied, changes_ignored, changes_parked)
         VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp(), $8, $9, 1, $10, $11)
         ON CONFLICT (pipeline) DO UPDATE SET
           position = EXCLUDED.position,
           source_commit_time = COALESCE(EXCLUDED.source_commit_time, p.source_commit_time),
           applied_at = EXCLUDED.applied_at,
           txns_applied = p.txns_applied + EXCLUDED.txns_applied,
           rows_applied = p.rows_applied + EXCLUDED.rows_applied,
           batches_applied = p.batches_applied + 1,
           changes_ignored = p.changes_ignored + EXCLUDED.changes_ignored,
           changes_parked = p.changes_parked + EXCLUDED.changes_parked`,
        [
          p.name,
          p.storeCode,
          p.direction,
          p.connector,
          this.options.positionKind,
          position,
          stats.sourceCommitTime,
          stats.txns,
          stats.rows,
          this.ignoredInTransaction,
          this.parkedInTransaction,
        ],
      );
      await this.commitOpen();
    } catch (e) {
      // Still "in a transaction" for rollback(), which ends it on a live connection.
      throw this.mapError(e);
    }
  }

  /** COMMIT, then what a commit means for the sink's own state (allocations become associations). */
  private async commitOpen(): Promise<void> {
    await this.db.query('COMMIT');
    this.options.associations?.commit();
    this.inTransaction = false;
    this.ignoredInTransaction = 0;
    this.parkedInTransaction = 0;
  }

  /** Runs a statement of the caller's inside the open transaction (opening one): e.g. an initial load's checkpoint. */
  async execute<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    await this.drain();
    await this.begin();
    try {
      return (await this.db.query<R>(sql, params)).rows;
    } catch (e) {
      throw this.mapError(e);
    }
  }

  /** Commits what the open transaction holds without moving the position (an initial load's chunk and checkpoint). */
  async commitWithoutPosition(): Promise<void> {
    if (!this.inTransaction) return;
    try {
      await this.drain();
      await this.commitOpen();
    } catch (e) {
      throw this.mapError(e);
    }
  }

  async rollback(): Promise<void> {
    await this.drain().catch(() => undefined);
    this.ignoredInTransaction = 0;
    this.parkedInTransaction = 0;
    this.options.associations?.rollback();
    if (!this.client || !this.inTransaction) return;
    this.inTransaction = false;
    await this.client.query('ROLLBACK').catch(() => undefined);
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    // Closed by us: if the server still holds it (the link hung), the next session may take it over.
    if (this.session !== null) LIVE_SESSIONS.delete(this.session);
    this.session = null;
    this.inFlight = null;
    this.inTransaction = false;
    if (c) await endClient(c);
  }

  /**
   * A halted pipeline's report (pipeline/halt.ts): without the pipeline's
   * lock (the fix, an initial load, takes it), records `halted` with its
   * error and reads the stored position and whether a load is copying.
   */
  async reportHalted(error: { code: string; message: string } | null): Promise<{ position: string | null; loading: boolean }> {
    const { url, role, pipeline } = this.options;
    this.client = await connect(url, { role, applicationName: `branchline-${pipeline.name}`, connectTimeoutMs: 5_000, ...bounded(this.options.statementTimeoutMs) });
    try {
      await this.reportStatus('halted', { error });
      const r = await this.client.query<{ position: string | null; loading: boolean }>(
        `SELECT (SELECT position FROM branchline.pipelines WHERE pipeline = $1) AS position,
                EXISTS (SELECT 1 FROM branchline.initial_loads WHERE pipeline = $1 AND status = 'copying') AS loading`,
        [pipeline.name],
      );
      return r.rows[0]!;
    } finally {
      await this.close();
    }
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
      const rejection = `${err.message}${err.detail ? ` (${err.detail})` : ''}`;
      return new ApplyRejected(
        {
          code: 'BL-A001',
          message: `${this.options.role} rejected a batch${where}: ${rejection}.`,
          hint: 'The batch is retried in exact source order; if it still fails the data or the mapping needs a fix (see the mapping file for this table).',
        },
        err.code,
        rejection,
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
    /** What the database said, in its words (for one row's parked reason). */
    readonly rejection: string,
    cause: unknown,
  ) {
    super(problem, { cause });
  }
}
