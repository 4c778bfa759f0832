/**
 * The example ERP's catalogs (HQ's and a store's, every table, as
 * `readCatalog` describes them) kept as a JSON fixture, so pure tests can
 * validate and compile the example's mapping files without a database.
 * `test/hostile-values.pg.test.ts` describes a real HQ and store built from
 * hq.sql and store.sql and checks the fixture still equals them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TableInfo } from '../../src/catalog/pg-catalog.js';
import type { TableId } from '../../src/core/change.js';
import type { Catalog } from '../../src/agent/prepare.js';
import { readCatalog } from '../../src/agent/prepare.js';
import { connect } from '../../src/db/connect.js';
import { listTables } from '../../src/catalog/pg-catalog.js';

export const RETAIL_CATALOGS_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/retail-example-catalogs.json');

interface CatalogJson {
  readonly tables: [string, TableInfo][];
  readonly all: TableId[];
  readonly sequences: string[];
}

export interface RetailCatalogs {
  readonly hq: Catalog;
  readonly store: Catalog;
}

/** The ERP's tables only: branchline's own schema grows with every migration and is no part of what mappings read. */
export function catalogToJson(c: Catalog): CatalogJson {
  return { tables: [...c.tables.entries()].sort(([a], [b]) => (a < b ? -1 : 1)), all: [...c.all].filter((t) => t.schema !== 'branchline').sort((a, b) => (`${a.schema}.${a.table}` < `${b.schema}.${b.table}` ? -1 : 1)), sequences: [...c.sequences].sort() };
}

function catalogFromJson(j: CatalogJson): Catalog {
  return { tables: new Map(j.tables), all: j.all, sequences: new Set(j.sequences) };
}

/** The fixture (pure: no database). */
export function retailCatalogs(): RetailCatalogs {
  const j = JSON.parse(readFileSync(RETAIL_CATALOGS_FILE, 'utf8')) as { hq: CatalogJson; store: CatalogJson };
  return { hq: catalogFromJson(j.hq), store: catalogFromJson(j.store) };
}

/** Every table of a real database, described as `readCatalog` does (for checking or rewriting the fixture). */
export async function describeAll(url: string, role: string): Promise<Catalog> {
  const db = await connect(url, { role, applicationName: 'branchline-test-catalog' });
  let tables: TableId[];
  try {
    tables = (await listTables(db)).filter((t) => t.schema === 'public');
  } finally {
    await db.end().catch(() => undefined);
  }
  return readCatalog(url, role, tables);
}
