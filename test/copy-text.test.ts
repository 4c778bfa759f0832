import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseCopyLine } from '../src/load/copy-text.js';

describe('COPY text format', () => {
  test('fields, NULL and escapes come back as the text values they stand for', () => {
    const row = parseCopyLine('1\t\\N\ta\\tb\\nc\\\\d\t\\101\\x42\t', ['id', 'n', 'esc', 'octhex', 'empty']);
    assert.deepEqual(row, { id: '1', n: null, esc: 'a\tb\nc\\d', octhex: 'AB', empty: '' });
  });
  test('a row with the wrong number of fields is refused', () => {
    assert.throws(() => parseCopyLine('1\t2', ['a']), /more than 1 fields/);
    assert.throws(() => parseCopyLine('1', ['a', 'b']), /1 fields, expected 2/);
  });
});
