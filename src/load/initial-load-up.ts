import type pg from 'pg';
import { LSN_CODEC } from '../../connectors/pg-logical/index.js';
import { LOG_TABLE, XID8_CODEC } from '../../connectors/pg-trigger/index.js';
import { PgSink } from '../apply/pg-sink.js';
import { AssociationResolver } from '../associate/resolver.js';
import type { Config, StoreConfig } from '../config/load.js';
import type { TableInfo } from '../catalog/pg-catalog.js';
import type { Logger } from '../core/logger.js';
import { tableKey, type TableId } from '../core/change.js';
import { BranchlineError, isBranchlineError } from '../core/errors.js';
import { Lsn } from '../core/lsn.js';
import { PgSnapshot } from '../core/pg-snapshot.js';
import { SlotPosition } from '../core/slot-position.js';
import { connect, describeUrl, qualified, readDeadlineMs } from '../db/connect.js';
import type { MappingSet } from '../mapping/mapping.js';
import { checkAndCompile, loadMappings, readCatalog, requireReadable, storeRole, tablesOf } from '../agent/prepare.js';
import { storeCapture } from '../agent/store-capture.js';
import { beginLoad, chooseTables, copyPending, COPY_SESSION, type InitialLoadOptions, type InitialLoadResult, type LoadRow } from './initial-load.js';

/**
 * A sink writing into HQ as the up pipeline of `store` does (its lock, its
 * associations, its origin), for what writes beside the stream: the initial
 * load, reconcile --fix.
 */
export function upSink(a: {
  config: Config;
  store: StoreConfig;
  positionKind: string;
  catalog: ReadonlyMap<string, TableInfo>;
  mappings: MappingSet;
  entities: ConstructorParameters<typeof AssociationResolver>[1];
  logger: Logger;
}): PgSink {
  const { config, store } = a;
  return new PgSink({
    url: config.hq.url,
    role: 'HQ',
    pipeline: { name: `up:${store.code}`, storeCode: store.code, direction: 'up', connector: store.connector },
    positionKind: a.positionKind,
    catalog: a.catalog,
    targetOrder: a.mappings.targetOrder,
    statementTimeoutMs: config.apply.statementTimeoutMs,
    sessionReplicationRole: config.apply.sessionReplicationRole,
    associations: new AssociationResolver(store.code, a.entities),
    // As the stream's rows: HQ's change log sends them down to the other stores, not back to this one.
    origin: { name: store.code },
    logger: a.logger,
  });
}

/**
 * `branchline snapshot --store S --direction up`: copies a store's tables
 * (the up mappings' sources: sales, customers, ...) into HQ through the up
 * mappings, consistently with the store's logical slot.
 *
 * The slot exists before the copy's snapshot is taken (checked), so every
 * transaction committed before the slot is in the copy; of those the slot
 * delivers, the copy holds exactly those its snapshot sees as committed
 * (by xid). The up position at HQ becomes the slot's position with that
 * snapshot (SlotPosition), so the stream skips exactly those and applies
 * every other one. The store is read with COPY in one REPEATABLE READ
 * transaction, in keyset chunks; each chunk is applied at HQ set-based in
 * one transaction with its checkpoint. The load holds the up pipeline's
 * advisory lock at HQ, and the pipeline does not start while a load is
 * unfinished (BL-S007): it starts after it, from the load's position.
 *
 * Aggregates (daily totals) add what is copied, so the load refuses to run
 * over HQ data the stream already applied (BL-S008) unless told that HQ was
 * cleared (`--restart`), and a resumed load whose rest would be copied from
 * a newer snapshot refuses when the store changed an aggregate's source
 * table in between (BL-S009): those changes would be counted twice.
 */
export async function runInitialLoadUp(options: InitialLoadOptions): Promise<InitialLoadResult> {
  const { config, store, logger } = options;
  const files = await loadMappings(config);
  requireReadable(files);
  const role = storeRole(store);
  const { sources, targets } = tablesOf(files);
  const hqCatalog = await readCatalog(config.hq.url, 'HQ', targets);
  if (!storeCapture(store).postgres)
    throw new BranchlineError({
      code: 'BL-U001',
      message: `store ${store.code} is a SQL Server store (mssql-trigger): an initial load from SQL Server into HQ is not built yet.`,
      hint: 'Its changes replicate from the moment `branchline install` put the triggers in place; load its history by hand, or see docs/connectors.md.',
    });
  const storeCatalog = await storeCapture(store).catalog(sources);
  const mappings = checkAndCompile(files, hqCatalog, storeCatalog, `HQ and ${role}`);
  const chosen = chooseTables(mappings, options.tables, options.without, 'up');
  const subset = chosen.length < mappings.sourceTables.length ? chosen.map(tableKey) : null;

  const anchor = store.connector === 'pg-trigger' ? triggerAnchor(store) : slotAnchor(store);
  if (subset && store.connector === 'pg-trigger')
    throw new BranchlineError({
      code: 'BL-U001',
      message: `store ${store.code} captures with pg-trigger, whose initial load into HQ copies every up table at once (--tables and --without are for pg-logical stores).`,
      hint: `Run \`branchline snapshot --store ${store.code} --direction up\` without --tables or --without.`,
    });
  const name = `up:${store.code}`;
  const sink = upSink({ config, store, positionKind: anchor.positionKind, catalog: hqCatalog.tables, mappings, entities: files.entities.byName, logger });
  try {
    await sink.connect(); // the up pipeline's lock: an agent's pipeline for this store waits meanwhile
  } catch (e) {
    if (isBranchlineError(e) && e.code === 'BL-A002')
      throw new BranchlineError(
        {
          code: 'BL-A002',
          message: `an agent is running the up pipeline of store ${store.code}, so its initial load into HQ cannot start.`,
          hint: `Stop the agent (or run it without this store), run the load, then start it again: it continues from the load's position.`,
        },
        { cause: e },
      );
    throw e;
  }
  const src = await connect(store.url, { role, applicationName: `branchline-snapshot-${store.code}` });
  try {
    for (const s of COPY_SESSION) await src.query(s);
    // Capture first (the slot, or the triggers): what commits after the snapshot must be in it.
    await anchor.prepare(src, chosen);
    await src.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // One statement: the snapshot is taken first, the WAL insert position read after it.
    const taken = (await src.query<{ s: string; until: string }>(`SELECT pg_current_snapshot()::text AS s, pg_current_wal_insert_lsn()::text AS until`)).rows[0]!;
    const snapshot = PgSnapshot.parse(taken.s);
    let state = await sink.execute<LoadRow>(`SELECT * FROM branchline.initial_loads WHERE pipeline = $1 ORDER BY source_table`, [name]);
    const unfinished = state.some((r) => r.status === 'copying');
    const resumed = unfinished && !options.restart;
    if (!resumed) {
      const stored = await sink.execute<{ position: string }>(`SELECT position FROM branchline.pipelines WHERE pipeline = $1`, [name]);
      if (stored.length > 0 && !options.restart)
        throw new BranchlineError({
          code: 'BL-S008',
          message: `HQ already holds store ${store.code}'s changes up to ${stored[0]!.position} (applied from its slot, or by an earlier load): loading the store's tables again would add its rows to HQ's aggregates (daily totals) a second time.`,
          hint: `To replace HQ's data of the store, delete the store's rows from the mappings' target tables at HQ (its totals too), then run \`branchline snapshot --store ${store.code} --direction up --restart\`.`,
        });
      const position = anchor.position(snapshot, Lsn.parse(taken.until), subset);
      // The position is set when every table is in; until then the pipeline refuses to start (BL-S007).
      await beginLoad({ source: src, sink, pipeline: name, tables: chosen, snapshot: snapshot.toString(), position });
      state = await sink.execute<LoadRow>(`SELECT * FROM branchline.initial_loads WHERE pipeline = $1 ORDER BY source_table`, [name]);
      await sink.commitWithoutPosition();
    } else {
      logger.info('resuming an unfinished initial load into HQ', { store: store.code, snapshot: state[0]?.snapshot, now: snapshot.toString() });
      await refuseInexactResume({ store, anchor, mappings, state, first: anchor.loadSnapshot(state[0]!.position), now: snapshot, nowUntil: Lsn.parse(taken.until) });
    }
    const position = state[0]!.position;
    const copied = await copyPending({
      source: src,
      sourceRole: role,
      sink,
      state,
      catalog: storeCatalog.tables,
      mappings,
      storeCode: store.code,
      pipeline: name,
      chunkRows: options.chunkRows ?? config.batch.chunkRows,
      position,
      readDeadlineMs: readDeadlineMs(config.apply.statementTimeoutMs),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    await src.query('COMMIT');
    // Every table is in: the up pipeline starts at the slot position, skipping what the snapshot saw.
    await sink.commit(position, { txns: 0, rows: 0, sourceCommitTime: null });
    return { resumed, position, ...copied };
  } catch (e) {
    await sink.rollback();
    throw e;
  } finally {
    await src.end().catch(() => undefined);
    await sink.close();
  }
}

/**
 * What a load into HQ needs from the store's capture: that it is in place
 * before the snapshot, the stream position the load hands over (which
 * skips what the snapshot saw), and, for a resumed load, which transactions
 * of some tables committed between two snapshots.
 */
interface UpLoadAnchor {
  readonly positionKind: string;
  prepare(db: pg.Client, tables: readonly TableId[]): Promise<void>;
  position(snapshot: PgSnapshot, until: Lsn, tables: readonly string[] | null): string;
  /** The snapshot a stored load position carries (null: none). */
  loadSnapshot(position: string): PgSnapshot | null;
  /** Transactions seen by `now` and not by `first` that changed one of `tables`; `until`: WAL position read after `now`. */
  changedBetween(db: pg.Client, a: { first: PgSnapshot; now: PgSnapshot; until: Lsn; tables: readonly TableId[] }): Promise<number>;
}

/** pg-logical: the slot's confirmed position, with the snapshot (SlotPosition). */
function slotAnchor(store: StoreConfig): UpLoadAnchor {
  let lsn: Lsn | null = null;
  return {
    positionKind: LSN_CODEC.kind,
    async prepare(db) {
      lsn = await slotPosition(db, store);
    },
    position: (snapshot, until, tables) => SlotPosition.withLoad(lsn!, snapshot, until, tables).toString(),
    loadSnapshot: (position) => LSN_CODEC.parse(position).load?.snapshot ?? null,
    async changedBetween(db, a) {
      // Decoding reads flushed WAL only: wait (up to 2 s; the WAL writer flushes
      // asynchronous commits within wal_writer_delay) until what the new snapshot sees is flushed.
      for (let i = 0; i < 40; i++) {
        const f = (await db.query<{ f: string }>(`SELECT pg_current_wal_flush_lsn()::text AS f`)).rows[0]!.f;
        if (!Lsn.parse(f).isBefore(a.until)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const oids = (await db.query<{ oid: string }>(`SELECT to_regclass(t)::oid::text AS oid FROM unnest($1::text[]) t`, [a.tables.map((t) => qualified(t.schema, t.table))])).rows.map((r) => r.oid);
      // pgoutput protocol 1: I/U/D carry the relation oid in bytes 1..4; T (truncate) is counted whatever it truncates.
      const res = await db.query<{ xid: string }>(
        `SELECT DISTINCT xid::text AS xid FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2, 'origin', 'none')
          WHERE get_byte(data, 0) = 84
             OR (get_byte(data, 0) IN (73, 85, 68)
                 AND ((get_byte(data, 1)::bigint << 24) | (get_byte(data, 2) << 16) | (get_byte(data, 3) << 8) | get_byte(data, 4))::oid = ANY($3::oid[]))`,
        [store.slot, store.publication, oids],
      );
      return res.rows.map((r) => Number(r.xid)).filter((x) => a.now.sees32(x) && !a.first.sees32(x)).length;
    },
  };
}

/** pg-trigger: the snapshot itself is the position (the reader skips what it saw: XidPosition). */
function triggerAnchor(store: StoreConfig): UpLoadAnchor {
  return {
    positionKind: XID8_CODEC.kind,
    async prepare(db, tables) {
      const r = await db.query<{ missing: string[] | null; log: boolean }>(
        `SELECT to_regclass('${LOG_TABLE}') IS NOT NULL AS log,
                array(SELECT t FROM unnest($1::text[]) t
                       WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = to_regclass(t) AND g.tgname = 'branchline_capture'))::text[] AS missing`,
        [tables.map((t) => qualified(t.schema, t.table))],
      );
      const row = r.rows[0]!;
      if (!row.log || (row.missing ?? []).length > 0)
        throw new BranchlineError({
          code: 'BL-D005',
          message: `${storeRole(store)} (${describeUrl(store.url)}) has no capture ${row.log ? `triggers on ${row.missing!.join(', ')}` : 'change table'}: an initial load into HQ needs them first, or the changes committed during the copy would be lost.`,
          hint: 'Run `branchline install` for this store, then the load.',
        });
    },
    position: (snapshot) => XID8_CODEC.format(XID8_CODEC.parse(snapshot.toString())),
    loadSnapshot: (position) => {
      const p = XID8_CODEC.parse(position);
      return p.snapshot === null ? null : PgSnapshot.parse(p.snapshot);
    },
    async changedBetween(db, a) {
      const res = await db.query<{ n: string }>(
        `SELECT count(DISTINCT l.xid)::text AS n FROM ${LOG_TABLE} l
          WHERE (l.op = 't' OR (l.schema_name, l.table_name) IN (SELECT * FROM unnest($1::text[], $2::text[])))
            AND pg_visible_in_snapshot(l.xid, $3::text::pg_snapshot) AND NOT pg_visible_in_snapshot(l.xid, $4::text::pg_snapshot)`,
        [a.tables.map((t) => t.schema), a.tables.map((t) => t.table), a.now.toString(), a.first.toString()],
      );
      return Number(res.rows[0]!.n);
    },
  };
}

/** The slot's confirmed position; clear errors when there is no usable slot. */
async function slotPosition(db: pg.Client, store: StoreConfig): Promise<Lsn> {
  const r = await db.query<{ lsn: string | null; wal_status: string | null; plugin: string }>(
    `SELECT confirmed_flush_lsn::text AS lsn, wal_status, plugin FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
    [store.slot],
  );
  const row = r.rows[0];
  if (!row || row.plugin !== 'pgoutput' || row.lsn === null)
    throw new BranchlineError({
      code: 'BL-S001',
      message: `the replication slot "${store.slot}" does not exist at ${storeRole(store)} (${describeUrl(store.url)}): an initial load into HQ needs it first, or the changes committed during the copy would be lost.`,
      hint: 'Run `branchline install` for this store, then the load.',
    });
  if (row.wal_status === 'lost')
    throw new BranchlineError({
      code: 'BL-S003',
      message: `the replication slot "${store.slot}" at ${storeRole(store)} was invalidated: it cannot carry on from a load.`,
      hint: 'Re-create it (`branchline uninstall` then `install` for this store), then run the load with --restart after clearing HQ of the store\'s rows.',
    });
  return Lsn.parse(row.lsn);
}

/**
 * A resumed load copies the rest from a new snapshot, while the position
 * keeps the first (the rows copied before were copied under it). A
 * transaction seen by the new snapshot and not by the first is both in
 * the rest of the copy and delivered by the stream. For tables that is the
 * same row written twice, to the same result; for an aggregate it would be
 * counted twice. So: such a transaction touching a table an aggregate reads
 * that is still being copied refuses the resume (found by peeking at the
 * slot, which nothing reads while the load holds the pipeline's lock).
 */
async function refuseInexactResume(a: {
  store: StoreConfig;
  anchor: UpLoadAnchor;
  mappings: MappingSet;
  state: readonly LoadRow[];
  /** The first snapshot (the stored position's). */
  first: PgSnapshot | null;
  now: PgSnapshot;
  /** WAL insert position read after `now` was taken. */
  nowUntil: Lsn;
}): Promise<void> {
  const firstSnapshot = a.first;
  if (!firstSnapshot) return;
  const pending = new Set(a.state.filter((r) => r.status === 'copying').map((r) => r.source_table));
  const tables = a.mappings.mappings.filter((m) => m.aggregate && pending.has(tableKey(m.source))).map((m) => m.source);
  if (tables.length === 0) return;
  const db = await connect(a.store.url, { role: storeRole(a.store), applicationName: `branchline-snapshot-${a.store.code}` });
  try {
    const between = await a.anchor.changedBetween(db, { first: firstSnapshot, now: a.now, until: a.nowUntil, tables });
    if (between > 0)
      throw new BranchlineError({
        code: 'BL-S009',
        message: `the interrupted initial load of store ${a.store.code} cannot be finished exactly: since it started, the store committed ${between} transaction(s) changing ${tables.map((t) => tableKey(t)).join(', ')}, which an aggregate mapping sums, and the rest of the copy would count them a second time.`,
        hint: `Delete the store's rows from the mappings' target tables at HQ (its totals too), then run \`branchline snapshot --store ${a.store.code} --direction up --restart\`.`,
      });
  } finally {
    await db.end().catch(() => undefined);
  }
}
