import type pg from 'pg';
import type { TableInfo } from '../catalog/pg-catalog.js';
import type { RowValues, TableId } from '../core/change.js';

/**
 * The seam between reconcile and the database whose rows it compares (the
 * source of a mapping): read a table in keyset chunks in primary key order,
 * read rows again by their keys (--fix), estimate row counts. Values are in
 * PostgreSQL's text form, the form every capture delivers, so a row in step
 * maps to what the stream applied. PostgreSQL: pg-source-rows.ts; SQL
 * Server: mssql-source-rows.ts.
 *
 * All reads of one reader happen inside one read (`begin` ... `end`), as
 * consistent as `isolation` says.
 */
export interface SourceRowsReader {
  /** How consistent the reads are: one snapshot for the whole run, or each statement its own (rows written meanwhile may show as differences). */
  readonly isolation: SourceIsolation;
  /**
   * A PostgreSQL session inside the read's snapshot, for comparisons the
   * source database computes itself (the hashed method); null where the
   * source is not PostgreSQL (those always use the mapped method).
   */
  readonly postgres: pg.Client | null;
  /** Starts the read (PostgreSQL: its snapshot is taken here; SQL Server's SNAPSHOT: at its first read of a table). */
  begin(): Promise<void>;
  /** The next `limit` rows in primary key order after the row whose `key` is `after` (from the start when null); fewer at the end. */
  chunk(table: SourceTable, after: string | null, limit: number): Promise<SourceRow[]>;
  /** The rows with these keys (`SourceRow.key` values, any number), in no particular order; keys no row has any more are left out. */
  byKeys(table: SourceTable, keys: readonly string[]): Promise<SourceRow[]>;
  /** Estimated rows of these tables in all (the database's statistics); null when unknown. */
  estimate(tables: readonly TableId[]): Promise<number | null>;
  /** Ends the read (nothing was written). */
  end(): Promise<void>;
  /** Closes the connection (after `end`, or instead of it after a failure). */
  close(): Promise<void>;
}

/** `repeatable read`/`snapshot`: one snapshot for the whole run; `read committed`: each statement sees what was committed when it ran. */
export type SourceIsolation = 'repeatable read' | 'snapshot' | 'read committed';

/** A table to read: its description at the source and its primary key (never empty). */
export interface SourceTable {
  readonly id: TableId;
  readonly info: TableInfo;
  readonly primaryKey: readonly string[];
}

export interface SourceRow {
  /**
   * The row's primary key as the reader reads it back (`chunk`'s `after`,
   * `byKeys`): a JSON array of the key columns' text. PostgreSQL: the
   * values' text form; SQL Server: the text its CONVERT wrote, before the
   * normalization to PostgreSQL's form (so it converts back exactly).
   */
  readonly key: string;
  /** Every column, in PostgreSQL's text form. */
  readonly values: RowValues;
}
