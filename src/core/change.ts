/**
 * The change model every source produces and every mapping consumes.
 *
 * Values travel in PostgreSQL's text form (what `pgoutput` sends and what a
 * `::type` cast at the target reads back), so numerics, timestamps and large
 * integers never pass through a JavaScript number and never drift.
 */

import type { TupleRow } from './tuple-row.js';

/** A table name, schema-qualified. */
export interface TableId {
  readonly schema: string;
  readonly table: string;
}

export function tableKey(t: TableId): string {
  return `${t.schema}.${t.table}`;
}

export function formatTable(t: TableId): string {
  return `${t.schema}.${t.table}`;
}

/**
 * A row in text form. `null` is SQL NULL; `undefined` (or a missing
 * property) is a value the source did not send, e.g. an unchanged TOASTed
 * column in an update: it must never be written as NULL.
 */
export type RowValues = Readonly<Record<string, string | null | undefined>>;

export type RowChange =
  | {
      readonly op: 'insert';
      readonly table: TableId;
      readonly after: RowValues;
      /** The new row still in the bytes it arrived in, when the source keeps them (pg-logical; see TupleRow). `after` then reads from it. */
      readonly tuple?: TupleRow;
    }
  | {
      readonly op: 'update';
      readonly table: TableId;
      /** The old key (replica identity default/index, only when the key changed) or the whole old row (replica identity full). */
      readonly before?: RowValues;
      readonly after: RowValues;
    }
  | { readonly op: 'delete'; readonly table: TableId; readonly before: RowValues }
  | { readonly op: 'truncate'; readonly tables: readonly TableId[] };

/** One message of a source's stream: transactions arrive whole and in commit order. */
export type SourceMessage<P> =
  | {
      readonly kind: 'begin';
      readonly xid: number;
      readonly commitTime: Date;
      /** Where the transaction's commit is in the source's log, when the source knows it at begin (pgoutput does): how a parked change names its source position. */
      readonly commitPosition?: P;
    }
  | { readonly kind: 'change'; readonly change: RowChange }
  | {
      readonly kind: 'commit';
      /** Resume position: everything up to and including this transaction. */
      readonly position: P;
      readonly commitTime: Date;
    }
  | {
      /**
       * The source is at `position` and has nothing more to send for now.
       * When the consumer holds nothing unapplied, acknowledging it lets an
       * idle source release what it retains (WAL).
       */
      readonly kind: 'idle';
      readonly position: P;
    };

/** An insert whose new row is a TupleRow: `after` is built from it on first read, only if something reads it. */
export class TupleInsert {
  readonly op = 'insert' as const;
  constructor(
    readonly table: TableId,
    readonly tuple: TupleRow,
  ) {}

  get after(): RowValues {
    return this.tuple.row();
  }
}
