import { LSN_CODEC, PgLogicalInstaller, PgLogicalSource } from '../../connectors/pg-logical/index.js';
import { LOG_TABLE, PgTriggerInstaller, PgTriggerSource, purgeChangeLog, XID8_CODEC, type XidPosition } from '../../connectors/pg-trigger/index.js';
import type pg from 'pg';
import { Lsn } from '../core/lsn.js';
import type { Config, StoreConfig } from '../config/load.js';
import type { TableId } from '../core/change.js';
import type { Logger } from '../core/logger.js';
import type { SlotPosition } from '../core/slot-position.js';
import type { ChangeTableReaderOptions, Source } from '../core/source.js';
import { bounded, connect, endClient } from '../db/connect.js';
import { ROWVERSION_CODEC, type RowversionPosition } from '../../connectors/mssql-trigger/rowversion-codec.js';
import type { SourceStream } from '../core/source.js';
import { downOriginName, readCatalog, storeRole, type Catalog } from './prepare.js';

/** What `install` / `uninstall` do at a store for its capture. */
export interface StoreInstaller {
  install(tables: readonly TableId[]): Promise<string[]>;
  ensureFullBeforeImages(tables: readonly TableId[]): Promise<string[]>;
  uninstall(options: { force?: boolean }): Promise<string[]>;
}

/**
 * How one store's changes are captured, whichever the connector: the up
 * pipeline's source, what install puts at the store, and the little the
 * rest of the agent must know about it. The one place that chooses by
 * `store.connector`.
 */
export interface StoreCapture<P> {
  readonly connector: StoreConfig['connector'];
  /** The kind of position the up pipeline keeps at HQ. */
  readonly positionKind: string;
  source(config: Config, logger: Logger): Source<P>;
  installer(logger: Logger): StoreInstaller;
  /**
   * The replication origin that marks the down channel's writes at the store
   * (a logical slot reads with origin 'none'); undefined for trigger capture,
   * whose triggers read the session's `branchline.origin` instead and so need
   * no superuser or replication-origin grant.
   */
  readonly downReplicationOrigin: string | undefined;
  /** Deletes from the store's change table what HQ applied; null when the connector keeps no such table. */
  purge(statementTimeoutMs: number): Promise<{ readonly deleted: number; readonly purgedBelow: string } | null>;
  /** The store's description of these tables (what the up mappings read), for the mapping checks. */
  catalog(tables: readonly TableId[], connectTimeoutMs?: number): Promise<Catalog>;
  /**
   * What `status` shows of the store's capture, given the position HQ holds:
   * `db` is a connection to the store (PostgreSQL stores; null otherwise).
   */
  inspect(hqPosition: string | null, db: pg.ClientBase | null): Promise<CaptureState>;
  /**
   * Whether the store is PostgreSQL: the down channel (HQ -> store), initial
   * loads and `status`'s detail need it; a SQL Server store is read only.
   */
  readonly postgres: boolean;
}

/** A store's capture as `status` shows it. */
export interface CaptureState {
  /** Bytes the store holds that HQ has not applied (slot: WAL after its confirmed position; change table: its rows HQ lacks). */
  readonly lagBytes: number | null;
  /** What the store keeps for HQ (slot: WAL from its restart position; change table: its size). */
  readonly retainedBytes: number | null;
  readonly state: string;
}

/** The name the up pipeline's reader has in a trigger-fed change table. */
export function upReaderName(store: StoreConfig): string {
  return `up:${store.code}`;
}

/** Origin name the down channel's sink sets at a store (`branchline.origin`): the up reader skips it (no echo). */
export const DOWN_ORIGIN = 'HQ';

export function storeCapture(store: StoreConfig): StoreCapture<unknown> {
  switch (store.connector) {
    case 'pg-trigger':
      return triggerCapture(store) as StoreCapture<unknown>;
    case 'mssql-trigger':
      return mssqlCapture(store) as StoreCapture<unknown>;
    default:
      return logicalCapture(store) as StoreCapture<unknown>;
  }
}

const pgCatalog = (store: StoreConfig) => (tables: readonly TableId[], connectTimeoutMs?: number) => readCatalog(store.url, storeRole(store), tables, connectTimeoutMs);

function logicalCapture(store: StoreConfig): StoreCapture<SlotPosition> {
  return {
    connector: 'pg-logical',
    positionKind: LSN_CODEC.kind,
    source: (config, logger) =>
      new PgLogicalSource({
        url: store.url,
        role: storeRole(store),
        slot: store.slot,
        publication: store.publication,
        logger,
        statusIntervalMs: config.source.statusIntervalMs,
        silenceTimeoutMs: config.source.silenceTimeoutMs,
        reloadCommand: `branchline snapshot --store ${store.code} --direction up --restart`,
        // Keep decoding while HQ applies a chunk: room for two.
        highWaterMark: Math.max(5_000, config.batch.chunkRows * 2),
      }),
    installer: (logger) => new PgLogicalInstaller({ url: store.url, role: storeRole(store), slot: store.slot, publication: store.publication, logger }),
    downReplicationOrigin: downOriginName(store.code),
    purge: async () => null,
    catalog: pgCatalog(store),
    inspect: async (_hq, db) => {
      const r = await db!.query<{ current: string; confirmed: string | null; restart: string | null; wal_status: string | null; active: boolean | null }>(
        `SELECT pg_current_wal_lsn()::text AS current, s.confirmed_flush_lsn::text AS confirmed, s.restart_lsn::text AS restart,
                s.wal_status, s.active
           FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`,
        [store.slot],
      );
      const row = r.rows[0]!;
      const current = Lsn.parse(row.current);
      return {
        lagBytes: row.confirmed ? Number(Lsn.parse(row.confirmed).bytesUntil(current)) : null,
        retainedBytes: row.restart ? Number(Lsn.parse(row.restart).bytesUntil(current)) : null,
        state: row.wal_status ? `${row.wal_status}${row.active ? ', active' : ''}` : 'missing',
      };
    },
    postgres: true,
  };
}

/** What the up pipeline's reader of a store's change table is told, whichever the database. */
function changeTableReader(store: StoreConfig, config: Config, logger: Logger, reloadCommand: string): ChangeTableReaderOptions {
  return {
    url: store.url,
    role: storeRole(store),
    logger,
    pollMs: config.source.pollMs,
    pageRows: config.batch.chunkRows,
    reader: upReaderName(store),
    skipOrigin: DOWN_ORIGIN,
    reloadCommand,
    statementTimeoutMs: config.apply.statementTimeoutMs,
  };
}

/** A change table's installer as install/uninstall use it: nothing holds such a table the way a reader holds a slot, so there is nothing to force. */
function changeTableInstaller(installer: { install(t: readonly TableId[]): Promise<string[]>; ensureFullBeforeImages(): Promise<string[]>; uninstall(): Promise<string[]> }): StoreInstaller {
  return {
    install: (tables) => installer.install(tables),
    ensureFullBeforeImages: () => installer.ensureFullBeforeImages(),
    uninstall: () => installer.uninstall(),
  };
}

function triggerCapture(store: StoreConfig): StoreCapture<XidPosition> {
  const role = storeRole(store);
  return {
    connector: 'pg-trigger',
    positionKind: XID8_CODEC.kind,
    source: (config, logger) =>
      new PgTriggerSource(changeTableReader(store, config, logger, `\`branchline snapshot --store ${store.code} --direction up\``)),
    // No NOTIFY at a store: it would make the ERP's commits wait for one another; its one reader polls (source.poll_ms).
    installer: (logger) => changeTableInstaller(new PgTriggerInstaller({ url: store.url, role, logger, notify: false })),
    downReplicationOrigin: undefined,
    purge: async (statementTimeoutMs) => {
      const db = await connect(store.url, { role, applicationName: 'branchline-purge', connectTimeoutMs: 5_000, ...bounded(statementTimeoutMs) });
      try {
        // The store's table is HQ's queue while HQ is away: never purged by age, only below what HQ applied.
        const r = await purgeChangeLog(db, { retentionHours: null, readers: [upReaderName(store)] });
        return { deleted: r.deleted, purgedBelow: r.purgedBelow.toString() };
      } finally {
        await endClient(db);
      }
    },
    catalog: async (tables, connectTimeoutMs) => {
      // The capture triggers write the whole old row of every update and delete, whatever the table's replica identity.
      const c = await readCatalog(store.url, role, tables, connectTimeoutMs);
      return { ...c, tables: new Map([...c.tables].map(([k, t]) => [k, { ...t, replicaIdentity: 'full' as const, identityColumns: t.columns.map((col) => col.name) }])) };
    },
    inspect: async (hqPosition, db) => {
      // The change table is the store's queue: what HQ lacks is what lies at or above HQ's position.
      let at: XidPosition | null = null;
      try {
        at = hqPosition ? XID8_CODEC.parse(hqPosition) : null;
      } catch {
        // A position of another connector (the store switched): the pipeline itself says so; count from the start.
      }
      const size = (await db!.query<{ bytes: string | null }>(`SELECT pg_total_relation_size(to_regclass('${LOG_TABLE}'))::text AS bytes`)).rows[0]!.bytes;
      if (size === null) return { lagBytes: null, retainedBytes: null, state: 'change table missing' };
      // Inside a window, its transactions already applied are counted too (an overestimate until the window ends).
      const pending = (
        await db!.query<{ n: string; bytes: string }>(
          `SELECT count(*)::text AS n, coalesce(sum(pg_column_size(l.*)), 0)::text AS bytes FROM ${LOG_TABLE} l
            WHERE l.xid >= $1::text::xid8 AND ($2::text IS NULL OR NOT pg_visible_in_snapshot(l.xid, $2::text::pg_snapshot))
              AND l.origin IS DISTINCT FROM $3`,
          [(at?.bound ?? 0n).toString(), at?.snapshot ?? null, DOWN_ORIGIN],
        )
      ).rows[0]!;
      const n = Number(pending.n);
      return { lagBytes: Number(pending.bytes), retainedBytes: Number(size), state: `change table, ${n} change${n === 1 ? '' : 's'} not at HQ` };
    },
    postgres: true,
  };
}

/** The SQL Server connector, loaded when a SQL Server store needs it (its driver costs every agent's start-up ~0.2 s otherwise). */
const mssql = () => import('../../connectors/mssql-trigger/index.js');

/** SQL Server stores: rowversion-keyed change table (connectors/mssql-trigger); up only. */
function mssqlCapture(store: StoreConfig): StoreCapture<RowversionPosition> {
  const role = storeRole(store);
  return {
    connector: 'mssql-trigger',
    positionKind: ROWVERSION_CODEC.kind,
    source: (config, logger) => {
      const options = changeTableReader(store, config, logger, 'a fresh start of this store (an initial load from SQL Server is not built yet; see docs/connectors.md)');
      return {
        connector: 'mssql-trigger',
        positions: ROWVERSION_CODEC,
        idlePositionsStored: true,
        open: async (after: RowversionPosition | null): Promise<SourceStream<RowversionPosition>> => new (await mssql()).MssqlTriggerSource(options).open(after),
      };
    },
    installer: (logger) => {
      const installer = async () => changeTableInstaller(new (await mssql()).MssqlTriggerInstaller({ url: store.url, role, logger }));
      return {
        install: async (tables) => (await installer()).install(tables),
        ensureFullBeforeImages: async (tables) => (await installer()).ensureFullBeforeImages(tables),
        uninstall: async (o) => (await installer()).uninstall(o),
      };
    },
    downReplicationOrigin: undefined,
    purge: async () => {
      const m = await mssql();
      const pool = await m.mssqlConnect(store.url, role);
      try {
        const r = await m.purgeMssqlChangeLog(pool, { retentionHours: null, reader: upReaderName(store) });
        return { deleted: r.deleted, purgedBelow: ROWVERSION_CODEC.format(r.purgedBelow) };
      } finally {
        await pool.close().catch(() => undefined);
      }
    },
    // SQL Server has no sequences branchline reads, and the did-you-mean list of tables is PostgreSQL's.
    catalog: async (tables) => ({ tables: await (await mssql()).describeMssqlTables(store.url, tables, role), all: [], sequences: new Set<string>() }),
    // Whether it answers; its change table is not inspected (not verified live, see docs/connectors.md).
    inspect: async () => {
      const pool = await (await mssql()).mssqlConnect(store.url, role, { connectTimeoutMs: 3_000 });
      await pool.close().catch(() => undefined);
      return { lagBytes: null, retainedBytes: null, state: 'change table (SQL Server)' };
    },
    postgres: false,
  };
}
