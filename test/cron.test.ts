import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CronError, parseCron } from '../src/reports/cron.js';

const next = (expr: string, after: string, zone = 'UTC') => parseCron(expr, zone).next(new Date(after)).toISOString();

describe('report schedules (cron)', () => {
  test('the next time strictly after, field by field', () => {
    assert.equal(next('0 7 * * *', '2026-12-01T06:59:00Z'), '2026-12-01T07:00:00.000Z');
    assert.equal(next('0 7 * * *', '2026-12-01T07:00:00Z'), '2026-12-02T07:00:00.000Z', 'strictly after');
    assert.equal(next('*/15 * * * *', '2026-12-01T10:16:30Z'), '2026-12-01T10:30:00.000Z');
    assert.equal(next('30 6 * * mon-fri', '2026-12-04T07:00:00Z'), '2026-12-07T06:30:00.000Z', 'Friday after 06:30: Monday');
    assert.equal(next('0 0 1 jan,jul *', '2026-02-01T00:00:00Z'), '2026-07-01T00:00:00.000Z');
    assert.equal(next('0 0 29 2 *', '2026-03-01T00:00:00Z'), '2028-02-29T00:00:00.000Z', 'the next leap day');
    assert.equal(next('0 12 * * 7', '2026-12-01T00:00:00Z'), '2026-12-06T12:00:00.000Z', '7 is Sunday');
    // Both day fields restricted: either one (Vixie cron): the 15th, or a Monday.
    assert.equal(next('0 0 15 * 1', '2026-12-01T00:00:00Z'), '2026-12-07T00:00:00.000Z');
    assert.equal(next('0 0 15 * 1', '2026-12-14T00:00:00Z'), '2026-12-15T00:00:00.000Z');
  });

  test('wall times in a zone, across daylight-saving changes', () => {
    assert.equal(next('0 7 * * *', '2026-12-01T12:00:00Z', 'America/Sao_Paulo'), '2026-12-02T10:00:00.000Z');
    // New York skips 02:00-03:00 on 2026-03-08: 02:30 does not run that day.
    assert.equal(next('30 2 * * *', '2026-03-07T08:00:00Z', 'America/New_York'), '2026-03-09T06:30:00.000Z');
    // ... and repeats 01:00-02:00 on 2026-11-01: 01:30 runs once, the first time (EDT).
    assert.equal(next('30 1 * * *', '2026-11-01T04:00:00Z', 'America/New_York'), '2026-11-01T05:30:00.000Z');
    assert.equal(next('30 1 * * *', '2026-11-01T05:30:00Z', 'America/New_York'), '2026-11-02T06:30:00.000Z');
  });

  test('a malformed expression says which field and what to write', () => {
    const err = (expr: string) => {
      try {
        parseCron(expr, 'UTC').next(new Date('2026-01-01T00:00:00Z'));
      } catch (e) {
        assert.ok(e instanceof CronError);
        return e.message;
      }
      assert.fail(`accepted ${expr}`);
    };
    assert.match(err('0 7 * *'), /has 4 fields, not 5/);
    assert.match(err('60 7 * * *'), /minute 60 is outside 0-59/);
    assert.match(err('0 7 * * funday'), /"funday" is not a day of week/);
    assert.match(err('0 9-5 * * *'), /the range "9-5" runs backwards/);
    assert.match(err('*/0 * * * *'), /the step in "\*\/0" must be at least 1/);
    assert.match(err('0 0 31 2 *'), /never runs/);
  });
});
