import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeRowMessage, type RelationShape } from '../connectors/pg-logical/row-decoder.js';
import { tupleData } from './support/pgoutput.js';

/** pgoutput messages byte by byte, as the walsender sends them (protocol 1, text). */
const tuple = tupleData;
function msg(tag: string, relid: number, ...rest: (string | Buffer)[]): Buffer {
  const head = Buffer.alloc(5);
  head.write(tag);
  head.writeUInt32BE(relid, 1);
  return Buffer.concat([head, ...rest.map((r) => (typeof r === 'string' ? Buffer.from(r) : r))]);
}

const ITEM: RelationShape = { table: { schema: 'public', table: 'item' }, columns: ['id', 'label', 'price', 'big'], isKey: [true, false, false, false] };
const RELS = new Map([[16384, ITEM]]);

test('insert: every value as text, NULL as null, UTF-8 intact', () => {
  const c = decodeRowMessage(msg('I', 16384, 'N', tuple(['1', 'café 😀', null, '12345678901234.123456'])), RELS);
  assert.deepEqual(c, { op: 'insert', table: ITEM.table, after: { id: '1', label: 'café 😀', price: null, big: '12345678901234.123456' } });
});

test('update without an old tuple; an unchanged TOAST value is undefined, never null', () => {
  const c = decodeRowMessage(msg('U', 16384, 'N', tuple(['1', 'x', '2.50', 'UNCHANGED'])), RELS);
  assert.deepEqual(c, { op: 'update', table: ITEM.table, after: { id: '1', label: 'x', price: '2.50', big: undefined } });
  assert.equal('before' in c!, false);
});

test('update with the old key (K): before holds the key columns only', () => {
  const c = decodeRowMessage(msg('U', 16384, 'K', tuple(['1', null, null, null]), 'N', tuple(['2', 'x', null, 'UNCHANGED'])), RELS) as { before: object; after: object };
  assert.deepEqual(c.before, { id: '1' });
  assert.deepEqual(c.after, { id: '2', label: 'x', price: null, big: undefined });
});

test('update with the whole old row (O): unchanged TOAST values come from it', () => {
  const c = decodeRowMessage(msg('U', 16384, 'O', tuple(['1', 'a', '1.00', 'long text']), 'N', tuple(['1', 'b', '1.00', 'UNCHANGED'])), RELS) as { before: object; after: object };
  assert.deepEqual(c.before, { id: '1', label: 'a', price: '1.00', big: 'long text' });
  assert.deepEqual(c.after, { id: '1', label: 'b', price: '1.00', big: 'long text' });
});

test('delete with the key (K) or the whole row (O)', () => {
  assert.deepEqual(decodeRowMessage(msg('D', 16384, 'K', tuple(['7', null, null, null])), RELS), { op: 'delete', table: ITEM.table, before: { id: '7' } });
  assert.deepEqual(decodeRowMessage(msg('D', 16384, 'O', tuple(['7', 'z', null, 'b'])), RELS), {
    op: 'delete',
    table: ITEM.table,
    before: { id: '7', label: 'z', price: null, big: 'b' },
  });
});

test('other messages are left to the caller; protocol errors are errors', () => {
  assert.equal(decodeRowMessage(Buffer.from('B'), RELS), null);
  assert.throws(() => decodeRowMessage(msg('I', 99, 'N', tuple(['1'])), RELS), /unknown relation 99/);
  assert.throws(() => decodeRowMessage(msg('I', 16384, 'X', tuple(['1'])), RELS), /expected N/);
  const binary = Buffer.concat([msg('I', 16384, 'N'), Buffer.from([0, 1]), Buffer.from('b'), Buffer.from([0, 0, 0, 1, 65])]);
  assert.throws(() => decodeRowMessage(binary, RELS), /binary tuple data/);
});

test('rows of one relation share a shape (same keys in the same order)', () => {
  const a = decodeRowMessage(msg('I', 16384, 'N', tuple(['1', 'a', null, 'x'])), RELS) as { after: object };
  const b = decodeRowMessage(msg('I', 16384, 'N', tuple(['2', null, '3', null])), RELS) as { after: object };
  assert.deepEqual(Object.keys(a.after), Object.keys(b.after));
  assert.equal(Object.getPrototypeOf(a.after), Object.prototype);
});
