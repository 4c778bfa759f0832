import type { RowValues } from './change.js';

/**
 * A row still in the bytes it arrived in: pgoutput's TupleData in text
 * format (Int16 column count, then per column `n` for NULL or `t`, Int32
 * length and that many UTF-8 bytes). The capture hands inserts over this
 * way; a plain mapping copies the bytes into a COPY buffer for HQ (see
 * src/apply/copy-rows.ts) and never makes a string of a value it does not
 * need. Anything that reads `row()` gets the row object as the decoder
 * would have made it, built once.
 *
 * Only tuples of `t` and `n` values: an insert carries every value, so no
 * `u` (unchanged TOAST); the capture decodes anything else the usual way.
 */
export class TupleRow {
  private decoded: RowValues | null = null;

  constructor(
    /** Holds the tuple (a TupleArena's slab). */
    readonly buf: Buffer,
    /** Offset of the Int16 column count. */
    readonly start: number,
    /** Column names in tuple order: one array per version of the source relation, so plans are cached by it. */
    readonly columns: readonly string[],
  ) {}

  /** Column `i`'s value as text, or null for SQL NULL. */
  value(i: number): string | null {
    const buf = this.buf;
    let at = this.start + 2;
    for (let c = 0; c < i; c++) at += buf[at] === 0x74 /* t */ ? 5 + buf.readInt32BE(at + 1) : 1;
    if (buf[at] !== 0x74) return null;
    const len = buf.readInt32BE(at + 1);
    return buf.toString('utf8', at + 5, at + 5 + len);
  }

  /**
   * Where each value is: `spans[2c]` its first byte, `spans[2c + 1]` its
   * length, -1 for NULL. Fills the caller's array (reused across rows).
   */
  spans(spans: Int32Array): void {
    const buf = this.buf;
    const n = this.columns.length;
    let at = this.start + 2;
    for (let c = 0; c < n; c++) {
      if (buf[at] === 0x74) {
        const len = buf.readInt32BE(at + 1);
        spans[2 * c] = at + 5;
        spans[2 * c + 1] = len;
        at += 5 + len;
      } else {
        spans[2 * c] = at;
        spans[2 * c + 1] = -1;
        at += 1;
      }
    }
  }

  /** The row as an object of text values, as the decoder makes it (built on the first call). */
  row(): RowValues {
    if (this.decoded !== null) return this.decoded;
    const buf = this.buf;
    const names = this.columns;
    const out: Record<string, string | null> = {};
    let at = this.start + 2;
    for (let c = 0; c < names.length; c++) {
      if (buf[at] === 0x74) {
        const len = buf.readInt32BE(at + 1);
        out[names[c]!] = buf.toString('utf8', at + 5, at + 5 + len);
        at += 5 + len;
      } else {
        out[names[c]!] = null;
        at += 1;
      }
    }
    this.decoded = out;
    return out;
  }

  /**
   * The tuple at `start` of `buf`, copied into `arena`, as a TupleRow; null
   * when it holds anything but `t` and `n` values or its column count
   * differs from `columns` (the caller then decodes it the usual way, which
   * reports what is wrong).
   */
  static copy(buf: Buffer, start: number, columns: readonly string[], arena: TupleArena): TupleRow | null {
    const end = TupleRow.end(buf, start, columns.length);
    if (end < 0) return null;
    const at = arena.put(buf, start, end);
    return new TupleRow(arena.slab, at, columns);
  }

  /** The offset after the tuple at `start`, or -1 (see copy). */
  static end(buf: Buffer, start: number, columns: number): number {
    if (start + 2 > buf.length) return -1;
    const n = buf.readInt16BE(start);
    if (n !== columns) return -1;
    let at = start + 2;
    for (let c = 0; c < n; c++) {
      const kind = buf[at];
      if (kind === 0x74) {
        if (at + 5 > buf.length) return -1;
        const len = buf.readInt32BE(at + 1);
        if (len < 0) return -1;
        at += 5 + len;
        if (at > buf.length) return -1;
      } else if (kind === 0x6e /* n */) at += 1;
      else return -1;
    }
    return at;
  }
}

/**
 * Where TupleRows keep their bytes: slabs of 1 MiB filled one after the
 * other (a tuple bigger than that gets a slab of its own). A message buffer
 * is not kept instead: the capture hands messages over as views of the
 * socket's chunks, valid only during the call (see
 * connectors/pg-logical/copy-data-tap.ts), and a kept view would hold a
 * whole chunk for one row. One copy per row, no object per row; a slab is
 * freed when the last row in it is.
 */
export class TupleArena {
  slab: Buffer = Buffer.allocUnsafeSlow(0);
  private at = 0;

  constructor(private readonly slabBytes = 1 << 20) {}

  /** Copies `buf[start, end)` into the current slab (a new one when it does not fit) and returns its offset there. */
  put(buf: Buffer, start: number, end: number): number {
    const len = end - start;
    if (this.at + len > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(Math.max(this.slabBytes, len));
      this.at = 0;
    }
    const at = this.at;
    buf.copy(this.slab, at, start, end);
    this.at = at + len;
    return at;
  }
}
