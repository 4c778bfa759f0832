import { Lsn } from './lsn.js';
import { PgSnapshot } from './pg-snapshot.js';

/**
 * A position in a store's logical slot (the `pg-logical` connector): the
 * end LSN of the last applied commit, and, right after an initial load into
 * HQ, the load's snapshot until the stream has passed it.
 *
 * A transaction the snapshot saw as committed is in the load's copy and
 * must be skipped; the others must be applied. Which is which is decided by
 * xid (`PgSnapshot.sees32`), not by commit LSN: a commit record can be
 * written before the snapshot while the snapshot still sees the transaction
 * as running. `until` is the store's WAL insert position read after the
 * snapshot was taken: a transaction the snapshot sees committed before it,
 * so once a commit starting at or after `until` is applied, the snapshot is
 * dropped and the position is a plain LSN again.
 *
 * A load of some tables only (`--tables`, `--without`) names them
 * (`tables`, "schema.table"): changes of other tables are never skipped.
 *
 * Text: `16/B374D848` (as stored before initial loads existed), or
 * `16/B374D848 snapshot 745:750:746,748 until 16/B3800000`, optionally
 * followed by ` tables public.sale,public.sale_line`.
 */
export class SlotPosition {
  private constructor(
    readonly lsn: Lsn,
    readonly load: LoadSnapshot | null,
  ) {}

  static at(lsn: Lsn): SlotPosition {
    return new SlotPosition(lsn, null);
  }

  /** `tables`: the loaded tables ("schema.table"), or null for every table of the publication. */
  static withLoad(lsn: Lsn, snapshot: PgSnapshot, until: Lsn, tables: readonly string[] | null = null): SlotPosition {
    return new SlotPosition(lsn, { snapshot, until, tables: tables === null ? null : [...tables].sort() });
  }

  private static readonly TEXT = /^(\S+) snapshot (\S+) until (\S+)(?: tables (\S+))?$/;

  static parse(text: string): SlotPosition {
    const t = text.trim();
    const m = SlotPosition.TEXT.exec(t);
    if (!m) return SlotPosition.at(Lsn.parse(t));
    return SlotPosition.withLoad(Lsn.parse(m[1]!), PgSnapshot.parse(m[2]!), Lsn.parse(m[3]!), m[4] === undefined ? null : m[4].split(','));
  }

  /**
   * Whether the transaction `xid`, whose commit record starts at
   * `commitStart`, is already in the load's copy: all of it, or (a load of
   * some tables) its changes of those tables.
   */
  inCopy(xid: number, commitStart: Lsn): 'all' | 'loaded tables' | 'none' {
    if (this.load === null || !commitStart.isBefore(this.load.until) || !this.load.snapshot.sees32(xid)) return 'none';
    return this.load.tables === null ? 'all' : 'loaded tables';
  }

  /** Whether the load copied this table ("schema.table"). */
  loaded(table: string): boolean {
    return this.load !== null && (this.load.tables === null || this.load.tables.includes(table));
  }

  /** The position after applying a commit that started at `commitStart` and ended at `commitEnd`. */
  afterCommit(commitStart: Lsn, commitEnd: Lsn): SlotPosition {
    return new SlotPosition(commitEnd, this.load && commitStart.isBefore(this.load.until) ? this.load : null);
  }

  /** An idle position (keepalive) `walEnd` reached from here. */
  idleAt(walEnd: Lsn): SlotPosition {
    return new SlotPosition(walEnd, this.load && walEnd.isBefore(this.load.until) ? this.load : null);
  }

  /** By LSN; at one LSN, a position still carrying a snapshot is the earlier (the snapshot is dropped further on). */
  compare(other: SlotPosition): -1 | 0 | 1 {
    const c = this.lsn.compare(other.lsn);
    if (c !== 0) return c;
    return this.load && !other.load ? -1 : !this.load && other.load ? 1 : 0;
  }
  isBefore(other: SlotPosition): boolean {
    return this.compare(other) < 0;
  }
  isAfter(other: SlotPosition): boolean {
    return this.compare(other) > 0;
  }

  toString(): string {
    if (!this.load) return this.lsn.toString();
    const tables = this.load.tables === null ? '' : ` tables ${this.load.tables.join(',')}`;
    return `${this.lsn} snapshot ${this.load.snapshot} until ${this.load.until}${tables}`;
  }
  toJSON(): string {
    return this.toString();
  }
}

/** What an initial load into HQ left in the position: its snapshot, and until where it matters. */
export interface LoadSnapshot {
  readonly snapshot: PgSnapshot;
  readonly until: Lsn;
  /** The tables copied ("schema.table", sorted), or null: every table. */
  readonly tables: readonly string[] | null;
}
