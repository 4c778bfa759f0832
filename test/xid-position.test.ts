import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { afterWindow, XID8_CODEC, xidPosition } from '../connectors/pg-trigger/index.js';

/** pg-trigger positions: a bound, an initial load's snapshot, a place inside a window; parse, format, compare. */
describe('pg-trigger positions', () => {
  const p = (t: string) => XID8_CODEC.parse(t);

  it('round-trips every form through format and parse', () => {
    for (const text of ['0', '761', '749:752:749,750', '761@800/9', '749:752:749,750@751/12']) assert.equal(XID8_CODEC.format(p(text)), text);
    assert.deepEqual(p('761@800/9'), { bound: 761n, snapshot: null, window: { until: 800n, lastId: 9n } });
    assert.deepEqual(p('749:752:749,750'), { bound: 749n, snapshot: '749:752:749,750' });
  });

  it('orders by bound, then how far into its window, then a snapshot after a plain bound', () => {
    const sorted = ['760', '761', '761@800/9', '761@800/10', '800'];
    for (let i = 1; i < sorted.length; i++) assert.equal(XID8_CODEC.compare(p(sorted[i - 1]!), p(sorted[i]!)), -1, `${sorted[i - 1]} < ${sorted[i]}`);
    assert.equal(XID8_CODEC.compare(p('749'), p('749:752:749,750')), -1);
    assert.equal(XID8_CODEC.compare(p('761@800/9'), p('761@800/9')), 0);
  });

  it('keeps the snapshot past a window only while the new bound is below its xmax', () => {
    const load = p('749:752:749,750');
    assert.equal(afterWindow(load, 750n).snapshot, '749:752:749,750');
    assert.equal(afterWindow(load, 751n).snapshot, '749:752:749,750');
    assert.equal(afterWindow(load, 752n).snapshot, null);
    assert.deepEqual(afterWindow(xidPosition(5n), 9n), { bound: 9n, snapshot: null });
  });

  it('refuses what is not a position, saying what one looks like', () => {
    for (const bad of ['', 'abc', '12@', '12@5/1', '12@13', '0/16B3748']) assert.throws(() => p(bad), /not a pg-trigger position/, bad);
  });
});
