import { TupleInsert, type RowChange, type RowValues, type TableId } from '../../src/core/change.js';
import { TupleRow, type TupleArena } from '../../src/core/tuple-row.js';

/** What the decoder needs of a relation (from pgoutput's Relation message). */
export interface RelationShape {
  readonly table: TableId;
  /** Column names in the relation's order. */
  readonly columns: readonly string[];
  /** Which columns are part of the replica identity (the key a delete carries). */
  readonly isKey: readonly boolean[];
}

/**
 * Decodes pgoutput's Insert, Update and Delete messages (protocol 1, text
 * format) straight into row objects: one string per value, read from the
 * message buffer in place. This is the hot path of capture; the library's
 * parser allocates a Buffer and runs a TextDecoder per value and builds rows
 * without a prototype (dictionary objects that are slow to fill and read).
 * Returns null for any other message, which the caller hands to the
 * library. Throws on a relation it has not seen (a protocol error).
 *
 * With `tuples`, an insert keeps its new row as bytes, copied into that
 * arena (a TupleInsert over a TupleRow): nothing is decoded until something
 * reads `after`, and a plain mapping copies the bytes to HQ without ever
 * making strings of them.
 */
export function decodeRowMessage(payload: Buffer, relations: ReadonlyMap<number, RelationShape>, tuples: TupleArena | null = null): RowChange | null {
  const tag = payload[0];
  if (tag !== 0x49 /* I */ && tag !== 0x55 /* U */ && tag !== 0x44 /* D */) return null;
  const relid = payload.readUInt32BE(1);
  const rel = relations.get(relid);
  if (!rel) throw new Error(`pgoutput: ${String.fromCharCode(tag)} message for unknown relation ${relid}`);
  const cursor = { at: 5 };
  if (tag === 0x49) {
    expect(payload, cursor, 0x4e /* N */);
    if (tuples !== null) {
      const row = TupleRow.copy(payload, cursor.at, rel.columns, tuples);
      if (row !== null) return new TupleInsert(rel.table, row);
    }
    return { op: 'insert', table: rel.table, after: readTuple(payload, cursor, rel, null, false) };
  }
  if (tag === 0x44) {
    const kind = payload[cursor.at++];
    if (kind !== 0x4b /* K */ && kind !== 0x4f /* O */) throw new Error(`pgoutput: delete with tuple kind ${kind}`);
    return { op: 'delete', table: rel.table, before: readTuple(payload, cursor, rel, null, kind === 0x4b) };
  }
  let before: RowValues | undefined;
  let kind = payload[cursor.at++];
  if (kind === 0x4b /* K */ || kind === 0x4f /* O */) {
    before = readTuple(payload, cursor, rel, null, kind === 0x4b);
    kind = payload[cursor.at++];
  }
  if (kind !== 0x4e /* N */) throw new Error(`pgoutput: update with tuple kind ${kind}`);
  // With the whole old row (REPLICA IDENTITY FULL), an unchanged TOAST value
  // is taken from it; otherwise it stays undefined ("not sent").
  const after = readTuple(payload, cursor, rel, before !== undefined && !keyOnly.has(before) ? before : null, false);
  return before ? { op: 'update', table: rel.table, before, after } : { op: 'update', table: rel.table, after };
}

function expect(buf: Buffer, cursor: { at: number }, byte: number): void {
  if (buf[cursor.at] !== byte) throw new Error(`pgoutput: expected ${String.fromCharCode(byte)} at ${cursor.at}, got ${buf[cursor.at]}`);
  cursor.at++;
}

/** Old tuples that carry only the key (replica identity default/index). */
const keyOnly = new WeakSet<object>();

function readTuple(
  buf: Buffer,
  cursor: { at: number },
  rel: RelationShape,
  fallback: RowValues | null,
  keysOnly: boolean,
): RowValues {
  const n = buf.readInt16BE(cursor.at);
  let at = cursor.at + 2;
  const names = rel.columns;
  // Filled in column order from an empty literal: every row of a relation
  // gets the same hidden class, so the mapping reads it fast.
  const row: Record<string, string | null | undefined> = {};
  for (let i = 0; i < n; i++) {
    const kind = buf[at++];
    const name = names[i]!;
    if (kind === 0x74 /* t */) {
      const len = buf.readInt32BE(at);
      at += 4;
      const value = buf.toString('utf8', at, at + len);
      at += len;
      if (!keysOnly || rel.isKey[i]) row[name] = value;
    } else if (kind === 0x6e /* n */) {
      // In a key-only tuple the non-key columns are sent as null: not values.
      if (!keysOnly || rel.isKey[i]) row[name] = null;
    } else if (kind === 0x75 /* u */) {
      row[name] = fallback ? fallback[name] : undefined;
    } else if (kind === 0x62 /* b */) {
      throw new Error('pgoutput: binary tuple data (the slot must be read in text format)');
    } else {
      throw new Error(`pgoutput: unknown tuple value kind ${kind}`);
    }
  }
  cursor.at = at;
  if (keysOnly) keyOnly.add(row);
  return row;
}
