import sql from 'mssql';
import type { MssqlTableInfo } from '../../connectors/mssql-trigger/catalog.js';
import { qualifiedName, quoteName, type BoundParam } from '../../connectors/mssql-trigger/sql.js';
import { normalizeValue, requireTypeMapping, type TypeMapping } from '../../connectors/mssql-trigger/types.js';
import { formatTable, type TableId } from '../core/change.js';
import { BranchlineError } from '../core/errors.js';
import { redact } from '../core/logger.js';
import type { SourceIsolation, SourceRow } from './source-rows.js';

/**
 * The T-SQL reconcile runs at a SQL Server store, generated here so that
 * tests state it exactly (test/mssql-reconcile-sql.test.ts). Names are
 * quoted with [] (`]` doubled) as the connector quotes them; every value
 * (row counts, keys, the table's name for OBJECT_ID) is a bound, typed
 * parameter. Each column is read as the text the capture trigger writes
 * for it (its type mapping's `textExpr`), so a row in step normalizes to
 * the same PostgreSQL text the stream delivered.
 *
 * Keys travel as that text too: a key parameter is nvarchar(4000) holding
 * exactly what SQL Server printed, and the statement converts it back to
 * the column's own type (`readExpr`: the same CONVERT style), so keys are
 * compared in the column's type and collation, as ORDER BY sorts them.
 */

/** A table as the SQL Server reader reads it. */
export interface MssqlSourceTable {
  readonly id: TableId;
  readonly info: MssqlTableInfo;
  readonly primaryKey: readonly string[];
}

/** Most parameters one statement binds (SQL Server accepts 2,100). */
export const MSSQL_MAX_PARAMS = 2_000;

/** Whether the database allows SNAPSHOT transactions (`ALTER DATABASE ... SET ALLOW_SNAPSHOT_ISOLATION ON`). */
export const SNAPSHOT_STATE_SQL = `SELECT snapshot_isolation_state FROM sys.databases WHERE database_id = DB_ID()`;

/**
 * The isolation of the read: SNAPSHOT when the database allows it (state
 * 1, ON), READ COMMITTED otherwise (OFF, or switching between the two:
 * 2 and 3), where rows written during the run may show as differences.
 */
export function isolationFor(snapshotIsolationState: number | null | undefined): Extract<SourceIsolation, 'snapshot' | 'read committed'> {
  return snapshotIsolationState === 1 ? 'snapshot' : 'read committed';
}

/** The driver's isolation level of a read. */
export function isolationLevel(isolation: ReturnType<typeof isolationFor>): number {
  return isolation === 'snapshot' ? sql.ISOLATION_LEVEL.SNAPSHOT : sql.ISOLATION_LEVEL.READ_COMMITTED;
}

/** Rows of a table by the statistics (heap or clustered index), NULL when there is no such table. @table: its quoted name. */
export const ESTIMATE_SQL = `SELECT SUM(p.[rows]) AS n FROM sys.partitions AS p WHERE p.[object_id] = OBJECT_ID(@table) AND p.[index_id] IN (0, 1)`;

export function estimateParams(t: TableId): BoundParam[] {
  return [{ name: 'table', type: sql.NVarChar(300), value: qualifiedName(t) }];
}

/** Each column's type mapping, in the catalog's order. */
export function columnMappings(table: MssqlSourceTable): { readonly name: string; readonly mapping: TypeMapping }[] {
  return table.info.columns.map((c) => {
    const type = table.info.mssqlTypes.get(c.name);
    if (!type) throw new Error(`internal: no SQL Server type for ${c.name} of ${formatTable(table.id)}`);
    return { name: c.name, mapping: requireTypeMapping(formatTable(table.id), c.name, type) };
  });
}

function selectList(table: MssqlSourceTable): string {
  return columnMappings(table)
    .map((c) => `${c.mapping.textExpr(`t.${quoteName(c.name)}`)} AS ${quoteName(c.name)}`)
    .join(', ');
}

/** `@k0`-style references, read back into each key column's type. */
function keyValue(table: MssqlSourceTable, column: string, ref: string): string {
  const c = columnMappings(table).find((x) => x.name === column);
  if (!c) throw new Error(`internal: ${column} is not a column of ${formatTable(table.id)}`);
  return c.mapping.readExpr(ref);
}

/**
 * One keyset chunk: the first @limit rows in primary key order after the
 * key @k0, @k1, ... (`after`), as an expanded row comparison
 * (`a > @k0 OR (a = @k0 AND b > @k1) ...`: T-SQL has no row values).
 */
export function chunkSql(table: MssqlSourceTable, after: boolean): string {
  const pk = table.primaryKey;
  const col = (k: string) => `t.${quoteName(k)}`;
  const at = (i: number) => keyValue(table, pk[i]!, `@k${i}`);
  const terms = pk.map((k, i) => {
    const equal = pk.slice(0, i).map((e, j) => `${col(e)} = ${at(j)}`);
    const greater = `${col(k)} > ${at(i)}`;
    return equal.length === 0 ? greater : `(${[...equal, greater].join(' AND ')})`;
  });
  return [
    `SELECT TOP (@limit) ${selectList(table)}`,
    `  FROM ${qualifiedName(table.id)} AS t`,
    ...(after ? [` WHERE ${terms.join(' OR ')}`] : []),
    ` ORDER BY ${pk.map(col).join(', ')}`,
  ].join('\n');
}

/** chunkSql's parameters: @limit, and the previous chunk's last key as SQL Server printed it. */
export function chunkParams(limit: number, after: readonly string[] | null): BoundParam[] {
  return [{ name: 'limit', type: sql.Int, value: limit }, ...(after ?? []).map((v, i) => keyParam(`k${i}`, v))];
}

/** Keys one byKeysSql statement reads (within MSSQL_MAX_PARAMS). */
export function keysPerRead(table: MssqlSourceTable): number {
  return Math.max(1, Math.floor(MSSQL_MAX_PARAMS / table.primaryKey.length));
}

/** The rows of `count` keys: a VALUES list of @r<row>k<column> joined on every key column. */
export function byKeysSql(table: MssqlSourceTable, count: number): string {
  const pk = table.primaryKey;
  const values = Array.from({ length: count }, (_, r) => `(${pk.map((_, i) => `@r${r}k${i}`).join(', ')})`).join(', ');
  const on = pk.map((k, i) => `t.${quoteName(k)} = ${keyValue(table, k, `u.[k${i}]`)}`).join(' AND ');
  return [
    `SELECT ${selectList(table)}`,
    `  FROM ${qualifiedName(table.id)} AS t`,
    `  JOIN (VALUES ${values}) AS u(${pk.map((_, i) => `[k${i}]`).join(', ')})`,
    `    ON ${on}`,
  ].join('\n');
}

export function byKeysParams(keys: readonly (readonly string[])[]): BoundParam[] {
  return keys.flatMap((key, r) => key.map((v, i) => keyParam(`r${r}k${i}`, v)));
}

function keyParam(name: string, value: string): BoundParam {
  return { name, type: sql.NVarChar(4000), value };
}

/** A row as the driver returns it: each column's text (nvarchar) or null. */
export type RawRow = Record<string, string | null>;

/** A row as SQL Server printed it, normalized to PostgreSQL's text form; its key stays as printed (it is bound back as such). */
export function sourceRow(table: MssqlSourceTable, raw: RawRow): SourceRow {
  const values: Record<string, string | null> = {};
  for (const c of columnMappings(table)) values[c.name] = normalizeValue(c.mapping, formatTable(table.id), c.name, raw[c.name] ?? null);
  return { key: JSON.stringify(table.primaryKey.map((k) => raw[k] ?? null)), values };
}

/** SQL Server's errors for a table the login may not read (229: permission denied) or cannot see (208: invalid object name). */
const REFUSED_READ = new Set([229, 208]);

/** BL-R004 when SQL Server refused to let the login read `table`; null for any other error. */
export function readRefusal(e: unknown, role: string, table: TableId): BranchlineError | null {
  const err = e as { name?: string; number?: number; message?: string } | null;
  if (err?.name !== 'RequestError' || err.number === undefined || !REFUSED_READ.has(err.number)) return null;
  return new BranchlineError(
    {
      code: 'BL-R004',
      message: `the ${role} SQL Server database refused reconcile's read of ${formatTable(table)} (SQL Server error ${err.number}: ${redact(err.message ?? '').replace(/\.$/, '')}).`,
      hint: `Let the store's login read the table (db_datareader in the store's database, or GRANT SELECT ON ${qualifiedName(table)}), or leave it out with --tables; reconcile only reads at the store.`,
    },
    { cause: e },
  );
}
