import { aggregateSources } from '../mapping/index.js';
import type { Config, StoreConfig } from '../config/load.js';
import type { Logger } from '../core/logger.js';
import { dropState, migrateLatest } from '../state/migrate.js';
import { checkAndCompile, checkAndCompileDown, downTablesOf, hasDown, loadMappings, readCatalog, requireReadable, storeRole, tablesOf } from './prepare.js';
import { LOG_TABLE, PgTriggerInstaller } from '../../connectors/pg-trigger/index.js';
import type { TableId } from '../core/change.js';
import { connect, qualified } from '../db/connect.js';
import { storeCapture, type StoreInstaller } from './store-capture.js';

export interface InstallReport {
  readonly database: string;
  readonly actions: readonly string[];
}

export interface InstallOptions {
  /**
   * HQ's capture triggers on the down files' source tables: `refresh` every
   * one (default; after HQ's tables changed), or create only the `missing`
   * ones (what a centrally configured store agent does before each version,
   * so that many stores do not rewrite HQ's triggers at every switch).
   */
  readonly hqTriggers?: 'refresh' | 'missing';
}

function installerFor(store: StoreConfig, logger: Logger): StoreInstaller {
  return storeCapture(store).installer(logger);
}

/**
 * Prepares HQ (branchline's schema, by knex migrations) and each store (a
 * publication of the mapped tables and a slot, or a change table and
 * capture triggers for `pg-trigger`). Idempotent. The mappings are
 * checked against both sides first: nothing is installed for a mapping that
 * would not run.
 */
export async function install(config: Config, stores: readonly StoreConfig[], logger: Logger, options: InstallOptions = {}): Promise<InstallReport[]> {
  const files = await loadMappings(config);
  requireReadable(files);
  const { sources, targets } = tablesOf(files);
  const hq = await readCatalog(config.hq.url, 'HQ', targets);
  checkAndCompile(files, hq, null, 'HQ');
  const down = hasDown(files);
  const { hqSources, storeTargets } = downTablesOf(files);
  const hqDown = down ? await readCatalog(config.hq.url, 'HQ', hqSources) : null;
  const reports: InstallReport[] = [];
  const applied = await migrateLatest(config.hq.url);
  const hqActions = applied.length ? applied.map((m) => `applied migration ${m}`) : ['branchline schema is up to date'];
  // The down channel: HQ's change log and capture triggers on the tables the down files read.
  if (down) {
    const capture = options.hqTriggers === 'missing' ? await withoutCaptureTriggers(config.hq.url, hqSources) : hqSources;
    if (capture.length) hqActions.push(...(await new PgTriggerInstaller({ url: config.hq.url, role: 'HQ', logger }).install(capture)));
  }
  reports.push({ database: 'HQ', actions: hqActions });
  const fullImages = aggregateSources(files.files);
  for (const store of stores) {
    const installer = installerFor(store, logger);
    const identity = await installer.ensureFullBeforeImages(fullImages);
    const capture = storeCapture(store);
    const catalog = await capture.catalog(sources);
    checkAndCompile(files, hq, catalog, `HQ and ${storeRole(store)}`);
    const storeDown = down && capture.postgres;
    if (storeDown && hqDown) checkAndCompileDown(files, hqDown, await readCatalog(store.url, storeRole(store), storeTargets), `HQ and ${storeRole(store)}`);
    // Only down files: nothing is captured at the store, so no publication or slot (which would keep WAL for nobody), no change table.
    const actions = sources.length > 0 ? await installer.install(sources) : [`no up mapping files: no ${store.connector === 'pg-logical' ? 'publication or replication slot' : 'change table'} needed`];
    if (down && !capture.postgres) actions.push('no down channel here: HQ hands master data down to PostgreSQL stores only (not built for SQL Server)');
    // The store keeps the down channel's position, scheduled rows and load progress in its own branchline schema,
    // and the audit of the settlement checks it asks HQ (mappings with settlement: at_hq:).
    const asksHq = capture.postgres && files.files.some((f) => f.spec.enabled && f.spec.settlement?.atHq);
    if (storeDown || asksHq) {
      const migrated = await migrateLatest(store.url, storeRole(store));
      actions.push(...(migrated.length ? [`applied ${migrated.length} branchline migration${migrated.length === 1 ? '' : 's'} (${storeDown ? 'down channel state' : 'settlement check audit'})`] : []));
    }
    reports.push({ database: storeRole(store), actions: [...identity, ...actions] });
  }
  return reports;
}

/** The tables among `tables` that have no capture trigger yet (or that HQ's change log is missing for). */
async function withoutCaptureTriggers(hqUrl: string, tables: readonly TableId[]): Promise<TableId[]> {
  const db = await connect(hqUrl, { role: 'HQ', applicationName: 'branchline-install' });
  try {
    const log = await db.query<{ ok: boolean }>(`SELECT to_regclass('${LOG_TABLE}') IS NOT NULL AS ok`);
    if (!log.rows[0]?.ok) return [...tables];
    const missing: TableId[] = [];
    for (const t of tables) {
      const r = await db.query(`SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = 'branchline_capture'`, [qualified(t.schema, t.table)]);
      if (r.rowCount === 0) missing.push(t);
    }
    return missing;
  } finally {
    await db.end().catch(() => undefined);
  }
}

/** Removes what install made for capture at each store (slot and publication, or change table and triggers); with `hq`, branchline's schema at HQ too. */
export async function uninstall(
  config: Config,
  stores: readonly StoreConfig[],
  logger: Logger,
  options: { hq?: boolean; force?: boolean },
): Promise<InstallReport[]> {
  const reports: InstallReport[] = [];
  for (const store of stores) {
    reports.push({ database: storeRole(store), actions: await installerFor(store, logger).uninstall({ force: options.force ?? false }) });
  }
  if (options.hq) {
    const triggers = await new PgTriggerInstaller({ url: config.hq.url, role: 'HQ', logger }).uninstall();
    if (triggers.length > 0) reports.push({ database: 'HQ', actions: triggers });
    await dropState(config.hq.url);
    reports.push({ database: 'HQ', actions: ['dropped schema branchline (positions and status of every pipeline)'] });
  }
  return reports;
}
