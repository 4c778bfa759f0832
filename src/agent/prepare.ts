import type { TableInfo } from '../catalog/pg-catalog.js';
import { describeTables, listSequences, listTables } from '../catalog/pg-catalog.js';
import type { TableId } from '../core/change.js';
import { ProblemsError, type Problem } from '../core/errors.js';
import type { Config, StoreConfig } from '../config/load.js';
import { bounded, connect, connectionError, endClient, isConnectionError } from '../db/connect.js';
import { isBranchlineError } from '../core/errors.js';
import { compileMappings, loadMappingDir, mappedTables, validateMappings, type LoadedMappingFile } from '../mapping/index.js';
import type { MappingSet } from '../mapping/mapping.js';
import { entityTables } from '../mapping/analyze.js';
import type { EntitySet } from '../mapping/entities.js';

/** The mapping files of a configuration: those that parsed, and the problems of those that did not. */
export interface MappingFiles {
  readonly dir: string;
  /** The up files (store -> HQ). */
  readonly files: readonly LoadedMappingFile[];
  /** The down files (`direction: down`, HQ -> stores). */
  readonly down: readonly LoadedMappingFile[];
  /** Syntax and schema problems (BL-M001, BL-M002): their files are not in `files`. */
  readonly problems: readonly Problem[];
  /** entities.yml: what associate(...) may name. */
  readonly entities: EntitySet;
  /** HQ checks the foreign keys of applied rows (not apply.session_replication_role: replica); default true. */
  readonly foreignKeysChecked?: boolean;
}

/** Reads every mapping file (no database needed). Never throws for problems in the files. */
export async function loadMappings(config: Config): Promise<MappingFiles> {
  const { files, problems, entities } = await loadMappingDir(config.mappingsDir);
  return {
    dir: config.mappingsDir,
    files: files.filter((f) => f.spec.direction === 'up'),
    down: files.filter((f) => f.spec.direction === 'down'),
    problems,
    entities,
    foreignKeysChecked: config.apply.sessionReplicationRole !== 'replica',
  };
}

/** Whether the configuration hands data down to the stores. */
export function hasDown(m: MappingFiles): boolean {
  return m.down.some((f) => f.spec.enabled);
}

/** The tables the down files read at HQ and write at the stores. */
export function downTablesOf(m: MappingFiles): { hqSources: TableId[]; storeTargets: TableId[] } {
  const t = mappedTables(m.down);
  return { hqSources: t.sources, storeTargets: t.targets };
}

/** Problems of the down files: their sources are HQ tables, their targets a store's. */
export function downMappingProblems(m: MappingFiles, hq: Catalog, store: Catalog): Problem[] {
  return validateMappings(m.down, {
    source: hq.tables,
    sourceTables: hq.all,
    target: store.tables,
    targetTables: store.all,
    entities: m.entities,
    entityChecks: false,
    foreignKeysChecked: true,
  });
}

/** Checks the down files against HQ and one store and compiles them; throws every problem at once. */
export function checkAndCompileDown(m: MappingFiles, hq: Catalog, store: Catalog, context: string): MappingSet {
  const problems = downMappingProblems(m, hq, store);
  if (problems.length) throw new ProblemsError(`The down mapping files in ${m.dir} do not fit ${context}.`, problems);
  // entities.yml names HQ's sequences and tables: the up files' checks cover it (the target here is a store).
  // An HQ TRUNCATE empties a store table only HQ writes; a table the store also writes (its rows go up) keeps the store's rows.
  const storeWritten = new Set(mappedTables(m.files.filter((f) => f.spec.enabled)).sources.map((t) => `${t.schema}.${t.table}`));
  return compileMappings(m.down, {
    source: hq.tables,
    target: store.tables,
    entities: m.entities,
    entityChecks: false,
    unscopedTruncate: (t) => (storeWritten.has(`${t.schema}.${t.table}`) ? 'keep' : 'all'),
  });
}

/** Throws the syntax and schema problems, if any (when nothing more can be checked). */
export function requireReadable(m: MappingFiles): void {
  if (m.problems.length) throw new ProblemsError(`The mapping files in ${m.dir} have problems.`, m.problems);
}

export interface Catalog {
  readonly tables: Map<string, TableInfo>;
  readonly all: TableId[];
  readonly sequences: Set<string>;
}

/** A catalog statement that takes longer than this fails (and, 10 s later, its answer on our side: a link that stalls). */
const CATALOG_STATEMENT_TIMEOUT_MS = 20_000;

/**
 * Describes the given tables at a database (and lists all its tables for
 * did-you-mean hints). A connection refused, lost or stalled midway is a
 * BranchlineError (BL-D001, BL-S010): what the agent's start waits out.
 */
export async function readCatalog(url: string, role: string, tables: readonly TableId[], connectTimeoutMs = 10_000): Promise<Catalog> {
  const db = await connect(url, { role, applicationName: 'branchline-catalog', connectTimeoutMs, ...bounded(CATALOG_STATEMENT_TIMEOUT_MS) });
  try {
    return { tables: await describeTables(db, tables), all: await listTables(db), sequences: await listSequences(db) };
  } catch (e) {
    throw !isBranchlineError(e) && isConnectionError(e) ? connectionError(e, url, role) : e;
  } finally {
    await endClient(db);
  }
}

/**
 * Every problem of the mapping files: syntax and schema problems of the files
 * that did not parse, and the problems of the others against HQ and, when
 * given, a store's schema. Sorted by file, line and column.
 */
export function mappingProblems(m: MappingFiles, hq: Catalog, store: Catalog | null): Problem[] {
  const problems: Problem[] = [
    ...m.problems,
    ...validateMappings(m.files, {
      source: store?.tables ?? null,
      ...(store ? { sourceTables: store.all } : {}),
      target: hq.tables,
      targetTables: hq.all,
      entities: m.entities,
      sequences: hq.sequences,
      foreignKeysChecked: m.foreignKeysChecked ?? true,
    }),
  ];
  return problems.sort(
    (a, b) =>
      (a.location?.file ?? '').localeCompare(b.location?.file ?? '') ||
      (a.location?.line ?? 0) - (b.location?.line ?? 0) ||
      (a.location?.column ?? 0) - (b.location?.column ?? 0),
  );
}

/** Checks everything (see mappingProblems) and compiles; throws every problem at once. */
export function checkAndCompile(m: MappingFiles, hq: Catalog, store: Catalog | null, context: string): MappingSet {
  const problems = mappingProblems(m, hq, store);
  if (problems.length) {
    const onlyUnreadable = problems.every((p) => p.code === 'BL-M001' || p.code === 'BL-M002');
    throw new ProblemsError(`The mapping files in ${m.dir} ${onlyUnreadable ? 'have problems' : `do not fit ${context}`}.`, problems);
  }
  return compileMappings(m.files, { source: store?.tables ?? null, target: hq.tables, entities: m.entities });
}

/** The tables to describe: what the files read at the stores, and write (or entities reference) at HQ. */
export function tablesOf(m: MappingFiles): { sources: TableId[]; targets: TableId[] } {
  const t = mappedTables(m.files);
  return { sources: t.sources, targets: [...t.targets, ...entityTables(m.entities)] };
}

export function storeRole(store: StoreConfig): string {
  return `store ${store.code}`;
}

/**
 * The replication origin that marks what the down channel applies at a
 * store (so the store's slot, read with origin 'none', never sends it back
 * up). Origins are per PostgreSQL cluster, not per database: one per store.
 */
export function downOriginName(storeCode: string): string {
  return `branchline_down_${storeCode.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
}
