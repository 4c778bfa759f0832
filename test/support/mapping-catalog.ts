/**
 * Hand-built catalogs for the mapping tests: what `describeTables` would
 * return, without a database.
 */
import { categorize, type ColumnInfo, type ForeignKeyInfo, type TableInfo } from '../../src/catalog/pg-catalog.js';
import { tableKey } from '../../src/core/change.js';

const TYPE_NAMES: Record<string, string> = {
  smallint: 'int2',
  integer: 'int4',
  bigint: 'int8',
  text: 'text',
  boolean: 'bool',
  date: 'date',
  'timestamp without time zone': 'timestamp',
  'timestamp with time zone': 'timestamptz',
  uuid: 'uuid',
  jsonb: 'jsonb',
  bytea: 'bytea',
  'double precision': 'float8',
  inet: 'inet',
};

function typeNameOf(type: string): { typeName: string; typeCategory: string } {
  if (type.endsWith('[]')) return { typeName: `_${typeNameOf(type.slice(0, -2)).typeName}`, typeCategory: 'A' };
  if (type.startsWith('numeric')) return { typeName: 'numeric', typeCategory: 'N' };
  if (type.startsWith('character varying')) return { typeName: 'varchar', typeCategory: 'S' };
  if (type.startsWith('character(')) return { typeName: 'bpchar', typeCategory: 'S' };
  const name = TYPE_NAMES[type];
  if (!name) throw new Error(`test catalog: unknown type ${type}`);
  return { typeName: name, typeCategory: name === 'inet' ? 'I' : 'X' };
}

/** A column as `format_type` prints its type, e.g. col('total', 'numeric(12,2)', { notNull: true }). */
export function col(
  name: string,
  type: string,
  opts: { notNull?: boolean; hasDefault?: boolean; generated?: boolean } = {},
): ColumnInfo {
  const { typeName, typeCategory } = typeNameOf(type);
  return {
    name,
    type,
    typeName,
    category: categorize(typeName, typeCategory),
    notNull: opts.notNull ?? false,
    hasDefault: opts.hasDefault ?? false,
    generated: opts.generated ?? false,
  };
}

export function table(
  name: string,
  columns: ColumnInfo[],
  opts: {
    primaryKey?: string[] | null;
    uniqueKeys?: string[][];
    replicaIdentity?: TableInfo['replicaIdentity'];
    identityColumns?: string[];
    foreignKeys?: { columns: string[]; references: string; referencedColumns: string[]; name?: string; deferrable?: boolean }[];
  } = {},
): TableInfo {
  const [schema, tbl] = name.includes('.') ? (name.split('.') as [string, string]) : ['public', name];
  const primaryKey = opts.primaryKey === undefined ? null : opts.primaryKey;
  const replicaIdentity = opts.replicaIdentity ?? 'default';
  const identityColumns =
    opts.identityColumns ??
    (replicaIdentity === 'full' ? columns.map((c) => c.name) : replicaIdentity === 'default' ? (primaryKey ?? []) : []);
  const foreignKeys: ForeignKeyInfo[] = (opts.foreignKeys ?? []).map((f) => {
    const [s, t] = f.references.includes('.') ? (f.references.split('.') as [string, string]) : ['public', f.references];
    return {
      columns: f.columns,
      references: { schema: s, table: t },
      referencedColumns: f.referencedColumns,
      ...(f.name === undefined ? {} : { name: f.name }),
      ...(f.deferrable === undefined ? {} : { deferrable: f.deferrable }),
    };
  });
  return {
    id: { schema, table: tbl },
    columns,
    primaryKey,
    uniqueKeys: opts.uniqueKeys ?? (primaryKey ? [primaryKey] : []),
    replicaIdentity,
    identityColumns,
    foreignKeys,
  };
}

export function catalog(...tables: TableInfo[]): Map<string, TableInfo> {
  return new Map(tables.map((t) => [tableKey(t.id), t]));
}

/** The store's tables used across the mapping tests. */
export function storeCatalog(): Map<string, TableInfo> {
  return catalog(
    table(
      'sale',
      [
        col('id', 'bigint', { notNull: true }),
        col('number', 'integer', { notNull: true }),
        col('issued_at', 'timestamp without time zone', { notNull: true }),
        col('customer_name', 'character varying(60)'),
        col('total', 'numeric(12,2)', { notNull: true }),
        col('qty', 'integer'),
        col('price', 'numeric(12,3)'),
        col('notes', 'text'),
        col('confirmed', 'boolean'),
        col('due_on', 'date'),
      ],
      { primaryKey: ['id'] },
    ),
    table(
      'sale_item',
      [
        col('sale_id', 'bigint', { notNull: true }),
        col('line_no', 'integer', { notNull: true }),
        col('product_code', 'text'),
        col('qty', 'numeric(12,3)'),
        col('price', 'numeric(12,2)'),
      ],
      { primaryKey: ['sale_id', 'line_no'], replicaIdentity: 'full' },
    ),
    table('audit_log', [col('at', 'timestamp with time zone'), col('what', 'text')]),
    table('product', [col('id', 'integer', { notNull: true }), col('code', 'text'), col('name', 'text')], {
      primaryKey: ['id'],
      replicaIdentity: 'nothing',
    }),
  );
}

/** HQ's tables used across the mapping tests. */
export function hqCatalog(): Map<string, TableInfo> {
  return catalog(
    table('store', [col('code', 'text', { notNull: true }), col('name', 'text')], { primaryKey: ['code'] }),
    table(
      'store_sale',
      [
        col('store_code', 'text', { notNull: true }),
        col('sale_id', 'bigint', { notNull: true }),
        col('number', 'integer'),
        col('issued_at', 'timestamp without time zone', { notNull: true }),
        col('customer_name', 'text'),
        col('total', 'numeric(12,2)', { notNull: true }),
        col('origin', 'text', { notNull: true, hasDefault: true }),
        col('total_cents', 'bigint', { generated: true }),
        col('confirmed', 'boolean'),
        col('issued_on', 'date'),
        col('qty', 'integer'),
      ],
      {
        primaryKey: ['store_code', 'sale_id'],
        uniqueKeys: [['store_code', 'sale_id'], ['store_code', 'number']],
        foreignKeys: [{ columns: ['store_code'], references: 'store', referencedColumns: ['code'] }],
      },
    ),
    table(
      'store_sale_item',
      [
        col('store_code', 'text', { notNull: true }),
        col('sale_id', 'bigint', { notNull: true }),
        col('line_no', 'integer', { notNull: true }),
        col('product_code', 'text', { notNull: true }),
        col('qty', 'numeric(12,3)'),
        col('price', 'numeric(12,2)'),
        col('line_total', 'numeric(14,2)'),
      ],
      {
        primaryKey: ['store_code', 'sale_id', 'line_no'],
        foreignKeys: [{ columns: ['store_code', 'sale_id'], references: 'store_sale', referencedColumns: ['store_code', 'sale_id'] }],
      },
    ),
    table('sale_copy', [col('id', 'bigint'), col('total', 'numeric(12,2)')]),
  );
}
