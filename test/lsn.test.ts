import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Lsn } from '../src/core/lsn.js';

/** 2^53: the first integer a JavaScript number cannot tell from its neighbour. */
const TWO_53 = 1n << 53n;
const MAX = (1n << 64n) - 1n;

describe('Lsn: parse and format', () => {
  test('round trips PostgreSQL text forms exactly', () => {
    for (const text of ['0/0', '0/1', '1/0', '16/B374D848', 'FFFFFFFF/FFFFFFFF', '200000/0', 'ABCDEF01/23456789']) {
      assert.equal(Lsn.parse(text).toString(), text, text);
    }
  });

  test('reads the two halves as hex: high word shifted by 32 bits', () => {
    assert.equal(Lsn.parse('0/0').value, 0n);
    assert.equal(Lsn.parse('0/FF').value, 255n);
    assert.equal(Lsn.parse('1/0').value, 1n << 32n);
    assert.equal(Lsn.parse('16/B374D848').value, 0x16b374d848n);
    assert.equal(Lsn.parse('FFFFFFFF/FFFFFFFF').value, MAX);
  });

  test('formats in PostgreSQL style: upper case, no zero padding', () => {
    assert.equal(Lsn.parse('16/b374d848').toString(), '16/B374D848');
    assert.equal(Lsn.parse('00000000/0000000A').toString(), '0/A');
    assert.equal(Lsn.parse('000001/00').toString(), '1/0');
    assert.equal(Lsn.fromBigInt(0x1_0000_0000n + 0xabcn).toString(), '1/ABC');
  });

  test('ignores surrounding white space (as read from a query or a file)', () => {
    assert.equal(Lsn.parse('  0/16B3748 \n').toString(), '0/16B3748');
  });

  test('toJSON is the text form', () => {
    assert.equal(JSON.stringify({ at: Lsn.parse('2A/1') }), '{"at":"2A/1"}');
  });

  test('fromBigInt accepts 0 and 2^64-1 and formats them', () => {
    assert.equal(Lsn.fromBigInt(0n).toString(), '0/0');
    assert.equal(Lsn.fromBigInt(MAX).toString(), 'FFFFFFFF/FFFFFFFF');
    assert.equal(Lsn.ZERO.toString(), '0/0');
    assert.ok(Lsn.ZERO.equals(Lsn.parse('0/0')));
  });
});

describe('Lsn: 64-bit values above 2^53 stay exact', () => {
  test('2^53 + 1 parses, formats and differs from 2^53', () => {
    const a = Lsn.fromBigInt(TWO_53);
    const b = Lsn.fromBigInt(TWO_53 + 1n);
    assert.equal(a.toString(), '200000/0');
    assert.equal(b.toString(), '200000/1');
    assert.equal(Lsn.parse('200000/1').value, TWO_53 + 1n);
    // As JavaScript numbers these two would be equal; as LSNs they must not be.
    assert.equal(Number(a.value), Number(b.value));
    assert.equal(a.equals(b), false);
    assert.equal(a.compare(b), -1);
    assert.equal(b.isAfter(a), true);
    assert.equal(a.bytesUntil(b), 1n);
  });

  test('neighbours at the top of the range compare and subtract exactly', () => {
    const top = Lsn.parse('FFFFFFFF/FFFFFFFF');
    const below = Lsn.parse('FFFFFFFF/FFFFFFFE');
    assert.equal(below.compare(top), -1);
    assert.equal(top.compare(below), 1);
    assert.equal(below.bytesUntil(top), 1n);
    assert.equal(Lsn.ZERO.bytesUntil(top), MAX);
  });

  test('the 8-byte big-endian protocol form round trips', () => {
    for (const text of ['0/0', '16/B374D848', '200000/1', 'FFFFFFFF/FFFFFFFF']) {
      const buf = Buffer.alloc(12, 0xee);
      Lsn.parse(text).write(buf, 2);
      assert.equal(Lsn.read(buf, 2).toString(), text);
      // Writes exactly 8 bytes at the offset and nothing around them.
      assert.equal(buf[0], 0xee);
      assert.equal(buf[1], 0xee);
      assert.equal(buf[10], 0xee);
      assert.equal(buf[11], 0xee);
    }
    const buf = Buffer.alloc(8);
    Lsn.parse('16/B374D848').write(buf, 0);
    assert.equal(buf.toString('hex'), '00000016b374d848');
  });
});

describe('Lsn: comparisons', () => {
  const a = Lsn.parse('0/FFFFFFFF');
  const b = Lsn.parse('1/0');
  const b2 = Lsn.parse('1/00000000');

  test('compare is -1, 0, 1 across the 32-bit boundary (not a string comparison)', () => {
    assert.equal(a.compare(b), -1);
    assert.equal(b.compare(a), 1);
    assert.equal(b.compare(b2), 0);
    // "9/0" < "10/0" although "9" > "1" as text
    assert.equal(Lsn.parse('9/0').compare(Lsn.parse('10/0')), -1);
    assert.equal(Lsn.parse('0/9').compare(Lsn.parse('0/10')), -1);
  });

  test('equals, isBefore, isAfter', () => {
    assert.equal(b.equals(b2), true);
    assert.equal(a.equals(b), false);
    assert.equal(a.isBefore(b), true);
    assert.equal(b.isBefore(a), false);
    assert.equal(b.isBefore(b2), false);
    assert.equal(b.isAfter(a), true);
    assert.equal(a.isAfter(b), false);
    assert.equal(b.isAfter(b2), false);
  });

  test('max returns the later one (the first when equal)', () => {
    assert.equal(Lsn.max(a, b), b);
    assert.equal(Lsn.max(b, a), b);
    assert.equal(Lsn.max(b, b2), b);
  });

  test('sorts with compare', () => {
    const sorted = ['1/0', '0/A', 'A/0', '0/FFFFFFFF', '0/0'].map((t) => Lsn.parse(t)).sort((x, y) => x.compare(y));
    assert.deepEqual(sorted.map(String), ['0/0', '0/A', '0/FFFFFFFF', '1/0', 'A/0']);
  });
});

describe('Lsn: bytesUntil', () => {
  test('is the byte distance to a later position', () => {
    assert.equal(Lsn.parse('0/100').bytesUntil(Lsn.parse('0/180')), 0x80n);
    assert.equal(Lsn.parse('0/FFFFFFFF').bytesUntil(Lsn.parse('1/0')), 1n);
    assert.equal(Lsn.parse('16/B374D848').bytesUntil(Lsn.parse('17/0')), 0x17_0000_0000n - 0x16_b374_d848n);
  });

  test('is 0 for the same or an earlier position, never negative', () => {
    assert.equal(Lsn.parse('1/0').bytesUntil(Lsn.parse('1/0')), 0n);
    assert.equal(Lsn.parse('1/0').bytesUntil(Lsn.parse('0/FFFFFFFF')), 0n);
    assert.equal(Lsn.parse('FFFFFFFF/FFFFFFFF').bytesUntil(Lsn.ZERO), 0n);
  });
});

describe('Lsn: invalid input', () => {
  const bad = ['', ' ', '0', '0/', '/0', '0//0', '0/0/0', 'G/0', '0/G', '-1/0', '0x1/0', '1 /0', '123456789/0', '0/123456789', '1.5/0', 'null'];
  for (const text of bad) {
    test(`parse(${JSON.stringify(text)}) throws a SyntaxError that quotes the input`, () => {
      assert.throws(
        () => Lsn.parse(text),
        (e: unknown) => {
          assert.ok(e instanceof SyntaxError, `expected SyntaxError, got ${String(e)}`);
          assert.equal(e.message, `not a PostgreSQL LSN: ${JSON.stringify(text)}`);
          return true;
        },
      );
    });
  }

  test('fromBigInt rejects negative values and values of 2^64 and above', () => {
    assert.throws(() => Lsn.fromBigInt(-1n), { name: 'RangeError', message: 'LSN out of range: -1' });
    assert.throws(() => Lsn.fromBigInt(1n << 64n), { name: 'RangeError', message: `LSN out of range: ${1n << 64n}` });
  });
});
