import type { RowFilter } from '../../connectors/pg-trigger/pg-trigger-source.js';
import { tableKey, type TableId } from '../core/change.js';
import type { LoadedMappingFile } from '../mapping/load.js';

/**
 * What a store's down reader need not read from HQ's change log: the rows
 * of tables that every enabled down mapping routes elsewhere. A table is
 * routed when each of its mappings has `route: {column: c}` or a
 * `route: {stores: [...]}` list without this store; its rows are read
 * when their old or new row names the store in one of those columns. A
 * table any mapping sends to all stores, or to a list with this store, is
 * read whole. Null when no table is routed (nothing to spare).
 */
export function downRowFilter(files: readonly LoadedMappingFile[], store: string): RowFilter | null {
  const byTable = new Map<string, { table: TableId; files: LoadedMappingFile[] }>();
  for (const f of files) {
    if (!f.spec.enabled || f.spec.direction !== 'down') continue;
    const k = tableKey(f.spec.source);
    const entry = byTable.get(k) ?? { table: f.spec.source, files: [] };
    entry.files.push(f);
    byTable.set(k, entry);
  }
  const routed: TableId[] = [];
  const columns: { table: TableId; column: string }[] = [];
  for (const { table, files: fs } of byTable.values()) {
    const everyRowMayCome = fs.some((f) => f.spec.route.kind === 'all' || (f.spec.route.kind === 'stores' && f.spec.route.stores.includes(store)));
    if (everyRowMayCome) continue;
    routed.push(table);
    for (const f of fs) if (f.spec.route.kind === 'column') columns.push({ table, column: f.spec.route.column });
  }
  return routed.length > 0 ? { store, routed, columns } : null;
}
