import type { TupleRow } from '../core/tuple-row.js';

/**
 * Rows in the text format of `COPY ... FROM STDIN`: values separated by
 * tabs, rows ended by a newline, NULL as `\N`, and in a value backslash,
 * tab, newline and carriage return written as `\\`, `\t`, `\n`, `\r`. The
 * server reads each value with its column's input function, as the other
 * statements' casts do (see statements.ts).
 *
 * Values come either as strings or straight from a TupleRow's bytes, which
 * are copied without ever becoming a string.
 */
export class CopyText {
  private buf: Buffer;
  private at = 0;
  /** A TupleRow's value spans (see TupleRow.spans), reused for every row. */
  private spans = new Int32Array(64);

  constructor(bytes = 1 << 16) {
    this.buf = Buffer.allocUnsafe(bytes);
  }

  get length(): number {
    return this.at;
  }

  /** The rows written so far (a view of the buffer: take it once, at the end). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.at);
  }

  /** One row of string values (null or undefined: NULL). */
  row(values: readonly (string | null | undefined)[]): void {
    for (let i = 0; i < values.length; i++) {
      if (i > 0) this.byte(0x09);
      this.text(values[i]);
    }
    this.byte(0x0a);
  }

  /**
   * One row whose column `i` is the tuple's column `sources[i]`, or when
   * that is -1 the already escaped bytes `constants[i]` (see escaped).
   */
  tupleRow(tuple: TupleRow, sources: Int32Array, constants: readonly (Buffer | null)[]): void {
    const n = tuple.columns.length;
    if (this.spans.length < 2 * n) this.spans = new Int32Array(4 * n);
    const spans = this.spans;
    tuple.spans(spans);
    const src = tuple.buf;
    for (let i = 0; i < sources.length; i++) {
      if (i > 0) this.byte(0x09);
      const s = sources[i]!;
      if (s < 0) {
        const c = constants[i]!;
        this.ensure(c.length);
        c.copy(this.buf, this.at);
        this.at += c.length;
        continue;
      }
      const len = spans[2 * s + 1]!;
      if (len < 0) {
        this.nullValue();
        continue;
      }
      const from = spans[2 * s]!;
      this.ensure(2 * len);
      const out = this.buf;
      let at = this.at;
      for (let k = from, end = from + len; k < end; k++) {
        const b = src[k]!;
        const e = ESCAPED[b]!;
        if (e !== 0) {
          out[at++] = 0x5c;
          out[at++] = e;
        } else out[at++] = b;
      }
      this.at = at;
    }
    this.byte(0x0a);
  }

  private text(v: string | null | undefined): void {
    if (v === null || v === undefined) {
      this.nullValue();
      return;
    }
    const s = ESCAPE.test(v) ? escapeText(v) : v;
    this.ensure(3 * s.length);
    this.at += this.buf.write(s, this.at, 'utf8');
  }

  private nullValue(): void {
    this.ensure(2);
    this.buf[this.at++] = 0x5c;
    this.buf[this.at++] = 0x4e;
  }

  private byte(b: number): void {
    if (this.at >= this.buf.length) this.grow(1);
    this.buf[this.at++] = b;
  }

  private ensure(n: number): void {
    if (this.at + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.at + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }
}

const ESCAPE = /[\\\t\n\r]/;

/** For each byte, what follows the backslash that COPY text needs before it (0: the byte goes as it is). */
const ESCAPED = new Uint8Array(256);
ESCAPED[0x5c] = 0x5c; // \\
ESCAPED[0x09] = 0x74; // \t
ESCAPED[0x0a] = 0x6e; // \n
ESCAPED[0x0d] = 0x72; // \r

function escapeText(v: string): string {
  return v.replace(/[\\\t\n\r]/g, (c) => `\\${String.fromCharCode(ESCAPED[c.charCodeAt(0)]!)}`);
}

/** A constant value as COPY text bytes, escaped (null: `\N`). */
export function escaped(v: string | null): Buffer {
  return v === null ? Buffer.from('\\N') : Buffer.from(ESCAPE.test(v) ? escapeText(v) : v, 'utf8');
}
