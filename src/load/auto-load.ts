import type { Config, StoreConfig } from '../config/load.js';
import type { Logger } from '../core/logger.js';
import { connect } from '../db/connect.js';
import { storeRole } from '../agent/prepare.js';
import { runInitialLoad, type InitialLoadResult } from './initial-load.js';

/** Why a store's down pipeline cannot stream yet: never loaded, or a load that stopped midway. */
export type LoadNeed = 'none' | 'new' | 'resume';

/**
 * Whether the down pipeline `pipeline` of `store` has a position to stream
 * from (`none`), has never been loaded (`new`), or has an unfinished
 * initial load (`resume`). Reads the store's own `branchline` schema.
 */
export async function downLoadNeed(store: StoreConfig, pipeline: string): Promise<LoadNeed> {
  const db = await connect(store.url, { role: storeRole(store), applicationName: `branchline-load-check-${store.code}` });
  try {
    const r = await db.query<{ positioned: boolean; copying: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM branchline.pipelines WHERE pipeline = $1) AS positioned,
              EXISTS (SELECT 1 FROM branchline.initial_loads WHERE pipeline = $1 AND status = 'copying') AS copying`,
      [pipeline],
    );
    const row = r.rows[0]!;
    if (row.copying) return 'resume';
    return row.positioned ? 'none' : 'new';
  } finally {
    await db.end().catch(() => undefined);
  }
}

/**
 * `down.initial_load: auto`: the agent loads a store that has never been
 * loaded (or resumes a load that stopped) before its down pipeline starts,
 * as `branchline snapshot --store S` would, logging its progress every
 * `progressEveryMs`. Returns null when the store needed nothing.
 */
export async function autoInitialLoad(options: {
  readonly config: Config;
  readonly store: StoreConfig;
  readonly logger: Logger;
  readonly progressEveryMs?: number;
}): Promise<InitialLoadResult | null> {
  const { config, store, logger } = options;
  const need = await downLoadNeed(store, `down:${store.code}`);
  if (need === 'none') return null;
  logger.info(need === 'new' ? 'store never loaded: running its initial load (down.initial_load: auto)' : 'resuming the store\'s unfinished initial load', {
    store: store.code,
  });
  const every = options.progressEveryMs ?? 10_000;
  let lastLog = Date.now();
  const started = Date.now();
  const result = await runInitialLoad({
    config,
    store,
    logger,
    onProgress: (p) => {
      if (Date.now() - lastLog < every) return;
      lastLog = Date.now();
      logger.info('initial load progress', { table: p.table, rowsCopied: p.rowsCopied, allCopied: p.allCopied, rowsTotal: p.rowsTotal });
    },
  });
  logger.info('initial load done; the down pipeline continues from its snapshot', {
    store: store.code,
    rows: result.rows,
    tables: result.tables.length,
    resumed: result.resumed,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  });
  return result;
}
