import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LSN_CODEC } from '../connectors/pg-logical/lsn-codec.js';
import { Lsn } from '../src/core/lsn.js';
import { PgSnapshot } from '../src/core/pg-snapshot.js';
import { SlotPosition } from '../src/core/slot-position.js';

const E = 1n << 32n;

describe('PgSnapshot: which transactions a snapshot saw committed', () => {
  test('below xmin seen, in xip not seen, between and not running seen, from xmax on not seen', () => {
    const s = PgSnapshot.parse('100:110:102,105');
    assert.deepEqual([99n, 100n, 101n, 102n, 104n, 105n, 109n, 110n, 200n].map((x) => s.sees(x)), [true, true, true, false, true, false, true, false, false]);
    assert.equal(s.toString(), '100:110:102,105');
    assert.equal(PgSnapshot.parse('7:7:').toString(), '7:7:');
  });

  test('32-bit xids of logical decoding across the wraparound of the epoch', () => {
    // xmin in epoch 0, xmax in epoch 1; running: 2^32-2 and 2^32+1.
    const s = PgSnapshot.parse(`${E - 5n}:${E + 5n}:${E - 2n},${E + 1n}`);
    const cases: [number, boolean][] = [
      [0xfffffff0, true], // 2^32-16 < xmin
      [0xfffffffd, true], // committed, after xmin
      [0xfffffffe, false], // running
      [1, false], // 2^32+1 running
      [3, true], // 2^32+3 committed
      [6, false], // 2^32+6 >= xmax
    ];
    for (const [xid, seen] of cases) assert.equal(s.sees32(xid), seen, `xid ${xid}`);
    assert.equal(PgSnapshot.widen(5, 10n * E + 7n), 10n * E + 5n);
    assert.equal(PgSnapshot.widen(0xffffffff, 10n * E + 7n), 10n * E - 1n);
    assert.equal(PgSnapshot.widen(3, 10n * E - 2n), 10n * E + 3n);
  });

  test('rejects text that is not a consistent snapshot', () => {
    for (const bad of ['', '1:2', 'a:b:', '10:5:', '10:20:25', '10:20:5']) assert.throws(() => PgSnapshot.parse(bad), SyntaxError, bad);
  });
});

describe('SlotPosition: an LSN, with an initial load\'s snapshot until the stream passed it', () => {
  const snap = PgSnapshot.parse('100:110:102');
  const until = Lsn.parse('0/5000');
  const loaded = SlotPosition.withLoad(Lsn.parse('0/1000'), snap, until);

  test('positions stored before initial loads existed read as they are', () => {
    const p = LSN_CODEC.parse('16/B374D848');
    assert.equal(p.load, null);
    assert.equal(p.lsn.toString(), '16/B374D848');
    assert.equal(LSN_CODEC.format(p), '16/B374D848');
  });

  test('round trips with a snapshot, and with the tables of a partial load', () => {
    assert.equal(loaded.toString(), '0/1000 snapshot 100:110:102 until 0/5000');
    assert.equal(LSN_CODEC.format(LSN_CODEC.parse(loaded.toString())), loaded.toString());
    const some = SlotPosition.withLoad(Lsn.parse('0/1000'), snap, until, ['public.sale_line', 'public.sale']);
    assert.equal(some.toString(), '0/1000 snapshot 100:110:102 until 0/5000 tables public.sale,public.sale_line');
    const again = SlotPosition.parse(some.toString());
    assert.equal(again.toString(), some.toString());
    assert.equal(again.loaded('public.sale'), true);
    assert.equal(again.loaded('public.customer'), false);
    assert.throws(() => SlotPosition.parse('0/1000 snapshot 1:x: until 0/1'));
  });

  test('in the copy: seen by the snapshot and committed before until; by xid, not by commit LSN', () => {
    assert.equal(loaded.inCopy(101, Lsn.parse('0/2000')), 'all');
    // Its commit record precedes the snapshot, yet the snapshot saw it running: not in the copy.
    assert.equal(loaded.inCopy(102, Lsn.parse('0/800')), 'none');
    assert.equal(loaded.inCopy(111, Lsn.parse('0/6000')), 'none');
    assert.equal(SlotPosition.withLoad(Lsn.parse('0/1000'), snap, until, ['public.sale']).inCopy(101, Lsn.parse('0/2000')), 'loaded tables');
    assert.equal(SlotPosition.at(Lsn.parse('0/1000')).inCopy(101, Lsn.parse('0/2000')), 'none');
  });

  test('the snapshot is kept until a commit starting at or after until, then dropped', () => {
    const a = loaded.afterCommit(Lsn.parse('0/4000'), Lsn.parse('0/4100'));
    assert.equal(a.toString(), '0/4100 snapshot 100:110:102 until 0/5000');
    const b = a.afterCommit(Lsn.parse('0/5000'), Lsn.parse('0/5100'));
    assert.equal(b.toString(), '0/5100');
    assert.equal(b.afterCommit(Lsn.parse('0/5200'), Lsn.parse('0/5300')).load, null);
    assert.equal(loaded.idleAt(Lsn.parse('0/4FFF')).load !== null, true);
    assert.equal(loaded.idleAt(Lsn.parse('0/5000')).load, null);
  });

  test('compares by LSN; at one LSN the position still carrying a snapshot is earlier', () => {
    const plain = SlotPosition.at(Lsn.parse('0/1000'));
    assert.equal(LSN_CODEC.compare(loaded, plain), -1);
    assert.equal(LSN_CODEC.compare(plain, loaded), 1);
    assert.equal(LSN_CODEC.compare(loaded, SlotPosition.at(Lsn.parse('0/FFF'))), 1);
    assert.equal(LSN_CODEC.compare(loaded, LSN_CODEC.parse(loaded.toString())), 0);
  });
});
