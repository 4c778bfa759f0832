import { LSN_CODEC, PgLogicalInstaller, PgLogicalSource } from '../../connectors/pg-logical/index.js';
import { PgTriggerInstaller, PgTriggerSource, purgeChangeLog, XID8_CODEC, type PurgeResult, type XidPosition } from '../../connectors/pg-trigger/index.js';
import type { Config, StoreConfig } from '../config/load.js';
import type { TableId } from '../core/change.js';
import type { Logger } from '../core/logger.js';
import type { SlotPosition } from '../core/slot-position.js';
import type { Source } from '../core/source.js';
import { connect } from '../db/connect.js';
import { downOriginName, storeRole } from './prepare.js';

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
  purge(): Promise<PurgeResult | null>;
}

/** The name the up pipeline's reader has in a trigger-fed change table. */
export function upReaderName(store: StoreConfig): string {
  return `up:${store.code}`;
}

/** Origin name the down channel's sink sets at a store (`branchline.origin`): the up reader skips it (no echo). */
export const DOWN_ORIGIN = 'HQ';

export function storeCapture(store: StoreConfig): StoreCapture<unknown> {
  return (store.connector === 'pg-trigger' ? triggerCapture(store) : logicalCapture(store)) as StoreCapture<unknown>;
}

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
        // Keep decoding while HQ applies a chunk: room for two.
        highWaterMark: Math.max(5_000, config.batch.chunkRows * 2),
      }),
    installer: (logger) => new PgLogicalInstaller({ url: store.url, role: storeRole(store), slot: store.slot, publication: store.publication, logger }),
    downReplicationOrigin: downOriginName(store.code),
    purge: async () => null,
  };
}

function triggerCapture(store: StoreConfig): StoreCapture<XidPosition> {
  const role = storeRole(store);
  return {
    connector: 'pg-trigger',
    positionKind: XID8_CODEC.kind,
    source: (config, logger) =>
      new PgTriggerSource({
        url: store.url,
        role,
        logger,
        pollMs: config.source.pollMs,
        pageRows: config.batch.chunkRows,
        reader: upReaderName(store),
        skipOrigin: DOWN_ORIGIN,
        reloadCommand: `\`branchline snapshot --store ${store.code} --direction up\``,
      }),
    installer: (logger) => {
      const installer = new PgTriggerInstaller({ url: store.url, role, logger });
      return {
        install: (tables) => installer.install(tables),
        ensureFullBeforeImages: () => installer.ensureFullBeforeImages(),
        // Nothing holds a trigger-fed table the way a reader holds a slot: there is nothing to force.
        uninstall: () => installer.uninstall(),
      };
    },
    downReplicationOrigin: undefined,
    purge: async () => {
      const db = await connect(store.url, { role, applicationName: 'branchline-purge', connectTimeoutMs: 5_000 });
      try {
        // The store's table is HQ's queue while HQ is away: never purged by age, only below what HQ applied.
        return await purgeChangeLog(db, { retentionHours: null, readers: [upReaderName(store)] });
      } finally {
        await db.end().catch(() => undefined);
      }
    },
  };
}
