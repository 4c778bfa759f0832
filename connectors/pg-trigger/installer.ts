import type { TableId } from '../../src/core/change.js';
import { formatTable } from '../../src/core/change.js';
import type { Logger } from '../../src/core/logger.js';
import type { SourceInstaller } from '../../src/core/source.js';
import { connect, connectionError, isConnectionError, qualified, quoteIdent } from '../../src/db/connect.js';
import { captureFunctionName, captureSql, createLogSql, LOG_TABLE, PURGED_TABLE, READERS_TABLE } from './sql.js';

export interface PgTriggerInstallerOptions {
  readonly url: string;
  readonly role: string;
  readonly logger: Logger;
  /** Wake readers with NOTIFY (default true: HQ's log); false for a store's own (see CaptureOptions). */
  readonly notify?: boolean;
}

/**
 * Creates (idempotently) what `pg-trigger` needs in a database: the change
 * log in schema `branchline`, and a capture function and triggers per
 * table. Run again after a table gains or loses columns (the function lists
 * them). `uninstall` removes the triggers, the functions and the log, and
 * nothing else.
 */
export class PgTriggerInstaller implements SourceInstaller {
  constructor(private readonly options: PgTriggerInstallerOptions) {}

  async install(tables: readonly TableId[]): Promise<string[]> {
    return this.withDb(async (db) => {
      const done: string[] = [];
      const existed = (await db.query(`SELECT to_regclass('${LOG_TABLE}') IS NOT NULL AS ok`)).rows[0]?.ok === true;
      const capture = { notify: this.options.notify ?? true };
      for (const sql of createLogSql(capture)) await db.query(sql);
      if (!existed) done.push(`created the change log ${LOG_TABLE}`);
      for (const t of tables) {
        const name = qualified(t.schema, t.table);
        const rel = await db.query<{ oid: number; columns: string[] }>(
          `SELECT c.oid::int AS oid, array(SELECT a.attname FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)::text[] AS columns
             FROM pg_class c WHERE c.oid = to_regclass($1)`,
          [name],
        );
        const r = rel.rows[0];
        if (!r) continue; // a missing table is reported by the mapping check
        const had = (await db.query(`SELECT 1 FROM pg_trigger WHERE tgrelid = $1 AND tgname = 'branchline_capture'`, [r.oid])).rowCount === 1;
        // One transaction per table: dropping and recreating a trigger in separate statements would let
        // a write between the two go uncaptured; inside one, writers wait for the commit instead.
        await db.query('BEGIN');
        try {
          for (const sql of captureSql(t, captureFunctionName(t, r.oid), r.columns, capture)) await db.query(sql);
          await db.query('COMMIT');
        } catch (e) {
          await db.query('ROLLBACK').catch(() => undefined);
          throw e;
        }
        done.push(`${had ? 'refreshed' : 'created'} the capture triggers on ${formatTable(t)} (${r.columns.length} columns)`);
      }
      return done;
    });
  }

  /** Triggers see the whole old row already. */
  async ensureFullBeforeImages(): Promise<string[]> {
    return [];
  }

  async uninstall(): Promise<string[]> {
    return this.withDb(async (db) => {
      const done: string[] = [];
      const triggers = await db.query<{ schema: string; table: string; name: string }>(
        `SELECT n.nspname AS schema, c.relname AS table, t.tgname AS name
           FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE t.tgname IN ('branchline_capture', 'branchline_capture_truncate') ORDER BY 1, 2, 3`,
      );
      for (const t of triggers.rows) await db.query(`DROP TRIGGER IF EXISTS ${quoteIdent(t.name)} ON ${qualified(t.schema, t.table)}`);
      const fns = await db.query<{ name: string }>(
        `SELECT p.proname AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'branchline' AND p.proname LIKE 'capture%'`,
      );
      for (const f of fns.rows) await db.query(`DROP FUNCTION IF EXISTS branchline.${quoteIdent(f.name)}()`);
      const tables = [...new Set(triggers.rows.map((t) => `${t.schema}.${t.table}`))];
      if (tables.length > 0) done.push(`removed the capture triggers from ${tables.join(', ')}`);
      if ((await db.query(`SELECT to_regclass('${LOG_TABLE}') IS NOT NULL AS ok`)).rows[0]?.ok === true) {
        await db.query(`DROP TABLE ${LOG_TABLE}`);
        await db.query(`DROP TABLE IF EXISTS ${READERS_TABLE}`);
        await db.query(`DROP TABLE IF EXISTS ${PURGED_TABLE}`);
        done.push(`dropped the change log ${LOG_TABLE}`);
      }
      return done;
    });
  }

  private async withDb<T>(fn: (db: import('pg').Client) => Promise<T>): Promise<T> {
    const { url, role } = this.options;
    const db = await connect(url, { role, applicationName: 'branchline-install' }); // says BL-D001 itself
    try {
      return await fn(db);
    } catch (e) {
      throw isConnectionError(e) ? connectionError(e, url, role) : e;
    } finally {
      await db.end().catch(() => undefined);
    }
  }
}
