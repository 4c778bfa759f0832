import type { PositionCodec } from '../../src/core/position.js';

const MAX = (1n << 64n) - 1n;

/**
 * A position in an `mssql-trigger` change log: every change logged with a
 * rowversion below `bound` has been delivered, nothing at or above it has.
 * The bound is a `MIN_ACTIVE_ROWVERSION()` the reader read: every
 * transaction that wrote below it had ended.
 *
 * A rowversion is SQL Server's binary(8), a big-endian unsigned counter:
 * it is held as a bigint and formatted as 16 lower-case hex digits, the
 * bytes in order (`0x00000000000007D1` is `00000000000007d1`).
 */
export class RowversionPosition {
  private constructor(readonly bound: bigint) {}

  static of(bound: bigint): RowversionPosition {
    if (bound < 0n || bound > MAX) throw new RangeError(`a rowversion is 8 bytes unsigned, not ${bound}`);
    return new RowversionPosition(bound);
  }

  /** From the driver's binary(8) (a Buffer of 8 bytes). */
  static fromBuffer(buf: Uint8Array): RowversionPosition {
    if (buf.length !== 8) throw new RangeError(`a rowversion is 8 bytes, got ${buf.length}`);
    return new RowversionPosition(Buffer.from(buf).readBigUInt64BE(0));
  }

  static parse(text: string): RowversionPosition {
    if (!/^[0-9a-f]{16}$/.test(text)) {
      throw new Error(
        `not an mssql-trigger position: ${JSON.stringify(text.slice(0, 40))} (a SQL Server rowversion is written as 16 lower-case hex digits, e.g. 00000000000007d1)`,
      );
    }
    return new RowversionPosition(BigInt(`0x${text}`));
  }

  /** binary(8), to bind as a parameter. */
  toBuffer(): Buffer {
    const buf = Buffer.alloc(8);
    buf.writeBigUInt64BE(this.bound, 0);
    return buf;
  }

  toString(): string {
    return this.bound.toString(16).padStart(16, '0');
  }

  compare(other: RowversionPosition): number {
    return this.bound < other.bound ? -1 : this.bound > other.bound ? 1 : 0;
  }
}

export const ROWVERSION_CODEC: PositionCodec<RowversionPosition> = {
  kind: 'mssql-rowversion',
  parse: (text) => RowversionPosition.parse(text),
  format: (p) => p.toString(),
  compare: (a, b) => a.compare(b),
};
