import sql from 'mssql';
import type { MssqlTableInfo } from '../../connectors/mssql-trigger/catalog.js';
import { isMssqlConnectionError, mssqlConnect, mssqlConnectionError } from '../../connectors/mssql-trigger/connect.js';
import { bind, type BoundParam } from '../../connectors/mssql-trigger/sql.js';
import { formatTable, type TableId } from '../core/change.js';
import {
  byKeysParams,
  byKeysSql,
  chunkParams,
  chunkSql,
  ESTIMATE_SQL,
  estimateParams,
  isolationFor,
  isolationLevel,
  keysPerRead,
  readRefusal,
  SNAPSHOT_STATE_SQL,
  sourceRow,
  type MssqlSourceTable,
  type RawRow,
} from './mssql-source-sql.js';
import type { SourceIsolation, SourceRow, SourceRowsReader, SourceTable } from './source-rows.js';

export interface MssqlSourceRowsOptions {
  readonly url: string;
  /** For messages: "store S001". */
  readonly role: string;
  readonly applicationName: string;
}

/**
 * A SQL Server store's up tables (connector mssql-trigger): one
 * transaction on one connection, SNAPSHOT when the database allows it and
 * READ COMMITTED otherwise (see `isolation`), every column read as the
 * capture trigger writes it and normalized as the capture normalizes it
 * (connectors/mssql-trigger/types.ts). SQL Server has no read-only
 * transaction: the login needs only db_datareader (it runs SELECTs only).
 */
export class MssqlSourceRows implements SourceRowsReader {
  readonly postgres = null;
  private chosen: ReturnType<typeof isolationFor> | null = null;
  private pool: sql.ConnectionPool | null = null;
  private tx: sql.Transaction | null = null;

  constructor(private readonly options: MssqlSourceRowsOptions) {}

  get isolation(): SourceIsolation {
    if (!this.chosen) throw new Error('internal: the isolation is known after begin()');
    return this.chosen;
  }

  async begin(): Promise<void> {
    this.pool = await mssqlConnect(this.options.url, this.options.role, { applicationName: this.options.applicationName });
    const state = await this.run<{ snapshot_isolation_state: number }>(SNAPSHOT_STATE_SQL, [], null, this.pool.request());
    const chosen = isolationFor(state[0]?.snapshot_isolation_state);
    this.chosen = chosen;
    const tx = this.pool.transaction();
    await this.guard(() => tx.begin(isolationLevel(chosen)));
    this.tx = tx;
  }

  async chunk(table: SourceTable, after: string | null, limit: number): Promise<SourceRow[]> {
    const t = mssqlTable(table);
    const rows = await this.run<RawRow>(chunkSql(t, after !== null), chunkParams(limit, after === null ? null : (JSON.parse(after) as string[])), t.id);
    return rows.map((r) => sourceRow(t, r));
  }

  async byKeys(table: SourceTable, keys: readonly string[]): Promise<SourceRow[]> {
    const t = mssqlTable(table);
    const per = keysPerRead(t);
    const out: SourceRow[] = [];
    for (let i = 0; i < keys.length; i += per) {
      const part = keys.slice(i, i + per).map((k) => JSON.parse(k) as string[]);
      out.push(...(await this.run<RawRow>(byKeysSql(t, part.length), byKeysParams(part), t.id)).map((r) => sourceRow(t, r)));
    }
    return out;
  }

  async estimate(tables: readonly TableId[]): Promise<number | null> {
    let n = 0;
    for (const t of tables) {
      const r = await this.run<{ n: string | number | null }>(ESTIMATE_SQL, estimateParams(t), null);
      const v = r[0]?.n;
      if (v === null || v === undefined) return null;
      n += Number(v);
    }
    return n;
  }

  async end(): Promise<void> {
    const tx = this.tx;
    this.tx = null;
    if (tx) await this.guard(() => tx.commit());
  }

  async close(): Promise<void> {
    const tx = this.tx;
    this.tx = null;
    await tx?.rollback().catch(() => undefined);
    const pool = this.pool;
    this.pool = null;
    await pool?.close().catch(() => undefined);
  }

  /** One statement; `table`: the table it reads (a refused read of it is BL-R004). */
  private async run<R>(statement: string, params: readonly BoundParam[], table: TableId | null, request?: sql.Request): Promise<R[]> {
    const req = request ?? (this.tx ? new sql.Request(this.tx) : null);
    if (!req) throw new Error('internal: the source is read before begin()');
    return this.guard(async () => (await bind(req, params).query<R>(statement)).recordset ?? [], table);
  }

  /** A lost connection is BL-D001 (never the password), a refused read of a table BL-R004; another statement error passes as it is. */
  private async guard<T>(work: () => Promise<T>, table: TableId | null = null): Promise<T> {
    try {
      return await work();
    } catch (e) {
      if (isMssqlConnectionError(e)) throw mssqlConnectionError(e, this.options.url, this.options.role);
      throw (table && readRefusal(e, this.options.role, table)) || e;
    }
  }
}

function mssqlTable(table: SourceTable): MssqlSourceTable {
  const info = table.info as Partial<MssqlTableInfo>;
  if (!info.mssqlTypes) throw new Error(`internal: ${formatTable(table.id)} was not described by SQL Server's catalog`);
  return { id: table.id, info: table.info as MssqlTableInfo, primaryKey: table.primaryKey };
}
