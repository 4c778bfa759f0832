import type { TableId } from '../core/change.js';
import { tableKey } from '../core/change.js';

/** Anything that can run a parameterised query (pg.Client, pg.Pool, pg.PoolClient). */
export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: R[]; rowCount: number | null }>;
}

/** Coarse type families, enough to check that an expression fits a column. */
export type TypeCategory =
  | 'integer'
  | 'numeric'
  | 'float'
  | 'text'
  | 'boolean'
  | 'date'
  | 'timestamp'
  | 'timestamptz'
  | 'time'
  | 'interval'
  | 'json'
  | 'bytea'
  | 'uuid'
  | 'array'
  | 'other';

export interface ColumnInfo {
  readonly name: string;
  /** SQL type as `format_type` prints it, e.g. `numeric(12,2)`: safe to splice into a cast. */
  readonly type: string;
  /** Base type name, e.g. `numeric`, `int4`, `_text`. */
  readonly typeName: string;
  readonly category: TypeCategory;
  readonly notNull: boolean;
  /** Has a default value or is an identity column: may be left out of an insert. */
  readonly hasDefault: boolean;
  /** Computed by the database (GENERATED ... STORED, or GENERATED ALWAYS AS IDENTITY): must not be written. */
  readonly generated: boolean;
  /**
   * GENERATED ... STORED: logical replication does not send it (PostgreSQL
   * up to 17), so a mapping cannot read it at a store. Absent: false.
   */
  readonly storedGenerated?: boolean;
}

export interface ForeignKeyInfo {
  /** The constraint's name (absent in hand-made catalogs). */
  readonly name?: string;
  /** DEFERRABLE: checked at commit when deferred, so rows may come in any order within a transaction. */
  readonly deferrable?: boolean;
  readonly columns: readonly string[];
  readonly references: TableId;
  readonly referencedColumns: readonly string[];
}

export interface TableInfo {
  readonly id: TableId;
  readonly columns: readonly ColumnInfo[];
  readonly primaryKey: readonly string[] | null;
  /** Every usable unique key (primary key first): plain, non-partial unique indexes. */
  readonly uniqueKeys: readonly (readonly string[])[];
  readonly replicaIdentity: 'default' | 'nothing' | 'full' | 'index';
  /** Columns a delete or key-changing update carries at the source. */
  readonly identityColumns: readonly string[];
  readonly foreignKeys: readonly ForeignKeyInfo[];
  /** Row-level security is enabled (COPY FROM refuses such a table: the sink inserts instead). Absent: false. */
  readonly rowSecurity?: boolean;
}

export function column(info: TableInfo, name: string): ColumnInfo | undefined {
  return info.columns.find((c) => c.name === name);
}

export function categorize(typeName: string, typeCategory: string): TypeCategory {
  switch (typeName) {
    case 'int2':
    case 'int4':
    case 'int8':
    case 'oid':
      return 'integer';
    case 'numeric':
    case 'money':
      return 'numeric';
    case 'float4':
    case 'float8':
      return 'float';
    case 'text':
    case 'varchar':
    case 'bpchar':
    case 'name':
    case 'citext':
    case 'char':
      return 'text';
    case 'bool':
      return 'boolean';
    case 'date':
      return 'date';
    case 'timestamp':
      return 'timestamp';
    case 'timestamptz':
      return 'timestamptz';
    case 'time':
    case 'timetz':
      return 'time';
    case 'interval':
      return 'interval';
    case 'json':
    case 'jsonb':
      return 'json';
    case 'bytea':
      return 'bytea';
    case 'uuid':
      return 'uuid';
    default:
      if (typeCategory === 'A') return 'array';
      if (typeCategory === 'S') return 'text';
      if (typeCategory === 'E') return 'text';
      return 'other';
  }
}

const RELKINDS = `('r','p')`;

/**
 * Describes the given tables. Tables that do not exist are absent from the
 * result (the caller reports them with a position in the mapping file).
 */
export async function describeTables(db: Queryable, tables: readonly TableId[]): Promise<Map<string, TableInfo>> {
  const result = new Map<string, TableInfo>();
  if (tables.length === 0) return result;
  const schemas = tables.map((t) => t.schema);
  const names = tables.map((t) => t.table);

  const rels = await db.query<{ oid: number; nspname: string; relname: string; relreplident: string; relrowsecurity: boolean }>(
    `SELECT c.oid::int AS oid, n.nspname, c.relname, c.relreplident, c.relrowsecurity
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN unnest($1::text[], $2::text[]) AS w(s, t) ON w.s = n.nspname AND w.t = c.relname
      WHERE c.relkind IN ${RELKINDS}`,
    [schemas, names],
  );
  if (rels.rows.length === 0) return result;
  const oids = rels.rows.map((r) => r.oid);

  const cols = await db.query<{
    attrelid: number;
    attname: string;
    type: string;
    typname: string;
    typcategory: string;
    attnotnull: boolean;
    atthasdef: boolean;
    attgenerated: string;
    attidentity: string;
  }>(
    `SELECT a.attrelid::int AS attrelid, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
            t.typname, t.typcategory, a.attnotnull, a.atthasdef, a.attgenerated::text AS attgenerated,
            a.attidentity::text AS attidentity
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
      WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attrelid, a.attnum`,
    [oids],
  );

  const idx = await db.query<{ indrelid: number; indisprimary: boolean; indisreplident: boolean; cols: string[] }>(
    `SELECT i.indrelid::int AS indrelid, i.indisprimary, i.indisreplident,
            array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   ORDER BY k.ord)::text[] AS cols
       FROM pg_index i
      WHERE i.indrelid = ANY($1::oid[]) AND i.indisunique AND i.indisvalid
        AND i.indpred IS NULL AND i.indexprs IS NULL
      ORDER BY i.indrelid, i.indisprimary DESC, i.indexrelid`,
    [oids],
  );

  const fks = await db.query<{
    conrelid: number;
    name: string;
    deferrable: boolean;
    cols: string[];
    ref_schema: string;
    ref_table: string;
    ref_cols: string[];
  }>(
    `SELECT c.conrelid::int AS conrelid, c.conname AS name, c.condeferrable AS deferrable,
            array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS cols,
            rn.nspname AS ref_schema, rc.relname AS ref_table,
            array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS ref_cols
       FROM pg_constraint c
       JOIN pg_class rc ON rc.oid = c.confrelid
       JOIN pg_namespace rn ON rn.oid = rc.relnamespace
      WHERE c.contype = 'f' AND c.conrelid = ANY($1::oid[])
      ORDER BY c.conrelid, c.conname`,
    [oids],
  );

  for (const rel of rels.rows) {
    const columns: ColumnInfo[] = cols.rows
      .filter((c) => c.attrelid === rel.oid)
      .map((c) => ({
        name: c.attname,
        type: c.type,
        typeName: c.typname,
        category: categorize(c.typname, c.typcategory),
        notNull: c.attnotnull,
        hasDefault: c.atthasdef || c.attidentity !== '',
        generated: c.attgenerated !== '' || c.attidentity === 'a',
        storedGenerated: c.attgenerated === 's',
      }));
    const indexes = idx.rows.filter((i) => i.indrelid === rel.oid);
    const pk = indexes.find((i) => i.indisprimary)?.cols ?? null;
    const replIndex = indexes.find((i) => i.indisreplident)?.cols;
    const replicaIdentity =
      rel.relreplident === 'f' ? 'full' : rel.relreplident === 'n' ? 'nothing' : rel.relreplident === 'i' ? 'index' : 'default';
    const identityColumns =
      replicaIdentity === 'full'
        ? columns.map((c) => c.name)
        : replicaIdentity === 'index'
          ? (replIndex ?? [])
          : replicaIdentity === 'default'
            ? (pk ?? [])
            : [];
    const id = { schema: rel.nspname, table: rel.relname };
    result.set(tableKey(id), {
      id,
      columns,
      primaryKey: pk,
      uniqueKeys: indexes.map((i) => i.cols),
      replicaIdentity,
      identityColumns,
      ...(rel.relrowsecurity ? { rowSecurity: true } : {}),
      foreignKeys: fks.rows
        .filter((f) => f.conrelid === rel.oid)
        .map((f) => ({
          name: f.name,
          deferrable: f.deferrable,
          columns: f.cols,
          references: { schema: f.ref_schema, table: f.ref_table },
          referencedColumns: f.ref_cols,
        })),
    });
  }
  return result;
}

/** Every ordinary table visible in the database, for "did you mean" hints. */
export async function listTables(db: Queryable): Promise<TableId[]> {
  const res = await db.query<{ nspname: string; relname: string }>(
    `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ${RELKINDS} AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2`,
  );
  return res.rows.map((r) => ({ schema: r.nspname, table: r.relname }));
}

/** Every sequence of a database, as `schema.name` (to check the sequences mapping entities allocate from). */
export async function listSequences(db: Queryable): Promise<Set<string>> {
  const res = await db.query<{ nspname: string; relname: string }>(
    `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
  );
  return new Set(res.rows.map((r) => `${r.nspname}.${r.relname}`));
}
