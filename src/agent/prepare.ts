import type { TableInfo } from '../catalog/pg-catalog.js';
import { describeTables, listTables } from '../catalog/pg-catalog.js';
import type { TableId } from '../core/change.js';
import { ProblemsError, type Problem } from '../core/errors.js';
import type { Config, StoreConfig } from '../config/load.js';
import { connect } from '../db/connect.js';
import { compileMappings, loadMappingDir, mappedTables, validateMappings, type LoadedMappingFile } from '../mapping/index.js';
import type { MappingSet } from '../mapping/mapping.js';

/** Mapping files read and checked for syntax and schema (no database needed). */
export async function loadMappings(config: Config): Promise<LoadedMappingFile[]> {
  const { files, problems } = await loadMappingDir(config.mappingsDir);
  if (problems.length) throw new ProblemsError(`The mapping files in ${config.mappingsDir} have problems.`, problems);
  return files;
}

export interface Catalog {
  readonly tables: Map<string, TableInfo>;
  readonly all: TableId[];
}

/** Describes the given tables at a database (and lists all its tables for did-you-mean hints). */
export async function readCatalog(url: string, role: string, tables: readonly TableId[], connectTimeoutMs = 10_000): Promise<Catalog> {
  const db = await connect(url, { role, applicationName: 'branchline-catalog', connectTimeoutMs });
  try {
    return { tables: await describeTables(db, tables), all: await listTables(db) };
  } finally {
    await db.end().catch(() => undefined);
  }
}

/**
 * Checks the mapping files against HQ and, when given, a store's schema,
 * and compiles them for that store. Throws every problem at once.
 */
export function checkAndCompile(
  files: readonly LoadedMappingFile[],
  hq: Catalog,
  store: Catalog | null,
  context: string,
): MappingSet {
  const problems: Problem[] = validateMappings(files, {
    source: store?.tables ?? null,
    ...(store ? { sourceTables: store.all } : {}),
    target: hq.tables,
    targetTables: hq.all,
  });
  if (problems.length) throw new ProblemsError(`The mapping files do not fit ${context}.`, problems);
  return compileMappings(files, { source: store?.tables ?? null, target: hq.tables });
}

export function tablesOf(files: readonly LoadedMappingFile[]): { sources: TableId[]; targets: TableId[] } {
  return mappedTables(files);
}

export function storeRole(store: StoreConfig): string {
  return `store ${store.code}`;
}
