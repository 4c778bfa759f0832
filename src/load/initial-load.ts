import { pipeline as streamPipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { ACK_SQL, XID8_CODEC } from '../../connectors/pg-trigger/index.js';
import { PgSink } from '../apply/pg-sink.js';
import { Scheduler } from '../schedule/scheduler.js';
import { DownAssociationResolver } from '../associate/down-resolver.js';
import type { TableInfo } from '../catalog/pg-catalog.js';
import type { Config, StoreConfig } from '../config/load.js';
import { formatTable, tableKey, type TableId } from '../core/change.js';
import { storeCapture } from '../agent/store-capture.js';
import { BranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { TargetOp } from '../core/target-op.js';
import { connect, destroyClient, qualified, quoteIdent, quoteLiteral, readDeadlineMs } from '../db/connect.js';
import type { MappingSet } from '../mapping/mapping.js';
import type { ChangeOrigin } from '../pipeline/parking.js';
import { checkAndCompileDown, downOriginName, downTablesOf, hasDown, loadMappings, readCatalog, requireReadable, storeRole } from '../agent/prepare.js';
import { parseCopyLine } from './copy-text.js';

export interface LoadProgress {
  readonly table: string;
  readonly rowsCopied: number;
  /** Estimate (pg_class.reltuples) of all the tables' rows; null when unknown. */
  readonly rowsTotal: number | null;
  /** Rows of every table so far. */
  readonly allCopied: number;
}

export interface InitialLoadOptions {
  readonly config: Config;
  readonly store: StoreConfig;
  readonly logger: Logger;
  /** Only these HQ source tables (or store target tables), by name. */
  readonly tables?: readonly string[];
  /** Leave these out (e.g. customer). */
  readonly without?: readonly string[];
  /** Rows per chunk (one store transaction each, with its checkpoint). Default: batch.chunk_rows. */
  readonly chunkRows?: number;
  /** Start a new load even if one is unfinished. */
  readonly restart?: boolean;
  readonly onProgress?: (p: LoadProgress) => void;
}

export interface InitialLoadResult {
  readonly resumed: boolean;
  readonly tables: readonly { table: string; rows: number }[];
  /** The down position the load is consistent with (the store's down pipeline continues from it). */
  readonly position: string;
  readonly rows: number;
  /** Rows this run copied (the rest were copied by the run it resumed). */
  readonly rowsThisRun: number;
}

export interface LoadRow {
  source_table: string;
  status: 'copying' | 'done';
  snapshot: string;
  position: string;
  last_key: string[] | null;
  rows_copied: string;
  rows_total: string | null;
}

/** What the HQ side of the copy reads with, so values come out in the same text form the change log's triggers write. */
export const COPY_SESSION = [`SET datestyle = 'ISO, YMD'`, `SET intervalstyle = 'postgres'`, `SET timezone = 'UTC'`, `SET bytea_output = 'hex'`, `SET extra_float_digits = 3`];

/**
 * `branchline snapshot`: copies HQ's master tables (the down mappings'
 * sources) into a store, consistently with the down channel.
 *
 * HQ is read in one REPEATABLE READ transaction, with COPY, in keyset chunks
 * ordered by each table's primary key; each chunk goes through the down
 * mappings (routing, association, expressions) and is written to the store
 * set-based in one store transaction together with its checkpoint (the last
 * key copied). When every table is done, the store's down position is set
 * to the snapshot: changes of transactions the snapshot saw are in the copy
 * and never delivered, all later ones are (nothing lost, nothing twice).
 *
 * An interrupted load resumes from its checkpoints (a new HQ snapshot for
 * the rest; the down channel still starts from the first one, so what
 * changed in between is replayed over rows copied later: whole rows, applied
 * again, to the same result).
 */
export async function runInitialLoad(options: InitialLoadOptions): Promise<InitialLoadResult> {
  const { config, store, logger } = options;
  const files = await loadMappings(config);
  requireReadable(files);
  if (!hasDown(files))
    throw new BranchlineError({
      code: 'BL-U001',
      message: `no mapping file in ${files.dir} has "direction: down": there is nothing to load into a store.`,
      hint: 'Add down mapping files (direction: down) for the master tables HQ hands down.',
    });
  if (!storeCapture(store).postgres)
    throw new BranchlineError({
      code: 'BL-U001',
      message: `store ${store.code} is a SQL Server store (mssql-trigger): the down channel, and so its initial load, writes to PostgreSQL stores only.`,
      hint: 'See docs/connectors.md for what SQL Server stores do today (their changes go up to HQ).',
    });
  const { hqSources, storeTargets } = downTablesOf(files);
  const hqCatalog = await readCatalog(config.hq.url, 'HQ', hqSources);
  const storeCatalog = await readCatalog(store.url, storeRole(store), storeTargets);
  const mappings = checkAndCompileDown(files, hqCatalog, storeCatalog, `HQ and ${storeRole(store)}`);
  const chosen = chooseTables(mappings, options.tables, options.without, 'down');

  const name = `down:${store.code}`;
  const id = { name, storeCode: store.code, direction: 'down' as const, connector: 'pg-trigger' };
  const associations = new DownAssociationResolver({ storeCode: store.code, entities: files.entities.byName, hqUrl: config.hq.url, statementTimeoutMs: config.apply.statementTimeoutMs });
  const sink = new PgSink({
    url: store.url,
    role: storeRole(store),
    pipeline: id,
    positionKind: XID8_CODEC.kind,
    catalog: storeCatalog.tables,
    targetOrder: mappings.targetOrder,
    statementTimeoutMs: config.apply.statementTimeoutMs,
    associations,
    origin: { name: 'HQ', replicationOrigin: downOriginName(store.code) },
    logger,
  });
  await sink.connect(); // holds the down pipeline's lock: a running agent's down pipeline waits meanwhile
  const hq = await connect(config.hq.url, { role: 'HQ', applicationName: `branchline-snapshot-${store.code}` });
  try {
    for (const s of COPY_SESSION) await hq.query(s);
    await hq.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snapshot = (await hq.query<{ s: string }>(`SELECT pg_current_snapshot()::text AS s`)).rows[0]!.s;
    let state = await sink.execute<LoadRow>(`SELECT * FROM branchline.initial_loads WHERE pipeline = $1 ORDER BY source_table`, [name]);
    const unfinished = state.some((r) => r.status === 'copying');
    const resumed = unfinished && !options.restart;
    if (!resumed) {
      // A new load: the store's down position is unset until it ends.
      const position = snapshot;
      await beginLoad({ source: hq, sink, pipeline: name, tables: chosen, snapshot, position });
      // HQ keeps the change log from the snapshot on for this store (a reader at the snapshot's xmin).
      const reg = await connect(config.hq.url, { role: 'HQ', applicationName: `branchline-snapshot-${store.code}` });
      try {
        await reg.query(`DELETE FROM branchline.change_log_readers WHERE reader = $1`, [name]);
        await reg.query(ACK_SQL, [name, XID8_CODEC.parse(position).bound.toString()]);
      } finally {
        await reg.end().catch(() => undefined);
      }
      state = await sink.execute<LoadRow>(`SELECT * FROM branchline.initial_loads WHERE pipeline = $1 ORDER BY source_table`, [name]);
      await sink.commitWithoutPosition();
    } else {
      logger.info('resuming an unfinished initial load', { store: store.code, snapshot: state[0]?.snapshot });
    }
    const position = state[0]!.position;
    // Rows whose effective time is still in the future go into branchline.scheduled, not into the tables.
    const scheduler = new Scheduler({ pipeline: name, mappings: mappings.mappings.map((m) => m.name), timeZone: store.timeZone, logger });
    await scheduler.load(sink);
    const copied = await copyPending({
      source: hq,
      sourceRole: 'HQ',
      sink,
      state,
      catalog: hqCatalog.tables,
      mappings,
      storeCode: store.code,
      pipeline: name,
      chunkRows: options.chunkRows ?? config.batch.chunkRows,
      position,
      readDeadlineMs: readDeadlineMs(config.apply.statementTimeoutMs),
      scheduler,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    await hq.query('COMMIT');
    // Every table is in: the down channel starts at the snapshot.
    await sink.commit(position, { txns: 0, rows: 0, sourceCommitTime: null });
    return { resumed, position, ...copied };
  } catch (e) {
    await sink.rollback();
    throw e;
  } finally {
    await hq.end().catch(() => undefined);
    await sink.close();
    await associations.close();
  }
}

/** The source tables to load: all the mappings read, or those named (source or target names), less those left out. */
export function chooseTables(mappings: MappingSet, only: readonly string[] | undefined, without: readonly string[] | undefined, direction: 'up' | 'down'): TableId[] {
  const matches = (t: TableId, names: readonly string[]) =>
    names.some((n) => n === t.table || n === formatTable(t) || mappings.forSource(t).some((m) => n === m.target.table || n === formatTable(m.target)));
  const all = mappings.sourceTables;
  for (const n of [...(only ?? []), ...(without ?? [])]) {
    if (!all.some((t) => matches(t, [n])))
      throw new BranchlineError({
        code: 'BL-U001',
        message: `"${n}" is not a table the ${direction} mappings read or write.`,
        hint: `${direction === 'up' ? 'Up' : 'Down'} tables: ${all.map(formatTable).join(', ')}.`,
      });
  }
  return all.filter((t) => (!only || only.length === 0 || matches(t, only)) && !(without && matches(t, without)));
}

export function parseKey(k: string): TableId {
  const dot = k.indexOf('.');
  return { schema: k.slice(0, dot), table: k.slice(dot + 1) };
}

async function estimate(db: pg.Client, t: TableId): Promise<number | null> {
  const r = await db.query<{ n: number | null }>(`SELECT reltuples::bigint AS n FROM pg_class WHERE oid = to_regclass($1)`, [qualified(t.schema, t.table)]);
  const n = Number(r.rows[0]?.n ?? -1);
  return n >= 0 ? n : null;
}

/**
 * A new load's checkpoints, committed at the target: one row per table
 * (copying, with the source's row estimate), no position (the pipeline's
 * position is set when the load ends).
 */
export async function beginLoad(a: { source: pg.Client; sink: PgSink; pipeline: string; tables: readonly TableId[]; snapshot: string; position: string }): Promise<void> {
  const totals: (number | null)[] = [];
  for (const t of a.tables) totals.push(await estimate(a.source, t));
  await a.sink.execute(`DELETE FROM branchline.initial_loads WHERE pipeline = $1`, [a.pipeline]);
  await a.sink.execute(`DELETE FROM branchline.pipelines WHERE pipeline = $1`, [a.pipeline]);
  for (let i = 0; i < a.tables.length; i++)
    await a.sink.execute(
      `INSERT INTO branchline.initial_loads (pipeline, source_table, status, snapshot, position, rows_total) VALUES ($1, $2, 'copying', $3, $4, $5)`,
      [a.pipeline, tableKey(a.tables[i]!), a.snapshot, a.position, totals[i]],
    );
  await a.sink.commitWithoutPosition();
}

export interface CopyPendingArgs {
  readonly source: pg.Client;
  readonly sourceRole: string;
  readonly sink: PgSink;
  /** The load's checkpoint rows (branchline.initial_loads), in order. */
  readonly state: readonly LoadRow[];
  /** The source side's description of the tables. */
  readonly catalog: ReadonlyMap<string, TableInfo>;
  readonly mappings: MappingSet;
  readonly storeCode: string;
  readonly pipeline: string;
  readonly chunkRows: number;
  /** The position the load ends at (what parked rows record). */
  readonly position: string;
  /**
   * A chunk whose bytes stop coming for this long (ms) counts as a hung
   * link: the source connection is dropped and the load fails with BL-S010,
   * to be resumed from its checkpoint. (A COPY TO cannot use pg's read
   * deadline: see ConnectOptions.readTimeoutMs.)
   */
  readonly readDeadlineMs: number;
  /** Down loads: rows whose effective time is still in the future are scheduled, not written. */
  readonly scheduler?: Scheduler;
  readonly onProgress?: (p: LoadProgress) => void;
}

/** What a load copied: rows per table, in all, and in this run (the rest by the run it resumed). */
export interface CopiedRows {
  readonly tables: readonly { table: string; rows: number }[];
  readonly rows: number;
  readonly rowsThisRun: number;
}

/** Copies every table of the load still copying, from its checkpoint; each table marked done when in. */
export async function copyPending(a: CopyPendingArgs): Promise<CopiedRows> {
  const total = a.state.reduce((n, r) => n + (r.rows_total === null ? 0 : Number(r.rows_total)), 0) || null;
  const before = a.state.reduce((n, r) => n + Number(r.rows_copied), 0);
  let all = before;
  const done: { table: string; rows: number }[] = [];
  for (const row of a.state) {
    let copied = Number(row.rows_copied);
    if (row.status === 'copying') {
      const info = a.catalog.get(row.source_table);
      if (!info) throw new Error(`internal: ${row.source_table} not described`);
      copied = await copyTable({
        source: a.source,
        sourceRole: a.sourceRole,
        sink: a.sink,
        info,
        table: parseKey(row.source_table),
        mappings: a.mappings,
        storeCode: a.storeCode,
        pipeline: a.pipeline,
        lastKey: row.last_key,
        copied,
        chunkRows: a.chunkRows,
        position: a.position,
        readDeadlineMs: a.readDeadlineMs,
        ...(a.scheduler ? { scheduler: a.scheduler } : {}),
        onChunk: (n) => {
          all += n;
          a.onProgress?.({ table: row.source_table, rowsCopied: copied + n, rowsTotal: total, allCopied: all });
        },
      });
      await a.sink.execute(`UPDATE branchline.initial_loads SET status = 'done', finished_at = clock_timestamp(), updated_at = clock_timestamp() WHERE pipeline = $1 AND source_table = $2`, [
        a.pipeline,
        row.source_table,
      ]);
      await a.sink.commitWithoutPosition();
    }
    done.push({ table: row.source_table, rows: copied });
  }
  return { tables: done, rows: all, rowsThisRun: all - before };
}

interface CopyTableArgs {
  /** The side read, inside its snapshot's transaction. */
  readonly source: pg.Client;
  /** For messages: "HQ", "store S001". */
  readonly sourceRole: string;
  readonly sink: PgSink;
  readonly info: TableInfo;
  readonly table: TableId;
  readonly mappings: MappingSet;
  readonly scheduler?: Scheduler;
  readonly storeCode: string;
  readonly pipeline: string;
  readonly lastKey: string[] | null;
  readonly copied: number;
  readonly chunkRows: number;
  readonly position: string;
  readonly readDeadlineMs: number;
  readonly onChunk: (rowsInChunk: number) => void;
}

/** Copies one table chunk by chunk (keyset on its primary key), each chunk committed at the store with its checkpoint. */
async function copyTable(a: CopyTableArgs): Promise<number> {
  const key = a.info.primaryKey;
  if (!key || key.length === 0)
    throw new BranchlineError({
      code: 'BL-M013',
      message: `${formatTable(a.table)} at ${a.sourceRole} has no primary key, so it cannot be copied in resumable chunks.`,
      hint: `Give the table a primary key at ${a.sourceRole}.`,
    });
  const columns = a.info.columns.map((c) => c.name);
  const types = new Map(a.info.columns.map((c) => [c.name, c.type]));
  const list = columns.map(quoteIdent).join(', ');
  const order = key.map(quoteIdent).join(', ');
  const mappings = a.mappings.forSource(a.table);
  let last = a.lastKey;
  let copied = a.copied;
  for (;;) {
    const where = last ? `WHERE (${order}) > (${key.map((k, i) => `${quoteLiteral(last![i]!)}::${types.get(k)}`).join(', ')})` : '';
    const sql = `COPY (SELECT ${list} FROM ${qualified(a.table.schema, a.table.table)} ${where} ORDER BY ${order} LIMIT ${a.chunkRows}) TO STDOUT`;
    const rows: Record<string, string | null>[] = [];
    let rest = '';
    // The chunk's watchdog: re-armed by every piece of it that arrives.
    let stalled = false;
    let watchdog: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        stalled = true;
        destroyClient(a.source);
      }, a.readDeadlineMs);
    };
    arm();
    try {
      await streamPipeline(
        a.source.query(copyStreams.to(sql)),
        new Writable({
          write(chunk: Buffer, _enc, done) {
            arm();
            const text = rest + chunk.toString('utf8');
            const lines = text.split('\n');
            rest = lines.pop()!;
            for (const line of lines) rows.push(parseCopyLine(line, columns));
            done();
          },
        }),
      );
    } catch (e) {
      if (!stalled) throw e;
      throw new BranchlineError(
        {
          code: 'BL-S010',
          message: `the ${a.sourceRole} database stopped answering during the initial load: nothing of a chunk of ${formatTable(a.table)} arrived within ${Math.round(a.readDeadlineMs / 1000)} s, and the connection was not reset (a firewall dropping packets, a dead link, a stalled server).`,
          hint: 'branchline dropped that connection; the load resumes from its last checkpoint (the agent tries again on its own; by hand, run the snapshot again). If big chunks need longer, raise apply.statement_timeout_ms (the deadline is it plus 10 s).',
        },
        { cause: e },
      );
    } finally {
      clearTimeout(watchdog);
    }
    if (rest !== '') rows.push(parseCopyLine(rest, columns));
    if (rows.length === 0) break;
    const ops: TargetOp[] = [];
    const origins: (ChangeOrigin | undefined)[] = [];
    for (const row of rows) {
      const change = { op: 'insert' as const, table: a.table, after: row };
      for (const m of mappings) {
        const mapped = m.map(change, { storeCode: a.storeCode });
        if (a.scheduler?.consider(m, change, mapped, { storeCode: a.storeCode }, null)) continue;
        for (const op of mapped) {
          // The target may hold the row already (loaded before): write it whatever is there.
          const out = op.kind === 'upsert' && op.fresh ? { ...op, fresh: false } : op;
          if (m.associates) origins[ops.length] = { mapping: m, change, xid: null, commitTime: null, position: a.position };
          ops.push(out);
        }
      }
    }
    const lastRow = rows[rows.length - 1]!;
    last = key.map((k) => lastRow[k]!);
    if (a.scheduler?.dirty) await a.scheduler.flush(a.sink);
    await a.sink.apply(ops, 'grouped', { origins });
    copied += rows.length;
    await a.sink.execute(`UPDATE branchline.initial_loads SET last_key = $3::jsonb, rows_copied = $4, updated_at = clock_timestamp() WHERE pipeline = $1 AND source_table = $2`, [
      a.pipeline,
      tableKey(a.table),
      JSON.stringify(last),
      copied,
    ]);
    await a.sink.commitWithoutPosition();
    a.onChunk(rows.length);
    if (rows.length < a.chunkRows) break;
  }
  return copied;
}
