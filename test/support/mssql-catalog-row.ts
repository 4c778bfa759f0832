import type { CatalogColumnRow } from '../../connectors/mssql-trigger/catalog.js';

/** A row as CATALOG_SQL returns it (table dbo.sale, nullable, unless `more` says otherwise). */
export function colRow(column_id: number, column_name: string, type_name: string, max_length: number, precision = 0, scale = 0, more: Partial<CatalogColumnRow> = {}): CatalogColumnRow {
  return {
    schema_name: 'dbo',
    table_name: 'sale',
    column_id,
    column_name,
    type_name,
    max_length,
    precision,
    scale,
    is_nullable: true,
    is_identity: false,
    is_computed: false,
    has_default: false,
    ...more,
  };
}
