import sql from 'mssql';
import { mssqlConnect, mssqlTypeSql, requireTypeMapping, type MssqlTableInfo } from '../../connectors/mssql-trigger/index.js';
import { describeMssqlTable } from '../../connectors/mssql-trigger/catalog.js';
import { isMssqlConnectionError, mssqlConnectionError, describeMssqlUrl } from '../../connectors/mssql-trigger/connect.js';
import { qualifiedName, quoteName, type BoundParam } from '../../connectors/mssql-trigger/sql.js';
import { formatTable } from '../core/change.js';
import { BranchlineError } from '../core/errors.js';
import { redact } from '../core/logger.js';
import { byReference, RoundFailure, withDeadline, type LookupResult, type RecordLookup, type RecordReader } from './record-reader.js';

export interface MssqlRecordReaderOptions {
  readonly url: string;
  readonly role: string;
  readonly timeoutMs: number;
}

/** The most references one statement binds (SQL Server takes 2,100 parameters). */
export const MSSQL_MAX_REFS = 2_000;

/** Kept here too for its users: the type mapping owns it (connectors/mssql-trigger/types.ts). */
export { mssqlTypeSql };

/**
 * The one statement of a round at a SQL Server store: the references as
 * bound parameters in a VALUES list (no OPENJSON, so any compatibility
 * level), matched with TRY_CONVERT (a reference that is not of the key's
 * type matches nothing instead of failing the statement), and each column
 * turned into text as the capture triggers do.
 */
export function mssqlStatement(table: MssqlTableInfo, lookup: RecordLookup, count: number): string {
  const type = (c: string) => {
    const t = table.mssqlTypes.get(c);
    if (!t) throw new BranchlineError(missingColumn(lookup, c));
    return t;
  };
  const cols = lookup.columns.map((c) => `${requireTypeMapping(formatTable(table.id), c, type(c)).textExpr(`t.${quoteName(c)}`)} AS ${quoteName(c)}`);
  const values = Array.from({ length: count }, (_, i) => `(${i + 1}, @r${i})`).join(', ');
  return [
    `SELECT r.[ord] AS [__ord]${cols.length ? `, ${cols.join(', ')}` : ''}`,
    `FROM (VALUES ${values}) AS r([ord], [ref])`,
    `JOIN ${qualifiedName(lookup.table)} AS t ON t.${quoteName(lookup.refColumn)} = TRY_CONVERT(${mssqlTypeSql(type(lookup.refColumn))}, r.[ref])`,
  ].join('\n');
}

export function mssqlParams(refs: readonly string[]): BoundParam[] {
  return refs.map((ref, i) => ({ name: `r${i}`, type: sql.NVarChar(400), value: ref }));
}

function missingColumn(lookup: RecordLookup, c: string) {
  return {
    code: 'BL-M025' as const,
    message: `the SQL Server table ${formatTable(lookup.table)} has no column "${c}", which settlement checks read.`,
    hint: 'Run `branchline validate`, and correct the settlement section of the mapping file.',
  };
}

/**
 * Reads records at a SQL Server store for settlement checks (up only:
 * filters and associations are HQ's). SQL Server has no read-only session:
 * give `read_url` a login that is only `db_datareader` (docs/settlement.md).
 */
export class MssqlRecordReader implements RecordReader {
  private pool: Promise<sql.ConnectionPool> | null = null;
  private readonly tables = new Map<string, MssqlTableInfo>();

  constructor(private readonly options: MssqlRecordReaderOptions) {}

  async read(lookup: RecordLookup, refs: readonly string[]): Promise<LookupResult> {
    if (refs.length === 0) return new Map();
    if (lookup.filters?.length || lookup.association) throw new Error('internal: a SQL Server store is read by its own key only');
    if (refs.length > MSSQL_MAX_REFS)
      throw new RoundFailure('error', `more than ${MSSQL_MAX_REFS} records of one SQL Server store in one call.`, 'BL-K002');
    let request: sql.Request | null = null;
    const work = (async () => {
      const pool = await this.connected();
      const table = await this.describe(pool, lookup);
      request = pool.request();
      for (const p of mssqlParams(refs)) request.input(p.name, p.type, p.value);
      const res = await request.query<Record<string, string | null>>(mssqlStatement(table, lookup, refs.length));
      const rows = res.recordset.map((r) => {
        const out: Record<string, string | null> = { __ord: String(r['__ord']) };
        for (const c of lookup.columns) {
          const v = r[c];
          out[c] = v === null || v === undefined ? null : requireTypeMapping(formatTable(table.id), c, table.mssqlTypes.get(c)!).normalize(String(v));
        }
        return out;
      });
      return byReference(rows);
    })();
    try {
      return await withDeadline(
        work,
        this.options.timeoutMs,
        () => new RoundFailure('unreachable', `the ${this.where()} did not answer within ${this.options.timeoutMs} ms.`, null),
        () => {
          (request as sql.Request | null)?.cancel();
          // Its connections may hang: start over with a new pool next time.
          const old = this.pool;
          this.pool = null;
          old?.then((p) => p.close(), () => undefined).catch(() => undefined);
        },
      );
    } catch (e) {
      if (e instanceof RoundFailure) throw e;
      if (e instanceof BranchlineError) {
        if (e.code === 'BL-D001' || e.code === 'BL-D002') throw new RoundFailure('unreachable', e.problem.message, e.code);
        throw new RoundFailure('error', `${e.problem.message} ${e.problem.hint ?? ''}`.trim(), e.code);
      }
      if (isMssqlConnectionError(e)) throw new RoundFailure('unreachable', mssqlConnectionError(e, this.options.url, this.options.role).problem.message, 'BL-D001');
      throw new RoundFailure('error', `the ${this.where()} refused the read: ${redact((e as Error).message)}.`, (e as { number?: number }).number?.toString() ?? null);
    }
  }

  async close(): Promise<void> {
    const p = this.pool;
    this.pool = null;
    await p?.then((x) => x.close()).catch(() => undefined);
  }

  private where(): string {
    return `${this.options.role} SQL Server database at ${describeMssqlUrl(this.options.url)}`;
  }

  private connected(): Promise<sql.ConnectionPool> {
    if (!this.pool) {
      const p = mssqlConnect(this.options.url, this.options.role, { applicationName: 'branchline-settlement', connectTimeoutMs: this.options.timeoutMs });
      this.pool = p;
      p.catch(() => {
        if (this.pool === p) this.pool = null;
      });
    }
    return this.pool;
  }

  private async describe(pool: sql.ConnectionPool, lookup: RecordLookup): Promise<MssqlTableInfo> {
    const key = formatTable(lookup.table);
    let t = this.tables.get(key);
    if (!t) {
      const found = await describeMssqlTable(pool, lookup.table);
      if (!found)
        throw new BranchlineError({
          code: 'BL-M025',
          message: `the ${this.where()} has no table ${key} (or the login may not see it), which settlement checks read.`,
          hint: 'Run `branchline validate`, and let the read-only login read the table (db_datareader).',
        });
      this.tables.set(key, found);
      t = found;
    }
    const table: MssqlTableInfo = t;
    for (const c of [lookup.refColumn, ...lookup.columns]) if (!table.mssqlTypes.has(c)) throw new BranchlineError(missingColumn(lookup, c));
    return table;
  }
}
