import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BranchlineError } from '../src/core/errors.js';
import { effectiveInstant, instantText, StoreZone } from '../src/schedule/effective-time.js';

/** effective_at values as PostgreSQL prints them (DateStyle ISO) to instants, in the store's zone when they carry none. */

const zoned = { column: 'valid_from', zoned: true };
const local = { column: 'valid_from', zoned: false };
const utc = new StoreZone('UTC');
const saoPaulo = new StoreZone('America/Sao_Paulo');
const lisbon = new StoreZone('Europe/Lisbon');
const at = (text: string, eff = zoned, zone = utc) => effectiveInstant(text, eff, zone, 'price.yml');

describe('effective times', () => {
  test('timestamptz text carries its offset, with or without minutes and fractions', () => {
    assert.equal(at('2026-12-02 06:00:00+00'), Date.parse('2026-12-02T06:00:00Z'));
    assert.equal(at('2026-12-02 06:00:00.25-03'), Date.parse('2026-12-02T09:00:00.250Z'));
    assert.equal(at('2026-12-02 06:00:00.123456+05:30'), Date.parse('2026-12-02T00:30:00.123Z'));
    assert.equal(at('2026-12-02T06:00:00Z'), Date.parse('2026-12-02T06:00:00Z'));
  });

  test('a timestamp or date without zone is a wall-clock time of the store, summer time included', () => {
    assert.equal(at('2026-12-02 06:00:00', local, saoPaulo), Date.parse('2026-12-02T09:00:00Z'));
    assert.equal(at('2026-12-02', local, saoPaulo), Date.parse('2026-12-02T03:00:00Z'));
    assert.equal(at('2026-07-01 06:00:00', local, lisbon), Date.parse('2026-07-01T05:00:00Z'), 'Lisbon in summer: UTC+1');
    assert.equal(at('2026-01-15 06:00:00', local, lisbon), Date.parse('2026-01-15T06:00:00Z'), 'Lisbon in winter: UTC');
  });

  test('NULL is no time; infinity never comes; -infinity is past', () => {
    assert.equal(at(null as unknown as string), null);
    assert.equal(effectiveInstant(undefined, zoned, utc, 'price.yml'), null);
    assert.equal(at('infinity'), Number.POSITIVE_INFINITY);
    assert.equal(at('-infinity'), Number.NEGATIVE_INFINITY);
    assert.equal(instantText(Number.POSITIVE_INFINITY), 'infinity');
    assert.equal(instantText(Date.parse('2026-12-02T06:00:00Z')), '2026-12-02T06:00:00.000Z');
  });

  test('text that is not a time is BL-M015 naming the mapping and the column', () => {
    assert.throws(
      () => at('02/12/2026 06:00'),
      (e: unknown) => e instanceof BranchlineError && e.code === 'BL-M015' && e.message.includes('price.yml: effective_at column "valid_from" holds "02/12/2026 06:00"'),
    );
  });
});
