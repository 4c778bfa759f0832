import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loggedColumns, logRowChange, type LogRow, type LoggedTable } from '../connectors/mssql-trigger/log-row.js';
import { mssqlTypeMapping, normalizeValue, pgFloatText, requireTypeMapping, type MssqlColumnType } from '../connectors/mssql-trigger/types.js';
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

describe('mssql-trigger log rows to changes', () => {
  const type = (name: string, maxLength: number, precision = 0, scale = 0): MssqlColumnType => ({ name, maxLength, precision, scale });
  const table: LoggedTable = {
    id: { schema: 'dbo', table: 'item' },
    types: new Map([
      ['id', mssqlTypeMapping(type('int', 4, 10))],
      ['name', mssqlTypeMapping(type('nvarchar', -1))],
      ['paid', mssqlTypeMapping(type('bit', 1, 1))],
      ['at', mssqlTypeMapping(type('datetimeoffset', 10, 34, 7))],
      ['gone', null],
    ]),
  };
  const row = (op: LogRow['op'], before: string | null, after: string | null): LogRow => ({
    id: '7',
    rv: Buffer.from('00000000000007d1', 'hex'),
    schema_name: 'dbo',
    table_name: 'item',
    op,
    before,
    after,
    logged_at: new Date('2024-03-01T06:45:00Z'),
  });
  // As the trigger writes it: STRING_ESCAPE(..., 'json') escapes " \ / and control characters.
  const before = String.raw`{"id":"7","name":"a \"b\" c\/d\\e\u0001\n","paid":"0","at":"2024-03-01T12:30:00.1234567+05:45","gone":"x"}`;
  const after = String.raw`{"id":"7","name":null,"paid":"1","at":null,"gone":null}`;

  test('an update carries both rows, normalized; NULL stays NULL; a dropped column as logged', () => {
    assert.deepEqual(loggedColumns(row('u', before, after)), ['id', 'name', 'paid', 'at', 'gone']);
    assert.deepEqual(logRowChange(row('u', before, after), table), {
      op: 'update',
      table: { schema: 'dbo', table: 'item' },
      before: { id: '7', name: 'a "b" c/d\\e\u0001\n', paid: 'f', at: '2024-03-01 06:45:00.123457+00', gone: 'x' },
      after: { id: '7', name: null, paid: 't', at: null, gone: null },
    });
  });

  test('an insert carries the new row, a delete the old one', () => {
    assert.deepEqual(logRowChange(row('i', null, after), table), { op: 'insert', table: table.id, after: { id: '7', name: null, paid: 't', at: null, gone: null } });
    const del = logRowChange(row('d', before, null), table);
    assert.equal(del.op, 'delete');
    assert.deepEqual(del.op === 'delete' && del.before['at'], '2024-03-01 06:45:00.123457+00');
    assert.deepEqual(loggedColumns(row('d', before, null)), ['id', 'name', 'paid', 'at', 'gone']);
  });

  test('a value its type cannot be read from names the table and column', () => {
    assert.throws(() => logRowChange(row('i', null, '{"id":"7","paid":"yes"}'), table), /^Error: dbo\.item\.paid: not SQL Server bit text: "yes"$/);
  });
});
