/**
 * A PostgreSQL snapshot (`pg_current_snapshot()`, text `xmin:xmax:xip,...`)
 * as a value object: which transactions it sees as committed.
 *
 * The bounds are 64-bit transaction ids (xid8, with the epoch). Logical
 * decoding reports 32-bit xids (pgoutput's Begin); `sees32` places such an
 * xid in the epoch nearest the snapshot's xmax, which is exact because no
 * running transaction is ever 2^31 ids away from the newest one.
 */
export class PgSnapshot {
  private constructor(
    readonly xmin: bigint,
    readonly xmax: bigint,
    /** Transactions in progress when the snapshot was taken (xmin <= xid < xmax), ascending. */
    readonly xip: readonly bigint[],
  ) {}

  private static readonly TEXT = /^(\d{1,20}):(\d{1,20}):((\d{1,20})(,\d{1,20})*)?$/;

  static parse(text: string): PgSnapshot {
    const m = PgSnapshot.TEXT.exec(text.trim());
    if (!m) throw new SyntaxError(`not a PostgreSQL snapshot (xmin:xmax:xip,...): ${JSON.stringify(text)}`);
    const xmin = BigInt(m[1]!);
    const xmax = BigInt(m[2]!);
    const xip = m[3] ? m[3].split(',').map((x) => BigInt(x)) : [];
    if (xmax < xmin || xip.some((x) => x < xmin || x >= xmax)) throw new SyntaxError(`not a consistent PostgreSQL snapshot: ${JSON.stringify(text)}`);
    return new PgSnapshot(xmin, xmax, [...xip].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /** Whether the transaction `xid` (64-bit) had committed for this snapshot (were it to commit at all). */
  sees(xid: bigint): boolean {
    if (xid < this.xmin) return true;
    if (xid >= this.xmax) return false;
    return !this.xip.includes(xid);
  }

  /** `sees` for a 32-bit xid as logical decoding reports it. */
  sees32(xid: number): boolean {
    return this.sees(PgSnapshot.widen(xid, this.xmax));
  }

  /** The 64-bit xid whose low 32 bits are `xid`, nearest `near` (within 2^31). */
  static widen(xid: number, near: bigint): bigint {
    const low = BigInt(xid >>> 0);
    let full = (near & ~0xffffffffn) | low;
    if (full > near + (1n << 31n)) full -= 1n << 32n;
    else if (full <= near - (1n << 31n)) full += 1n << 32n;
    return full;
  }

  toString(): string {
    return `${this.xmin}:${this.xmax}:${this.xip.join(',')}`;
  }
  toJSON(): string {
    return this.toString();
  }
}
