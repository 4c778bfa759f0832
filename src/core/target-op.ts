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

export type TargetOp =
  | {
      readonly kind: 'upsert';
      readonly target: TargetTable;
      /** Key values in `target.key` order. */
      readonly key: readonly string[];
      /**
       * Column values, key columns included. A column absent here is left
       * as it is at the target (for example an unchanged TOAST value).
       */
      readonly row: Readonly<Record<string, string | null>>;
    }
  | {
      readonly kind: 'delete';
      readonly target: TargetTable;
      readonly key: readonly string[];
    }
  | {
      /** Remove every target row that matches `where` (e.g. all rows of one store). */
      readonly kind: 'delete-where';
      readonly target: TargetTable;
      readonly where: Readonly<Record<string, string>>;
    };
