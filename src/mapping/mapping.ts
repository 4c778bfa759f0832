import type { RowChange, TableId } from '../core/change.js';
import type { TargetOp, TargetTable } from '../core/target-op.js';
import type { EffectiveAt } from './analyze.js';
import type { LabelsSpec } from './load.js';

/** What a mapping may read besides the row: the pipeline's own facts. */
export interface MappingContext {
  /** The store's code as configured (e.g. `S001`). */
  readonly storeCode: string;
  /**
   * Commit time of the source transaction being mapped (`commit_time()`);
   * the pipeline sets it at each transaction's begin, and only the function
   * formats it, so transactions that do not use it pay nothing.
   */
  commitTime?: Date | null;
}

/**
 * One mapping file, compiled: a pure function from a change of its source
 * table to operations on its target table. No I/O.
 */
export interface CompiledMapping {
  /** Path of the YAML file, for messages. */
  readonly file: string;
  /** The file's name without its folder: how parked changes name their mapping. */
  readonly name: string;
  /** Some column is associate(...): its operations carry codes for the sink to translate. */
  readonly associates: boolean;
  readonly source: TableId;
  readonly target: TargetTable;
  /** Target columns this mapping writes, key columns included. */
  readonly columns: readonly string[];
  /** Its target rows are totals (sum/count per key), written by additions. */
  readonly aggregate: boolean;
  /** down: the source column saying when a row takes effect (scheduled rows), or null. */
  readonly effectiveAt: EffectiveAt | null;
  /** down: the target columns of shelf labels, or null. */
  readonly labels: LabelsSpec | null;
  /**
   * Maps an insert, update or delete of `source`. Throws a BranchlineError
   * (BL-M015, with the file and the column) when an expression fails on
   * this row, e.g. a key that evaluates to NULL.
   */
  map(change: Exclude<RowChange, { op: 'truncate' }>, ctx: MappingContext): TargetOp[];
  /**
   * The target keys (store side: associated columns hold the store's code)
   * of the rows a change touches: the old row's and the new row's. Used to
   * keep later changes of a parked row behind it. Empty when they cannot be
   * computed, and for aggregates (additions need no order).
   */
  rowKeys(change: Exclude<RowChange, { op: 'truncate' }>, ctx: MappingContext): string[][];
  /** What a TRUNCATE of the source table means at the target. */
  mapTruncate(ctx: MappingContext): TargetOp[];
  /**
   * When every target column is a bare source column or a constant (no
   * filter, association, policy or schedule): each column's source, so a
   * database can compute the mapped rows itself (reconcile hashes them
   * there). Null otherwise; absent for mappings that never are.
   */
  plainColumns?(ctx: MappingContext): ReadonlyMap<string, PlainColumn> | null;
}

/** A target column as a bare source column, or a constant (store.code, a literal). */
export type PlainColumn = { readonly source: string } | { readonly value: string | null };

/** Every enabled mapping of one configuration, compiled against one store's and HQ's schemas. */
export interface MappingSet {
  readonly mappings: readonly CompiledMapping[];
  /** Source tables that go (what the publication holds), without duplicates. */
  readonly sourceTables: readonly TableId[];
  /** Mappings whose source is `table` (a table may feed several targets). */
  forSource(table: TableId): readonly CompiledMapping[];
  /**
   * Target tables ordered parents first (by HQ foreign keys among them), so
   * a sink inserts parents before children and deletes children first.
   */
  readonly targetOrder: readonly TargetTable[];
}

/** A mapping file's name without its folder: how parked changes name their mapping (the folder may differ between hosts). */
export function mappingName(file: string): string {
  return file.slice(file.lastIndexOf('/') + 1);
}
