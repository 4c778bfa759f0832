/** A value of a pgoutput tuple: text, NULL, or an unchanged TOAST value (`u`). */
export type TupleValue = string | null | 'UNCHANGED';

/** pgoutput's TupleData byte by byte, as the walsender sends it (protocol 1, text): Int16 count, then `n`, `u`, or `t` + Int32 length + bytes. */
export function tupleData(values: readonly TupleValue[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0, 0])];
  parts[0]!.writeInt16BE(values.length);
  for (const v of values) {
    if (v === null) parts.push(Buffer.from('n'));
    else if (v === 'UNCHANGED') parts.push(Buffer.from('u'));
    else {
      const bytes = Buffer.from(v, 'utf8');
      const head = Buffer.alloc(5);
      head.write('t');
      head.writeInt32BE(bytes.length, 1);
      parts.push(head, bytes);
    }
  }
  return Buffer.concat(parts);
}
