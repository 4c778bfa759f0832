import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tableInfoFromCatalog, type MssqlTableInfo } from '../connectors/mssql-trigger/index.js';
import { colRow } from './support/mssql-catalog-row.js';
import { mssqlParams, mssqlStatement, mssqlTypeSql } from '../src/settlement/mssql-record-reader.js';

/**
 * Settlement checks against a SQL Server store: no SQL Server here, so the
 * statement is checked exactly (docs/connectors.md says what was not run
 * live). References are bound, never written into the text.
 */

const row = (id: number, name: string, type: string, maxLength: number, precision = 0, scale = 0) =>
  colRow(id, name, type, maxLength, precision, scale, { table_name: 'titulo]receber', is_nullable: false });

const TABLE: MssqlTableInfo = tableInfoFromCatalog(
  [row(1, 'id', 'bigint', 8, 19), row(2, 'valor', 'decimal', 9, 14, 2), row(3, 'situacao', 'nvarchar', 20), row(4, 'baixado', 'bit', 1)],
  [{ index_id: 1, is_primary_key: true, column_name: 'id' }],
)!;

describe('settlement checks at a SQL Server store: the statement', () => {
  test('one statement for every reference: bound values, TRY_CONVERT to the key type, columns as the triggers write them', () => {
    const lookup = { table: { schema: 'dbo', table: 'titulo]receber' }, refColumn: 'id', refType: null, columns: ['valor', 'situacao', 'baixado'] };
    assert.equal(
      mssqlStatement(TABLE, lookup, 3),
      [
        'SELECT r.[ord] AS [__ord], CONVERT(nvarchar(60), t.[valor]) AS [valor], CONVERT(nvarchar(max), t.[situacao]) AS [situacao], CONVERT(nchar(1), t.[baixado]) AS [baixado]',
        'FROM (VALUES (1, @r0), (2, @r1), (3, @r2)) AS r([ord], [ref])',
        'JOIN [dbo].[titulo]]receber] AS t ON t.[id] = TRY_CONVERT(bigint, r.[ref])',
      ].join('\n'),
    );
    const params = mssqlParams(["1; DROP TABLE x --", "' OR 1=1"]);
    assert.deepEqual(params.map((p) => [p.name, p.value]), [['r0', '1; DROP TABLE x --'], ['r1', "' OR 1=1"]]);
  });

  test('key types as a CONVERT writes them', () => {
    const t = (name: string, maxLength: number, precision = 0, scale = 0) => mssqlTypeSql({ name, maxLength, precision, scale });
    assert.deepEqual(
      [t('nvarchar', 40), t('nvarchar', -1), t('varchar', 12), t('char', 3), t('decimal', 9, 14, 2), t('numeric', 5, 9, 0), t('datetime2', 8, 27, 7), t('int', 4), t('uniqueidentifier', 16)],
      ['nvarchar(20)', 'nvarchar(max)', 'varchar(12)', 'char(3)', 'decimal(14,2)', 'numeric(9,0)', 'datetime2(7)', 'int', 'uniqueidentifier'],
    );
  });

  test('a column the table lacks is BL-M025, before anything is sent', () => {
    assert.throws(
      () => mssqlStatement(TABLE, { table: { schema: 'dbo', table: 'titulo]receber' }, refColumn: 'id', refType: null, columns: ['amount'] }, 1),
      /BL-M025 the SQL Server table dbo\.titulo\]receber has no column "amount", which settlement checks read\./,
    );
  });
});
