import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sql from 'mssql';
import { tableInfoFromCatalog, type CatalogKeyRow, type MssqlTableInfo } from '../connectors/mssql-trigger/catalog.js';
import { logRowChange, type LoggedTable } from '../connectors/mssql-trigger/log-row.js';
import type { BoundParam } from '../connectors/mssql-trigger/sql.js';
import { mssqlTypeMapping } from '../connectors/mssql-trigger/types.js';
import * as tsql from '../src/reconcile/mssql-source-sql.js';
import type { MssqlSourceTable } from '../src/reconcile/mssql-source-sql.js';
import { colRow } from './support/mssql-catalog-row.js';
import { TYPE_CASES } from './support/mssql-type-cases.js';

/**
 * The T-SQL `branchline reconcile` runs at a SQL Server store, stated
 * exactly. No SQL Server runs here: these texts were checked against
 * Microsoft's T-SQL reference, not executed (docs/connectors.md says what
 * was not verified live).
 */

const keyRows = (...names: string[]): CatalogKeyRow[] => names.map((column_name) => ({ index_id: 1, is_primary_key: true, column_name }));

function table(columns: Parameters<typeof tableInfoFromCatalog>[0], pk: readonly string[]): MssqlSourceTable {
  const info = tableInfoFromCatalog(columns, keyRows(...pk)) as MssqlTableInfo;
  assert.deepEqual(info.primaryKey, pk);
  return { id: info.id, info, primaryKey: pk };
}

/** A sales line keyed by (store_id, line]no): a key column with `]` in its name. */
const LINE = table(
  [
    colRow(1, 'store_id', 'int', 4, 10, 0, { is_nullable: false }),
    colRow(2, 'line]no', 'smallint', 2, 5, 0, { is_nullable: false }),
    colRow(3, 'price', 'decimal', 9, 10, 2),
    colRow(4, 'sold_at', 'datetime2', 8, 27, 7),
    colRow(5, 'note', 'nvarchar', -1),
  ],
  ['store_id', 'line]no'],
);

/** Three key columns whose text is read back with a CONVERT style: date, datetimeoffset, binary. */
const STAMPED = table(
  [
    colRow(1, 'day', 'date', 3, 10, 0, { is_nullable: false, table_name: 'we]ird' }),
    colRow(2, 'at', 'datetimeoffset', 10, 34, 7, { is_nullable: false, table_name: 'we]ird' }),
    colRow(3, 'hash', 'binary', 4, 0, 0, { is_nullable: false, table_name: 'we]ird' }),
    colRow(4, 'qty', 'int', 4, 10, 0, { table_name: 'we]ird' }),
  ],
  ['day', 'at', 'hash'],
);

const LINE_LIST =
  'CONVERT(nvarchar(20), t.[store_id]) AS [store_id], CONVERT(nvarchar(20), t.[line]]no]) AS [line]]no], CONVERT(nvarchar(60), t.[price]) AS [price], CONVERT(nvarchar(27), t.[sold_at], 121) AS [sold_at], CONVERT(nvarchar(max), t.[note]) AS [note]';

/** The names a statement uses (`@name`). */
function paramNames(text: string): string[] {
  return [...new Set([...text.matchAll(/(?<!@)@([A-Za-z_]\w*)/g)].map((m) => m[1]!))].sort();
}

/** A parameter as name, declared T-SQL type and value. */
function declared(p: BoundParam): [string, string, unknown] {
  const t = p.type as unknown as { declaration?: string; type?: { declaration: string }; length?: number };
  const type = t.type ? `${t.type.declaration}(${t.length})` : t.declaration!;
  return [p.name, type, p.value];
}

describe('reconcile at a SQL Server store: keyset chunks', () => {
  test('the first chunk of a table with a composite key, one named with `]`', () => {
    assert.equal(
      tsql.chunkSql(LINE, false),
      `SELECT TOP (@limit) ${LINE_LIST}
  FROM [dbo].[sale] AS t
 ORDER BY t.[store_id], t.[line]]no]`,
    );
    assert.deepEqual(tsql.chunkParams(500, null).map(declared), [['limit', 'int', 500]]);
  });

  test('the next chunks: an expanded row comparison with the last key, read back into the key columns types', () => {
    assert.equal(
      tsql.chunkSql(LINE, true),
      `SELECT TOP (@limit) ${LINE_LIST}
  FROM [dbo].[sale] AS t
 WHERE t.[store_id] > CONVERT(int, @k0) OR (t.[store_id] = CONVERT(int, @k0) AND t.[line]]no] > CONVERT(smallint, @k1))
 ORDER BY t.[store_id], t.[line]]no]`,
    );
    assert.deepEqual(tsql.chunkParams(500, ['42', '7']).map(declared), [
      ['limit', 'int', 500],
      ['k0', 'nvarchar(4000)', '42'],
      ['k1', 'nvarchar(4000)', '7'],
    ]);
  });

  test('three key columns read back with their CONVERT styles (date 23, datetimeoffset 127, binary 2), in a table named we]ird', () => {
    assert.equal(
      tsql.chunkSql(STAMPED, true),
      `SELECT TOP (@limit) CONVERT(nvarchar(10), t.[day], 23) AS [day], CONVERT(nvarchar(34), t.[at], 127) AS [at], CONVERT(nvarchar(max), t.[hash], 2) AS [hash], CONVERT(nvarchar(20), t.[qty]) AS [qty]
  FROM [dbo].[we]]ird] AS t
 WHERE t.[day] > CONVERT(date, @k0, 23) OR (t.[day] = CONVERT(date, @k0, 23) AND t.[at] > CONVERT(datetimeoffset(7), @k1, 127)) OR (t.[day] = CONVERT(date, @k0, 23) AND t.[at] = CONVERT(datetimeoffset(7), @k1, 127) AND t.[hash] > CONVERT(binary(4), @k2, 2))
 ORDER BY t.[day], t.[at], t.[hash]`,
    );
  });
});

describe('reconcile at a SQL Server store: rows by key (--fix), counts, isolation', () => {
  test('rows by key: a VALUES list of bound keys joined on every key column', () => {
    assert.equal(
      tsql.byKeysSql(LINE, 2),
      `SELECT ${LINE_LIST}
  FROM [dbo].[sale] AS t
  JOIN (VALUES (@r0k0, @r0k1), (@r1k0, @r1k1)) AS u([k0], [k1])
    ON t.[store_id] = CONVERT(int, u.[k0]) AND t.[line]]no] = CONVERT(smallint, u.[k1])`,
    );
    assert.deepEqual(tsql.byKeysParams([['1', '10'], ['2', '20']]).map(declared), [
      ['r0k0', 'nvarchar(4000)', '1'],
      ['r0k1', 'nvarchar(4000)', '10'],
      ['r1k0', 'nvarchar(4000)', '2'],
      ['r1k1', 'nvarchar(4000)', '20'],
    ]);
  });

  test('one statement binds at most 2,000 parameters (SQL Server takes 2,100)', () => {
    assert.equal(tsql.keysPerRead(LINE), 1000);
    assert.equal(tsql.keysPerRead(STAMPED), 666);
    for (const t of [LINE, STAMPED]) {
      const n = tsql.keysPerRead(t);
      const keys = Array.from({ length: n }, (_, i) => t.primaryKey.map(() => String(i)));
      assert.equal(paramNames(tsql.byKeysSql(t, n)).length, n * t.primaryKey.length);
      assert.ok(tsql.byKeysParams(keys).length <= tsql.MSSQL_MAX_PARAMS);
    }
  });

  test('the row estimate from sys.partitions, the table name bound', () => {
    assert.equal(tsql.ESTIMATE_SQL, 'SELECT SUM(p.[rows]) AS n FROM sys.partitions AS p WHERE p.[object_id] = OBJECT_ID(@table) AND p.[index_id] IN (0, 1)');
    assert.deepEqual(tsql.estimateParams({ schema: 'dbo', table: 'we]ird' }).map(declared), [['table', 'nvarchar(300)', '[dbo].[we]]ird]']]);
  });

  test('SNAPSHOT when the database allows it, READ COMMITTED otherwise', () => {
    assert.equal(tsql.SNAPSHOT_STATE_SQL, 'SELECT snapshot_isolation_state FROM sys.databases WHERE database_id = DB_ID()');
    assert.equal(tsql.isolationFor(1), 'snapshot');
    for (const state of [0, 2, 3, null, undefined]) assert.equal(tsql.isolationFor(state), 'read committed', `state ${state}`);
    assert.equal(tsql.isolationLevel('snapshot'), sql.ISOLATION_LEVEL.SNAPSHOT);
    assert.equal(tsql.isolationLevel('read committed'), sql.ISOLATION_LEVEL.READ_COMMITTED);
  });

  test('a read SQL Server refuses (no SELECT permission, or the table unseen) is BL-R004 naming the table; other errors pass', () => {
    const denied = Object.assign(new Error(`The SELECT permission was denied on the object 'sale', database 'erp', schema 'dbo'.`), { name: 'RequestError', number: 229 });
    const err = tsql.readRefusal(denied, 'store S1', { schema: 'dbo', table: 'sale' });
    assert.equal(err?.code, 'BL-R004');
    assert.match(err!.message, /store S1 SQL Server database refused reconcile's read of dbo\.sale \(SQL Server error 229: The SELECT permission was denied/);
    assert.match(err!.problem.hint ?? '', /db_datareader/);
    assert.equal(tsql.readRefusal(Object.assign(new Error('Invalid object name'), { name: 'RequestError', number: 208 }), 'store S1', { schema: 'dbo', table: 'sale' })?.code, 'BL-R004');
    assert.equal(tsql.readRefusal(Object.assign(new Error('Arithmetic overflow'), { name: 'RequestError', number: 8115 }), 'store S1', { schema: 'dbo', table: 'sale' }), null);
    assert.equal(tsql.readRefusal(Object.assign(new Error('socket'), { name: 'ConnectionError', number: 229 }), 'store S1', { schema: 'dbo', table: 'sale' }), null);
  });

  test('values are bound, never spliced', () => {
    const hostile = `1'); DROP TABLE [dbo].[sale]; --`;
    const cases: [string, BoundParam[]][] = [
      [tsql.chunkSql(LINE, true), tsql.chunkParams(10, [hostile, hostile])],
      [tsql.chunkSql(LINE, false), tsql.chunkParams(10, null)],
      [tsql.byKeysSql(LINE, 1), tsql.byKeysParams([[hostile, hostile]])],
      [tsql.ESTIMATE_SQL, tsql.estimateParams({ schema: 'dbo', table: hostile })],
    ];
    for (const [text, params] of cases) {
      assert.deepEqual(params.map((p) => p.name).sort(), paramNames(text), text.slice(0, 60));
      assert.ok(!text.includes('DROP TABLE'));
    }
  });
});

describe('reconcile at a SQL Server store: the values are the capture\'s', () => {
  test('every type is read with the expression the capture trigger writes, and normalizes to the text the capture delivers', () => {
    for (const c of TYPE_CASES) {
      const t = table([colRow(1, 'id', 'int', 4, 10, 0, { is_nullable: false }), colRow(2, 'c', c.type.name, c.type.maxLength, c.type.precision, c.type.scale)], ['id']);
      assert.ok(tsql.chunkSql(t, false).includes(`${c.expr.replace('i.[c]', 't.[c]')} AS [c]`), `${c.label}: the trigger's expression`);
      const logged: LoggedTable = { id: t.id, types: new Map([['id', mssqlTypeMapping(t.info.mssqlTypes.get('id')!)], ['c', mssqlTypeMapping(c.type)]]) };
      for (const [text, expected] of c.samples) {
        const read = tsql.sourceRow(t, { id: '1', c: text });
        const captured = logRowChange({ id: '1', rv: Buffer.alloc(8), schema_name: 'dbo', table_name: 'sale', op: 'i', before: null, after: JSON.stringify({ id: '1', c: text }), logged_at: new Date() }, logged);
        assert.equal(read.values['c'], expected, `${c.label} ${JSON.stringify(text)}`);
        assert.deepEqual(read.values, captured.op === 'insert' ? captured.after : null, `${c.label}: as the capture delivers it`);
      }
      assert.equal(tsql.sourceRow(t, { id: '1', c: null }).values['c'], null);
    }
  });

  test('a key keeps the text SQL Server printed (bound back as such), its value is normalized', () => {
    const row = tsql.sourceRow(STAMPED, { day: '2024-03-01', at: '2024-03-01T12:30:00.1234567+05:45', hash: '00FF10AB', qty: '3' });
    assert.equal(row.key, JSON.stringify(['2024-03-01', '2024-03-01T12:30:00.1234567+05:45', '00FF10AB']));
    assert.deepEqual(row.values, { day: '2024-03-01', at: '2024-03-01 06:45:00.123457+00', hash: '\\x00ff10ab', qty: '3' });
  });

  test('each type reads its text back into its own type (the styles that govern input: dates, times, binary)', () => {
    const expected: Record<string, string> = {
      tinyint: 'CONVERT(tinyint, @k)',
      smallint: 'CONVERT(smallint, @k)',
      int: 'CONVERT(int, @k)',
      bigint: 'CONVERT(bigint, @k)',
      'decimal(38,10)': 'CONVERT(decimal(38,10), @k)',
      'numeric(38,0)': 'CONVERT(numeric(38,0), @k)',
      'decimal(10,2)': 'CONVERT(decimal(10,2), @k)',
      money: 'CONVERT(money, @k)',
      smallmoney: 'CONVERT(smallmoney, @k)',
      bit: 'CONVERT(bit, @k)',
      float: 'CONVERT(float, @k)',
      real: 'CONVERT(real, @k)',
      date: 'CONVERT(date, @k, 23)',
      'time(7)': 'CONVERT(time(7), @k, 121)',
      'time(0)': 'CONVERT(time(0), @k, 121)',
      datetime: 'CONVERT(datetime, @k, 121)',
      smalldatetime: 'CONVERT(smalldatetime, @k, 121)',
      'datetime2(7)': 'CONVERT(datetime2(7), @k, 121)',
      'datetime2(0)': 'CONVERT(datetime2(0), @k, 121)',
      'datetimeoffset(7)': 'CONVERT(datetimeoffset(7), @k, 127)',
      uniqueidentifier: 'CONVERT(uniqueidentifier, @k)',
      'char(4)': 'CONVERT(char(4), @k)',
      'nchar(3)': 'CONVERT(nchar(3), @k)',
      'varchar(20)': 'CONVERT(varchar(20), @k)',
      'nvarchar(max)': 'CONVERT(nvarchar(max), @k)',
      'nvarchar(40)': 'CONVERT(nvarchar(40), @k)',
      'binary(4)': 'CONVERT(binary(4), @k, 2)',
      'varbinary(max)': 'CONVERT(varbinary(max), @k, 2)',
      rowversion: 'CONVERT(binary(8), @k, 2)',
    };
    assert.deepEqual(Object.keys(expected).sort(), TYPE_CASES.map((c) => c.label).sort(), 'one expectation per type case');
    for (const c of TYPE_CASES) assert.equal(mssqlTypeMapping(c.type)!.readExpr('@k'), expected[c.label], c.label);
  });
});
