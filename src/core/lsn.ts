/**
 * A PostgreSQL WAL position (log sequence number) as a value object.
 *
 * Raw "X/Y" strings never cross a seam: sources, sinks and the state tables
 * exchange `Lsn` values, which parse, compare and format themselves. The
 * value is kept as a 64-bit unsigned integer in a bigint.
 */
export class Lsn {
  static readonly ZERO = new Lsn(0n);
  private static readonly MAX = (1n << 64n) - 1n;

  private constructor(readonly value: bigint) {}

  static fromBigInt(value: bigint): Lsn {
    if (value < 0n || value > Lsn.MAX) throw new RangeError(`LSN out of range: ${value}`);
    return new Lsn(value);
  }

  /** Parses PostgreSQL's text form, e.g. `16/B374D848`. */
  static parse(text: string): Lsn {
    const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
    if (!match) throw new SyntaxError(`not a PostgreSQL LSN: ${JSON.stringify(text)}`);
    return new Lsn((BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`));
  }

  /** Reads the 8-byte big-endian form used by the replication protocol. */
  static read(buffer: Buffer, offset: number): Lsn {
    return new Lsn(buffer.readBigUInt64BE(offset));
  }

  write(buffer: Buffer, offset: number): void {
    buffer.writeBigUInt64BE(this.value, offset);
  }

  compare(other: Lsn): -1 | 0 | 1 {
    return this.value < other.value ? -1 : this.value > other.value ? 1 : 0;
  }
  equals(other: Lsn): boolean {
    return this.value === other.value;
  }
  isBefore(other: Lsn): boolean {
    return this.value < other.value;
  }
  isAfter(other: Lsn): boolean {
    return this.value > other.value;
  }

  /** Bytes between this position and a later one (0 when `later` is not later). */
  bytesUntil(later: Lsn): bigint {
    return later.value > this.value ? later.value - this.value : 0n;
  }

  static max(a: Lsn, b: Lsn): Lsn {
    return a.value >= b.value ? a : b;
  }

  toString(): string {
    const hi = (this.value >> 32n).toString(16).toUpperCase();
    const lo = (this.value & 0xffffffffn).toString(16).toUpperCase();
    return `${hi}/${lo}`;
  }
  toJSON(): string {
    return this.toString();
  }
}
