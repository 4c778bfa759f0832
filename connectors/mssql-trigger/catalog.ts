import sql from 'mssql';
import type { ColumnInfo, TableInfo } from '../../src/catalog/pg-catalog.js';
import type { TableId } from '../../src/core/change.js';
import { formatTable, tableKey } from '../../src/core/change.js';
import { isMssqlConnectionError, mssqlConnect, mssqlConnectionError } from './connect.js';
import { bind, CATALOG_SQL, catalogParams } from './sql.js';
import { requireTypeMapping, type MssqlColumnType } from './types.js';

/** A row of CATALOG_SQL's first result. */
export interface CatalogColumnRow {
  readonly schema_name: string;
  readonly table_name: string;
  readonly column_id: number;
  readonly column_name: string;
  readonly type_name: string;
  readonly max_length: number;
  readonly precision: number;
  readonly scale: number;
  readonly is_nullable: boolean;
  readonly is_identity: boolean;
  readonly is_computed: boolean;
  readonly has_default: boolean;
}

/** A row of CATALOG_SQL's second result. */
export interface CatalogKeyRow {
  readonly index_id: number;
  readonly is_primary_key: boolean;
  readonly column_name: string;
}

/** A described table: what the validator reads, plus each column's SQL Server type (what the trigger and the reader need). */
export interface MssqlTableInfo extends TableInfo {
  readonly mssqlTypes: ReadonlyMap<string, MssqlColumnType>;
}

export function columnType(r: CatalogColumnRow): MssqlColumnType {
  return { name: r.type_name, maxLength: r.max_length, precision: r.precision, scale: r.scale };
}

/**
 * The TableInfo of a SQL Server table, with PostgreSQL-equivalent types
 * (types.ts), so the mapping validator works unchanged. The triggers log the
 * whole old row, so the table behaves like REPLICA IDENTITY FULL. Foreign
 * keys are not read (a store's source tables need none). A column of a type
 * branchline cannot capture is BL-D007; null when there are no columns (no
 * such table).
 */
export function tableInfoFromCatalog(columns: readonly CatalogColumnRow[], keys: readonly CatalogKeyRow[]): MssqlTableInfo | null {
  const first = columns[0];
  if (!first) return null;
  const id: TableId = { schema: first.schema_name, table: first.table_name };
  const mssqlTypes = new Map<string, MssqlColumnType>();
  const infos: ColumnInfo[] = columns.map((r) => {
    const type = columnType(r);
    const m = requireTypeMapping(formatTable(id), r.column_name, type);
    mssqlTypes.set(r.column_name, type);
    return {
      name: r.column_name,
      type: m.pgType,
      typeName: m.pgTypeName,
      category: m.category,
      notNull: !r.is_nullable,
      hasDefault: r.has_default || r.is_identity || r.is_computed,
      generated: r.is_identity || r.is_computed,
      storedGenerated: false,
    };
  });
  const byIndex = new Map<number, { primary: boolean; columns: string[] }>();
  for (const k of keys) {
    let e = byIndex.get(k.index_id);
    if (!e) byIndex.set(k.index_id, (e = { primary: k.is_primary_key, columns: [] }));
    e.columns.push(k.column_name);
  }
  const indexes = [...byIndex.values()];
  const primaryKey = indexes.find((i) => i.primary)?.columns ?? null;
  return {
    id,
    columns: infos,
    primaryKey,
    uniqueKeys: indexes.map((i) => i.columns),
    replicaIdentity: 'full',
    identityColumns: infos.map((c) => c.name),
    foreignKeys: [],
    mssqlTypes,
  };
}

/** Runs CATALOG_SQL for one table. */
export async function describeMssqlTable(pool: sql.ConnectionPool, t: TableId): Promise<MssqlTableInfo | null> {
  const res = await bind(pool.request(), catalogParams(t)).query(CATALOG_SQL);
  const sets = res.recordsets as unknown as [CatalogColumnRow[], CatalogKeyRow[]];
  return tableInfoFromCatalog(sets[0] ?? [], sets[1] ?? []);
}

/**
 * Describes the given tables of a SQL Server store (a pool, or a URL it
 * connects to for this and closes). Tables that do not exist are absent
 * from the result, as with `describeTables` (the caller reports them).
 */
export async function describeMssqlTables(
  db: sql.ConnectionPool | string,
  tables: readonly TableId[],
  role = 'store',
): Promise<Map<string, MssqlTableInfo>> {
  const pool = typeof db === 'string' ? await mssqlConnect(db, role) : db;
  try {
    const result = new Map<string, MssqlTableInfo>();
    for (const t of tables) {
      const info = await describeMssqlTable(pool, t);
      if (info) result.set(tableKey(info.id), info);
    }
    return result;
  } catch (e) {
    throw typeof db === 'string' && isMssqlConnectionError(e) ? mssqlConnectionError(e, db, role) : e;
  } finally {
    if (typeof db === 'string') await pool.close().catch(() => undefined);
  }
}
