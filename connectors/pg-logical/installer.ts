import type pg from 'pg';
import type { TableId } from '../../src/core/change.js';
import { formatTable } from '../../src/core/change.js';
import { BranchlineError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { SourceInstaller } from '../../src/core/source.js';
import { connect, connectionError, describeUrl, isConnectionError, qualified, quoteIdent } from '../../src/db/connect.js';

export interface PgLogicalInstallerOptions {
  readonly url: string;
  readonly role: string;
  readonly slot: string;
  readonly publication: string;
  readonly logger: Logger;
}

/**
 * Creates (idempotently) what the `pg-logical` connector needs at a store: a
 * publication holding exactly the mapped tables, and a `pgoutput` slot.
 * `uninstall` removes those two and nothing else.
 */
export class PgLogicalInstaller implements SourceInstaller {
  constructor(private readonly options: PgLogicalInstallerOptions) {}

  async ensureFullBeforeImages(tables: readonly TableId[]): Promise<string[]> {
    if (tables.length === 0) return [];
    return this.withDb(async (db) => {
      const done: string[] = [];
      for (const t of tables) {
        const name = qualified(t.schema, t.table);
        const r = await db.query<{ ident: string }>(`SELECT relreplident AS ident FROM pg_class WHERE oid = to_regclass($1)`, [name]);
        const ident = r.rows[0]?.ident;
        if (ident === undefined || ident === 'f') continue; // missing tables are reported by the mapping check
        await db.query(`ALTER TABLE ${name} REPLICA IDENTITY FULL`);
        done.push(`set REPLICA IDENTITY FULL on ${formatTable(t)}: it feeds an aggregate, whose totals need the old row of every update and delete`);
      }
      return done;
    });
  }

  async install(tables: readonly TableId[]): Promise<string[]> {
    return this.withDb(async (db) => {
      await this.checkServer(db);
      const done: string[] = [];
      const { publication, slot } = this.options;
      const wanted = [...new Set(tables.map(formatTable))].sort();
      const pub = await db.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [publication]);
      const list = tables.map((t) => qualified(t.schema, t.table)).join(', ');
      if (pub.rowCount === 0) {
        await db.query(`CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${list}`);
        done.push(`created publication "${publication}" for ${wanted.length} tables (${wanted.join(', ')})`);
      } else {
        const current = await db.query<{ t: string }>(
          `SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`,
          [publication],
        );
        const have = current.rows.map((r) => r.t);
        if (have.join(',') !== wanted.join(',')) {
          await db.query(`ALTER PUBLICATION ${quoteIdent(publication)} SET TABLE ${list}`);
          done.push(`updated publication "${publication}" to ${wanted.length} tables (was ${have.length})`);
        } else {
          done.push(`publication "${publication}" already holds the ${wanted.length} mapped tables`);
        }
      }
      const existing = await db.query<{ plugin: string; wal_status: string | null }>(
        `SELECT plugin, wal_status FROM pg_replication_slots WHERE slot_name = $1`,
        [slot],
      );
      if (existing.rows[0]?.plugin === 'pgoutput' && existing.rows[0].wal_status === 'lost') {
        // An invalidated slot can never be read again (BL-S003): what it held is gone already, so a new one loses nothing more.
        await db.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
        await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
        done.push(
          `replaced the invalidated replication slot "${slot}" with a new one; what the store wrote while it was lost is not in it: load the store into HQ again (\`branchline snapshot --direction up --restart\`, docs/operations.md)`,
        );
      } else if (existing.rowCount === 0) {
        await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
        done.push(`created replication slot "${slot}" (pgoutput); changes from now on are kept until HQ applied them`);
      } else if (existing.rows[0]?.plugin !== 'pgoutput') {
        throw new BranchlineError({
          code: 'BL-S001',
          message: `a replication slot "${slot}" already exists with plugin "${existing.rows[0]?.plugin}".`,
          hint: 'Set another `slot:` for this store, or drop that slot if nothing uses it.',
        });
      } else {
        done.push(`replication slot "${slot}" already exists`);
      }
      return done;
    });
  }

  async uninstall(options: { force?: boolean } = {}): Promise<string[]> {
    return this.withDb(async (db) => {
      const done: string[] = [];
      const { slot, publication } = this.options;
      const s = await db.query<{ active_pid: number | null }>(`SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
      if (s.rowCount) {
        const pid = s.rows[0]?.active_pid;
        if (pid != null) {
          if (!options.force)
            throw new BranchlineError({
              code: 'BL-S002',
              message: `the replication slot "${slot}" is being read right now (pid ${pid}).`,
              hint: 'Stop `branchline run` for this store first, or pass --force to disconnect it.',
            });
          await db.query(`SELECT pg_terminate_backend($1)`, [pid]);
          await new Promise((r) => setTimeout(r, 300));
        }
        await db.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
        done.push(`dropped replication slot "${slot}"`);
      } else done.push(`replication slot "${slot}" was not there`);
      const p = await db.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [publication]);
      if (p.rowCount) {
        await db.query(`DROP PUBLICATION ${quoteIdent(publication)}`);
        done.push(`dropped publication "${publication}"`);
      } else done.push(`publication "${publication}" was not there`);
      return done;
    });
  }

  /** wal_level and the privileges the connector needs, each as a sentence. */
  async checkServer(db: pg.Client): Promise<void> {
    const where = `${this.options.role} database at ${describeUrl(this.options.url)}`;
    const res = await db.query<{ wal_level: string; slots: string; senders: string; can_replicate: boolean }>(
      `SELECT current_setting('wal_level') AS wal_level, current_setting('max_replication_slots') AS slots,
              current_setting('max_wal_senders') AS senders,
              (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate`,
    );
    const r = res.rows[0]!;
    if (r.wal_level !== 'logical')
      throw new BranchlineError({
        code: 'BL-D003',
        message: `the ${where} has wal_level = ${r.wal_level}; logical replication needs wal_level = logical.`,
        hint: "Run ALTER SYSTEM SET wal_level = 'logical'; and restart PostgreSQL (or use a trigger-based connector where that is not allowed).",
      });
    if (Number(r.slots) < 1 || Number(r.senders) < 1)
      throw new BranchlineError({
        code: 'BL-D003',
        message: `the ${where} allows no replication slots or WAL senders (max_replication_slots = ${r.slots}, max_wal_senders = ${r.senders}).`,
        hint: 'Raise both to at least the number of stores reading this server plus one, and restart PostgreSQL.',
      });
    if (!r.can_replicate)
      throw new BranchlineError({
        code: 'BL-D004',
        message: `the user of the ${where} may not use replication.`,
        hint: 'Run ALTER ROLE <user> REPLICATION; as a superuser (the user also needs to own the mapped tables, or be superuser, to create the publication).',
      });
  }

  private async withDb<T>(fn: (db: pg.Client) => Promise<T>): Promise<T> {
    const db = await connect(this.options.url, { role: this.options.role, applicationName: 'branchline-install' });
    try {
      return await fn(db);
    } catch (e) {
      if (isConnectionError(e)) throw connectionError(e, this.options.url, this.options.role);
      if ((e as { code?: string }).code === '42501')
        throw new BranchlineError(
          {
            code: 'BL-D004',
            message: `the ${this.options.role} database refused: ${(e as Error).message}.`,
            hint: 'Creating a publication needs ownership of the mapped tables (or superuser); creating a slot needs the REPLICATION attribute.',
          },
          { cause: e },
        );
      throw e;
    } finally {
      await db.end().catch(() => undefined);
    }
  }
}
