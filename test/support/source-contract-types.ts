import type { TableId } from '../../src/core/change.js';
import type { Source } from '../../src/core/source.js';

/**
 * What a source connector's adapter gives the shared contract suite
 * (test/support/source-contract.ts). The suite is written once against these
 * types and runs for every source: pg-logical and pg-trigger on PostgreSQL,
 * mssql-trigger on SQL Server when one is configured.
 *
 * The suite's table has one fixed shape, created by the adapter in its own
 * dialect: `item (id integer PRIMARY KEY, name <text type>, qty integer)`.
 * Values are compared in PostgreSQL's text form, as every source delivers
 * them: id '7', qty '-3', name as written.
 */
export interface ContractItem {
  readonly id: number;
  readonly name: string;
  readonly qty: number;
}

export type ContractOp =
  | { readonly op: 'insert'; readonly row: ContractItem }
  | { readonly op: 'update'; readonly id: number; readonly set: { readonly name?: string; readonly qty?: number } }
  | { readonly op: 'delete'; readonly id: number }
  /**
   * ONE statement updating every row whose id is in [from, to] (e.g.
   * `UPDATE item SET qty = ... WHERE id BETWEEN from AND to`): the source
   * must deliver one change per row, all in the statement's transaction.
   */
  | { readonly op: 'update-range'; readonly from: number; readonly to: number; readonly set: { readonly name?: string; readonly qty?: number } };

/** An open transaction at the source database, kept open until the test ends it. */
export interface OpenTransaction {
  /** Runs more operations inside it. */
  run(ops: readonly ContractOp[]): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

export interface ContractWriter {
  /** One committed transaction of these operations, in order. */
  transaction(ops: readonly ContractOp[]): Promise<void>;
  /**
   * Begins a transaction and runs `ops` in it (it must take its
   * transaction id / rowversion now: the adapter makes it write at least
   * once), leaving it open.
   */
  begin(ops: readonly ContractOp[]): Promise<OpenTransaction>;
  /**
   * One committed transaction written the way branchline's own apply writes
   * at this database (replication origin for pg-logical, the session marker
   * for the trigger sources): the source must never deliver it (no echo).
   */
  transactionAsBranchline(ops: readonly ContractOp[]): Promise<void>;
}

/** A fresh database with the item table and the source installed on it. */
export interface ContractContext<P> {
  readonly table: TableId;
  readonly writer: ContractWriter;
  /** A new Source object over the same database each call (a restart). */
  source(): Source<P>;
  /** Drops what setup() made (database, slot, connections). */
  dispose(): Promise<void>;
}

export interface ContractHarness<P> {
  /** The connector's name as the suite prints it, e.g. `pg-trigger`. */
  readonly name: string;
  /** Null: the suite runs; a sentence: why it cannot run here (printed as the skip reason). */
  readonly unavailable: string | null;
  setup(): Promise<ContractContext<P>>;
  /** Stops servers the harness started. */
  close(): Promise<void>;
}
