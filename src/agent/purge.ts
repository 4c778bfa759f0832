import { purgeChangeLog, type PurgeResult } from '../../connectors/pg-trigger/index.js';
import type { Config } from '../config/load.js';
import { bounded, connect, endClient } from '../db/connect.js';

/**
 * One purge of HQ's change log (the down channel's queue): below what every
 * store applied and past `down.retention_hours`. Its own connection, bounded
 * like the pipelines' (a link that stalls without a reset fails the round
 * with BL-S010; the agent's loop tries again at the next interval).
 */
export async function purgeHqChangeLog(config: Pick<Config, 'hq' | 'down' | 'apply'>): Promise<PurgeResult> {
  const db = await connect(config.hq.url, { role: 'HQ', applicationName: 'branchline-purge', ...bounded(config.apply.statementTimeoutMs) });
  try {
    return await purgeChangeLog(db, { retentionHours: config.down.retentionHours });
  } finally {
    await endClient(db);
  }
}
