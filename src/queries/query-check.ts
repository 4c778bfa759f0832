import type { Config, QueryConfig } from '../config/load.js';
import { column, describeTables, type ColumnInfo, type Queryable } from '../catalog/pg-catalog.js';
import { tableKey, type TableId } from '../core/change.js';
import { BranchlineError } from '../core/errors.js';
import { LOG_TABLE, PURGED_TABLE, READERS_TABLE } from '../../connectors/pg-trigger/index.js';
import { loadMappingDir, parseTableName, type LoadedMappingFile } from '../mapping/index.js';

/**
 * Checks a configured cross-store query against HQ's catalog and the
 * mapping files: the table and its columns exist, one row per store and
 * product, and a mapping carries the table (which says how fresh it is).
 */

export type QueryName = 'stock' | 'prices';

export interface CheckedQuery {
  readonly name: QueryName;
  readonly table: TableId;
  readonly product: ColumnInfo;
  readonly store: ColumnInfo;
  /** The answered columns, in the configured order. */
  readonly columns: readonly ColumnInfo[];
  /** up: an up mapping writes the table (store data at HQ); down: a down mapping reads it (HQ data for the stores). */
  readonly direction: 'up' | 'down';
  /** The mapping file that says so. */
  readonly mapping: string;
}

/** BL-D005 unless HQ has these branchline tables (the freshness is read from them). */
async function requireInstalled(db: Queryable, tables: readonly string[]): Promise<void> {
  const r = await db.query<{ missing: string[] }>(`SELECT array(SELECT t FROM unnest($1::text[]) t WHERE to_regclass(t) IS NULL) AS missing`, [tables]);
  const missing = r.rows[0]?.missing ?? [];
  if (missing.length > 0)
    throw new BranchlineError({
      code: 'BL-D005',
      message: `branchline is not installed at HQ, or not for this channel: ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing, so HQ cannot say how fresh a store's rows are.`,
      hint: 'Run `branchline install` with the mapping files in place (and grant the read-only role SELECT on those tables, docs/queries.md).',
    });
}

/** The query's configuration; BL-Q001 when there is none. */
export function queryConfig(config: Config, name: QueryName): QueryConfig {
  const q = config.queries[name];
  if (q) return q;
  const example = name === 'stock' ? '{table: store_stock, product: product_id, store: store_code, columns: [quantity]}' : '{table: store_price, product: product_id, store: store_code, columns: [price]}';
  throw new BranchlineError({
    code: 'BL-Q001',
    message: `the ${name} query is not configured: ${config.file} has no \`queries: ${name}:\` entry.`,
    hint: `Add \`queries: ${name}: ${example}\` naming the HQ table and its columns (docs/queries.md).`,
  });
}

function misfit(name: QueryName, config: Config, message: string, hint: string): BranchlineError {
  return new BranchlineError({ code: 'BL-Q002', message: `the ${name} query does not fit HQ: ${message}`, hint: `${hint} (queries.${name} in ${config.file}).` });
}

/** The mapping that carries `table`: an up mapping writing it (preferred: the rows come from the stores) or a down mapping reading it. */
export function carrier(files: readonly LoadedMappingFile[], table: TableId): { direction: 'up' | 'down'; file: string } | null {
  const key = tableKey(table);
  const enabled = files.filter((f) => f.spec.enabled);
  const up = enabled.find((f) => f.spec.direction === 'up' && tableKey(f.spec.target) === key);
  if (up) return { direction: 'up', file: up.file };
  const down = enabled.find((f) => f.spec.direction === 'down' && tableKey(f.spec.source) === key);
  return down ? { direction: 'down', file: down.file } : null;
}

/** `db`: HQ (read-only is enough). `files`: the mapping files (default: loaded from the configuration's folder). */
export async function checkQuery(config: Config, name: QueryName, db: Queryable, files?: readonly LoadedMappingFile[]): Promise<CheckedQuery> {
  const q = queryConfig(config, name);
  await requireInstalled(db, ['branchline.pipelines', 'branchline.pipeline_status']);
  const table = parseTableName(q.table);
  const info = (await describeTables(db, [table])).get(tableKey(table));
  if (!info) throw misfit(name, config, `its table ${q.table} does not exist at HQ.`, 'Name the HQ table that holds one row per store and product, as "table" or "schema.table"');
  const list = info.columns.map((c) => c.name).join(', ');
  const wanted = [q.product, q.store, ...q.columns];
  const missing = wanted.filter((c, i) => !column(info, c) && wanted.indexOf(c) === i);
  if (missing.length > 0)
    throw misfit(name, config, `${q.table} at HQ has no column ${missing.join(', ')}.`, `Its columns are: ${list}. Correct the column names`);
  const product = column(info, q.product)!;
  const store = column(info, q.store)!;
  if (store.category !== 'text')
    throw misfit(name, config, `its store column ${q.store} is ${store.type}, not text: it cannot hold store codes such as ${config.stores[0]!.code}.`, `Name the column of ${q.table} that holds the store code. Its columns are: ${list}`);
  // One row per store and product: a unique key made of those columns (or fewer).
  if (!info.uniqueKeys.some((k) => k.every((c) => c === q.product || c === q.store)))
    throw misfit(
      name,
      config,
      `${q.table} has no primary key or unique key on (${q.store}, ${q.product}): a store could have two rows for one product.`,
      `Add one, e.g. ALTER TABLE ${q.table} ADD PRIMARY KEY (${q.store}, ${q.product}), or name a table that has one`,
    );
  const mappings = files ?? (await loadMappingDir(config.mappingsDir)).files;
  const carried = carrier(mappings, table);
  if (!carried)
    throw misfit(
      name,
      config,
      `no mapping file carries ${q.table} between the stores and HQ (no up mapping writes it, no down mapping reads it), so nothing says how fresh each store's rows are.`,
      `Name a table an up mapping targets or a down mapping reads, or add that mapping file to ${config.mappingsDir}`,
    );
  if (carried.direction === 'down') await requireInstalled(db, [LOG_TABLE, READERS_TABLE, PURGED_TABLE]);
  return { name, table, product, store, columns: q.columns.map((c) => column(info, c)!), direction: carried.direction, mapping: carried.file };
}
