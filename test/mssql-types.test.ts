import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mssqlTypeMapping, normalizeValue, pgFloatText, requireTypeMapping } from '../connectors/mssql-trigger/types.js';
import { BranchlineError } from '../src/core/errors.js';
import { TYPE_CASES } from './support/mssql-type-cases.js';

describe('mssql-trigger type mapping: one case per SQL Server type', () => {
  for (const c of TYPE_CASES) {
    test(c.label, () => {
      const m = mssqlTypeMapping(c.type);
      assert.ok(m, `${c.label} has a mapping`);
      assert.equal(m.textExpr('i.[c]'), c.expr, 'the T-SQL expression the trigger writes');
      assert.equal(m.pgType, c.pgType, 'the PostgreSQL type it maps to');
      for (const [text, expected] of c.samples) assert.equal(m.normalize(text), expected, `${c.label}: ${JSON.stringify(text)}`);
      assert.equal(normalizeValue(m, 'dbo.t', 'c', null), null, 'NULL stays NULL');
    });
  }
});

describe('mssql-trigger type mapping: edges and refusals', () => {
  test('float(24) and below is stored as real and maps to real', () => {
    assert.equal(mssqlTypeMapping({ name: 'float', maxLength: 4, precision: 24, scale: 0 })?.pgType, 'real');
  });

  test('a decimal printed without its leading zero gets it', () => {
    const m = mssqlTypeMapping({ name: 'decimal', maxLength: 5, precision: 5, scale: 5 })!;
    assert.equal(m.normalize('.12345'), '0.12345');
    assert.equal(m.normalize('-.5'), '-0.5');
  });

  test('text a type cannot hold is refused with the table and column named', () => {
    const bad: [string, string][] = [
      ['int', '1.5'],
      ['decimal', '1e5'],
      ['bit', 'true'],
      ['date', '01/02/2024'],
      ['datetime2', '2024-06-01T08:00:00+02:00'],
      ['datetimeoffset', '2024-06-01 08:00:00'],
      ['uniqueidentifier', 'not-a-guid'],
      ['varbinary', '0xABC'],
      ['float', 'NaN'],
    ];
    for (const [name, text] of bad) {
      const m = mssqlTypeMapping({ name, maxLength: 8, precision: 53, scale: 7 })!;
      assert.throws(() => normalizeValue(m, 'dbo.item', 'c', text), (e: Error) => e.message.startsWith('dbo.item.c: not SQL Server'), `${name} ${text}`);
    }
  });

  test('types branchline cannot capture are BL-D007, naming column and type', () => {
    for (const name of ['xml', 'geography', 'geometry', 'hierarchyid', 'sql_variant', 'text', 'ntext', 'image']) {
      assert.equal(mssqlTypeMapping({ name, maxLength: -1, precision: 0, scale: 0 }), null, name);
      assert.throws(
        () => requireTypeMapping('dbo.item', 'notes', { name, maxLength: -1, precision: 0, scale: 0 }),
        (e: unknown) => e instanceof BranchlineError && e.code === 'BL-D007' && e.message.includes('column notes of dbo.item') && e.message.includes(`type ${name}`),
        name,
      );
    }
    assert.throws(
      () => requireTypeMapping('dbo.item', 'notes', { name: 'ntext', maxLength: 16, precision: 0, scale: 0 }),
      (e: unknown) => e instanceof BranchlineError && /AFTER trigger cannot read text, ntext or image/.test(e.message) && /nvarchar\(max\)/.test(e.message),
    );
  });

  test('PostgreSQL float output: shortest digits, fixed from 1e-4 up to 1e15 (double) or 1e6 (real)', () => {
    assert.equal(pgFloatText(-0, false), '-0');
    assert.equal(pgFloatText(123456789012345678, false), '1.2345678901234568e+17');
    assert.equal(pgFloatText(999999, true), '999999');
    assert.equal(pgFloatText(Math.fround(1234567), true), '1.234567e+06');
    assert.equal(pgFloatText(0.00012, false), '0.00012');
    assert.equal(pgFloatText(0.000012, false), '1.2e-05');
  });
});
