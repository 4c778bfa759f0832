import type { TupleRow } from './tuple-row.js';

/**
 * What a mapping turns a source change into: set-based operations on one
 * target table, keyed by the target key. Values are in PostgreSQL text form
 * and are cast to the target column types by the sink.
 */
export interface TargetTable {
  readonly schema: string;
  readonly table: string;
  /** Target key columns, in order (unique at the target). */
  readonly key: readonly string[];
}

/**
 * A column whose value is a store's code for an entity (`associate(...)` in
 * the mapping): before the operation is planned, the sink replaces the code
 * with the HQ key associated with it for this store (allocating one for an
 * `allocate` entity), in `row`, in `key` and in `from`. Operations of one
 * mapping share one array.
 */
export interface AssocRef {
  readonly entity: string;
  /** allocate: a code never seen gets a new HQ key; manual: a missing association parks the change. */
  readonly allocate: boolean;
  /** The column in `row` that holds the code. */
  readonly column: string;
  /** Its index in `key` (and `from`) when it is a key column; -1 otherwise. */
  readonly keyIndex: number;
}

/** What every operation on one target row has: the table, the key, and the store codes in it to translate. */
interface KeyedOp {
  readonly target: TargetTable;
  /** Key values in `target.key` order. */
  readonly key: readonly string[];
  /** Columns holding store codes to translate to HQ keys (see AssocRef). */
  readonly assoc?: readonly AssocRef[];
}

/** An operation that writes column values to its row. */
interface RowOp extends KeyedOp {
  /**
   * Column values, key columns included. A column absent here is left as it
   * is at the target (for example an unchanged TOAST value).
   */
  readonly row: Readonly<Record<string, string | null>>;
  /**
   * The names of the columns in `row`. Operations of one mapping share one
   * array while all its columns are present, so a sink groups rows by it
   * without looking into each row. Absent: use the row's keys.
   */
  readonly columns?: readonly string[];
}

export type TargetOp =
  | (RowOp & {
      readonly kind: 'upsert';
      /**
       * The source inserted this row: it cannot be at the target yet (the
       * position guarantees it was never applied), so a sink may use a plain
       * INSERT and treat a conflict as a reason to redo the batch in exact
       * order with upserts.
       */
      readonly fresh?: boolean;
    })
  | (KeyedOp & { readonly kind: 'delete' })
  /**
   * Insert the row unless the target already holds its key (the
   * `insert_only` policy): a store may create a row at HQ, never alter one.
   * A sink counts the rows it did not insert as ignored.
   */
  | (RowOp & { readonly kind: 'insert-missing' })
  /** Set these columns of the row with this key, if the target holds it (a soft delete). */
  | (RowOp & { readonly kind: 'update' })
  /**
   * Add these amounts to the totals of the row with this key, creating it if
   * absent (aggregates). `row` holds the key columns and the measure deltas
   * (negative to subtract). Adds commute: a sink sums them per key.
   */
  | (KeyedOp & {
      readonly kind: 'add';
      readonly row: Readonly<Record<string, string | null>>;
      /** Measure columns (those in `row` that are not key columns); shared by the ops of one mapping. */
      readonly measures: readonly string[];
    })
  /**
   * The row with key `from` now has key `key`: update it in place, with the
   * columns in `row` (new key included), so the values the change did not
   * carry (unchanged TOAST) move with it. Written as an upsert of `row` when
   * the target lacks the old row.
   */
  | (RowOp & { readonly kind: 'move'; readonly from: readonly string[] })
  | {
      /** A change a policy left out at the target (insert_only, on_delete: ignore): counted, nothing written. */
      readonly kind: 'ignore';
      readonly target: TargetTable;
    }
  | {
      /**
       * Remove every target row that matches `where` (e.g. all rows of one
       * store, for a TRUNCATE), or with `set`, update them instead (soft delete).
       */
      readonly kind: 'delete-where';
      readonly target: TargetTable;
      readonly where: Readonly<Record<string, string>>;
      readonly set?: Readonly<Record<string, string | null>>;
    };

/**
 * How a plain mapping's target columns come from a TupleRow of one source
 * relation: column i is the tuple's column `sources[i]`, or when that is -1
 * the constant `constants[i]` (`escaped[i]` as COPY text).
 */
export interface TuplePlan {
  readonly sources: Int32Array;
  readonly constants: readonly (string | null)[];
  readonly escaped: readonly (Buffer | null)[];
}

/**
 * The upsert of a row a source inserted, through a plain mapping (every
 * column a bare source column or a constant), with its values still in the
 * source's bytes: a sink copies them to the target (COPY) without making a
 * row object. `row` builds one, once, for whatever needs it (an update of
 * the same row in the chunk, the exact plan, parking).
 */
export class TupleUpsert {
  readonly kind = 'upsert' as const;
  readonly fresh = true as const;
  private built: Record<string, string | null> | null = null;

  constructor(
    readonly target: TargetTable,
    readonly key: readonly string[],
    /** The mapping's column array (shared by its operations). */
    readonly columns: readonly string[],
    readonly tuple: TupleRow,
    readonly plan: TuplePlan,
  ) {}

  get row(): Readonly<Record<string, string | null>> {
    if (this.built !== null) return this.built;
    const out: Record<string, string | null> = {};
    const { sources, constants } = this.plan;
    for (let i = 0; i < this.columns.length; i++) {
      const s = sources[i]!;
      out[this.columns[i]!] = s < 0 ? constants[i]! : this.tuple.value(s);
    }
    this.built = out;
    return out;
  }
}

/** An upsert with `fresh` set as given, as a plain object (never a spread: a TupleUpsert's row is not an own property). */
export function upsertWith(op: Extract<TargetOp, { kind: 'upsert' }>, fresh: boolean): Extract<TargetOp, { kind: 'upsert' }> {
  const out: { -readonly [K in keyof Extract<TargetOp, { kind: 'upsert' }>]: Extract<TargetOp, { kind: 'upsert' }>[K] } = { kind: 'upsert', target: op.target, key: op.key, row: op.row };
  if (op.columns !== undefined) out.columns = op.columns;
  if (op.assoc !== undefined) out.assoc = op.assoc;
  if (fresh) out.fresh = true;
  return out;
}
