import sql from 'mssql';
import type { TableId } from '../../src/core/change.js';
import { formatTable } from '../../src/core/change.js';
import { BranchlineError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { SourceInstaller } from '../../src/core/source.js';
import { describeMssqlTable } from './catalog.js';
import { describeMssqlUrl, isMssqlConnectionError, mssqlConnect, mssqlConnectionError } from './connect.js';
import {
  bind,
  captureSql,
  createLogSql,
  DROP_LOG_SQL,
  dropTriggerSql,
  INSTALLED_SQL,
  LIST_TRIGGERS_SQL,
  LOG_TABLE,
  TRIGGER_EXISTS_SQL,
  triggerExistsParams,
  triggerName,
  VERSION_SQL,
} from './sql.js';

export interface MssqlTriggerInstallerOptions {
  readonly url: string;
  readonly role: string;
  readonly logger: Logger;
}

/** SQL Server 2016: CREATE OR ALTER needs its SP1 or later. */
const OLDEST_MAJOR = 13;

/**
 * Creates (idempotently) what `mssql-trigger` needs in a SQL Server
 * database: the change log in schema `branchline` and one capture trigger
 * per table, each created in a transaction of its own. Run again after a
 * table gains or loses columns (the trigger lists them). `uninstall` drops
 * the capture triggers, the two tables and the schema when nothing else is
 * in it, and nothing else.
 */
export class MssqlTriggerInstaller implements SourceInstaller {
  constructor(private readonly options: MssqlTriggerInstallerOptions) {}

  async install(tables: readonly TableId[]): Promise<string[]> {
    return this.withPool(async (pool) => {
      const done: string[] = [];
      const version = (await pool.request().query<{ major: number | null; edition: string | null }>(VERSION_SQL)).recordset[0];
      if (!version?.major || version.major < OLDEST_MAJOR) {
        throw new BranchlineError({
          code: 'BL-D008',
          message: `the ${this.options.role} SQL Server at ${describeMssqlUrl(this.options.url)} is version ${version?.major ?? 'older than 11 (2012)'}; the mssql-trigger connector needs SQL Server 2016 SP1 (version 13) or later.`,
          hint: 'Upgrade the server (any edition, Express included), or read this store another way.',
        });
      }
      const existed = (await pool.request().query<{ id: number | null }>(INSTALLED_SQL)).recordset[0]?.id != null;
      for (const batch of createLogSql()) await pool.request().batch(batch);
      if (!existed) done.push(`created the change log ${LOG_TABLE}`);
      for (const t of tables) {
        const info = await describeMssqlTable(pool, t); // a column type it cannot capture is BL-D007
        if (!info) continue; // a missing table is reported by the mapping check
        if (!info.primaryKey) {
          throw new BranchlineError({
            code: 'BL-M013',
            message: `${formatTable(t)} at the ${this.options.role} SQL Server has no primary key: its capture trigger pairs old and new rows by it, and deletes are applied at HQ by it.`,
            hint: `Add a primary key to ${formatTable(t)}, or leave it out of the mappings.`,
          });
        }
        const name = triggerName(t);
        const had =
(await bind(pool.request(), triggerExistsParams(t)).query<{ n: number }>(TRIGGER_EXISTS_SQL)).recordset[0]?.n === 1;
        const columns = info.columns.map((c) => ({ name: c.name, type: info.mssqlTypes.get(c.name)! }));
        const tx = new sql.Transaction(pool);
        await tx.begin();
        try {
          await new sql.Request(tx).batch(captureSql(t, columns, info.primaryKey));
          await tx.commit();
        } catch (e) {
          await tx.rollback().catch(() => undefined);
          throw e;
        }
        done.push(`${had ? 'refreshed' : 'created'} the capture trigger ${name} on ${formatTable(t)} (${columns.length} columns)`);
      }
      return done;
    });
  }

  /** Triggers see the whole old row already. */
  async ensureFullBeforeImages(): Promise<string[]> {
    return [];
  }

  async uninstall(): Promise<string[]> {
    return this.withPool(async (pool) => {
      const done: string[] = [];
      const triggers = (await pool.request().query<{ schema_name: string; table_name: string; trigger_name: string }>(LIST_TRIGGERS_SQL)).recordset;
      for (const t of triggers) await pool.request().batch(dropTriggerSql(t.schema_name, t.trigger_name));
      const tables = [...new Set(triggers.map((t) => `${t.schema_name}.${t.table_name}`))];
      if (tables.length > 0) done.push(`removed the capture triggers from ${tables.join(', ')}`);
      const existed = (await pool.request().query<{ id: number | null }>(INSTALLED_SQL)).recordset[0]?.id != null;
      await pool.request().batch(DROP_LOG_SQL);
      if (existed) done.push(`dropped the change log ${LOG_TABLE}`);
      return done;
    });
  }

  private async withPool<T>(fn: (pool: sql.ConnectionPool) => Promise<T>): Promise<T> {
    const { url, role } = this.options;
    const pool = await mssqlConnect(url, role, { applicationName: 'branchline-install' }); // says BL-D001/BL-D002 itself
    try {
      return await fn(pool);
    } catch (e) {
      throw isMssqlConnectionError(e) ? mssqlConnectionError(e, url, role) : e;
    } finally {
      await pool.close().catch(() => undefined);
    }
  }
}
