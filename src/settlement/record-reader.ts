import type { RowValues, TableId } from '../core/change.js';

/**
 * The seam between settlement checks and the database they ask: one round
 * reads the records of many references in one statement, within a
 * deadline. PostgreSQL: pg-record-reader.ts; SQL Server:
 * mssql-record-reader.ts.
 */
export interface RecordReader {
  /** The rows of each reference; throws a RoundFailure (never hangs past the timeout). */
  read(lookup: RecordLookup, refs: readonly string[]): Promise<LookupResult>;
  close(): Promise<void>;
}

/** What one round reads: the rows of `table` whose `refColumn` is one of the references. */
export interface RecordLookup {
  readonly table: TableId;
  readonly refColumn: string;
  /** SQL type of `refColumn` (`format_type`), or null to look it up at the database (once). */
  readonly refType: string | null;
  /** Columns returned (as text), besides the reference's position. */
  readonly columns: readonly string[];
  /** Only rows whose columns hold these values (HQ's copy: the store column). */
  readonly filters?: readonly { readonly column: string; readonly value: string }[];
  /**
   * The references are a store's codes, and `refColumn` holds HQ's key of
   * this entity: translated through the database's `branchline.associations`
   * in the same statement.
   */
  readonly association?: { readonly store: string; readonly entity: string };
}

/** The rows found, by the position of their reference in the list asked (several: the reference is not unique there). */
export type LookupResult = ReadonlyMap<number, readonly RowValues[]>;

/** Why a round gave no rows: the database was not reached in time, or it answered with an error. */
export class RoundFailure extends Error {
  constructor(
    readonly reason: 'unreachable' | 'error',
    message: string,
    readonly code: string | null,
  ) {
    super(message);
    this.name = 'RoundFailure';
  }
}

/**
 * `work`, or `late()` thrown once `ms` have passed (then `abandon` runs, to
 * drop what the round holds: a hung connection must not be reused).
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, late: () => Error, abandon: () => void = () => undefined): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      work.catch(() => undefined);
      abandon();
      reject(late());
    }, ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Rows by the 1-based `__ord` each carries, without it. */
export function byReference(rows: readonly Record<string, string | null>[]): LookupResult {
  const out = new Map<number, RowValues[]>();
  for (const r of rows) {
    const ord = Number(r['__ord']) - 1;
    const { __ord: _, ...row } = r;
    const list = out.get(ord);
    if (list) list.push(row);
    else out.set(ord, [row]);
  }
  return out;
}
