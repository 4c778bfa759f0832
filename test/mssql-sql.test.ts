import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACK_SQL,
  ackParams,
  CATALOG_SQL,
  catalogParams,
  captureSql,
  createLogSql,
  DROP_LOG_SQL,
  dropTriggerSql,
  HORIZON_SQL,
  INSTALLED_SQL,
  LIST_TRIGGERS_SQL,
  MARK_PURGED_SQL,
  originParams,
  PURGE_FACTS_SQL,
  PURGE_SQL,
  PURGED_SQL,
  purgeFactsParams,
  purgeParams,
  READERS_BEHIND_SQL,
  READER_POSITION_SQL,
  READ_SQL,
  readParams,
  SET_ORIGIN_SQL,
  TRIGGER_EXISTS_SQL,
  triggerExistsParams,
  triggerName,
  type BoundParam,
  type CaptureColumn,
} from '../connectors/mssql-trigger/sql.js';
import { RowversionPosition } from '../connectors/mssql-trigger/rowversion-codec.js';
import type { MssqlColumnType } from '../connectors/mssql-trigger/types.js';

/**
 * The T-SQL of the mssql-trigger connector, stated exactly. No SQL Server
 * runs here: these texts are what was reviewed against Microsoft's T-SQL
 * reference; a live check needs BRANCHLINE_TEST_MSSQL_URL (the contract suite).
 */

const t = (name: string, maxLength: number, precision = 0, scale = 0): MssqlColumnType => ({ name, maxLength, precision, scale });

/** A sales line with a composite key and one column of every supported type. */
const LINE_COLUMNS: CaptureColumn[] = (
  [
    ['store_id', t('int', 4, 10)],
    ['line_no', t('smallint', 2, 5)],
    ['qty', t('tinyint', 1, 3)],
    ['big', t('bigint', 8, 19)],
    ['price', t('decimal', 9, 10, 2)],
    ['total', t('money', 8, 19, 4)],
    ['tip', t('smallmoney', 4, 10, 4)],
    ['paid', t('bit', 1, 1)],
    ['ratio', t('float', 8, 53)],
    ['weight', t('real', 4, 24)],
    ['day', t('date', 3, 10)],
    ['at_time', t('time', 5, 16, 7)],
    ['sold_at', t('datetime', 8, 23, 3)],
    ['short_at', t('smalldatetime', 4, 16)],
    ['exact_at', t('datetime2', 8, 27, 7)],
    ['zoned_at', t('datetimeoffset', 10, 34, 7)],
    ['guid', t('uniqueidentifier', 16)],
    ['code', t('char', 4)],
    ['ncode', t('nchar', 6)],
    ['name', t('varchar', 40)],
    ['note', t('nvarchar', -1)],
    ['hash', t('binary', 4)],
    ['blob', t('varbinary', -1)],
    ['ver', t('timestamp', 8)],
  ] as const
).map(([name, type]) => ({ name, type }));

describe('mssql-trigger install SQL', () => {
  test('the change log and the readers table, each created only when missing', () => {
    assert.deepEqual(createLogSql(), [
      `IF SCHEMA_ID(N'branchline') IS NULL EXEC(N'CREATE SCHEMA [branchline] AUTHORIZATION [dbo]');`,
      `IF OBJECT_ID(N'[branchline].[change_log]', N'U') IS NULL
CREATE TABLE [branchline].[change_log] (
  [id]          bigint IDENTITY(1,1) NOT NULL PRIMARY KEY,
  [rv]          rowversion NOT NULL,
  [schema_name] sysname NOT NULL,
  [table_name]  sysname NOT NULL,
  [op]          char(1) NOT NULL CHECK ([op] IN ('i', 'u', 'd')),
  [before]      nvarchar(max) NULL,
  [after]       nvarchar(max) NULL,
  [logged_at]   datetime2(6) NOT NULL DEFAULT SYSUTCDATETIME(),
  [origin]      nvarchar(64) NULL DEFAULT CAST(SESSION_CONTEXT(N'branchline.origin') AS nvarchar(64))
);`,
      `IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'[branchline].[change_log]') AND name = N'change_log_rv')
CREATE UNIQUE INDEX [change_log_rv] ON [branchline].[change_log] ([rv]);`,
      `IF OBJECT_ID(N'[branchline].[change_log_readers]', N'U') IS NULL
CREATE TABLE [branchline].[change_log_readers] (
  [reader]   nvarchar(128) NOT NULL PRIMARY KEY,
  [position] binary(8) NOT NULL,
  [acked_at] datetime2(6) NOT NULL DEFAULT SYSUTCDATETIME()
);`,
      `IF OBJECT_ID(N'[branchline].[change_log_purged]', N'U') IS NULL
CREATE TABLE [branchline].[change_log_purged] (
  [one]          bit NOT NULL PRIMARY KEY DEFAULT 1 CHECK ([one] = 1),
  [purged_below] binary(8) NOT NULL,
  [purged_at]    datetime2(6) NOT NULL DEFAULT SYSUTCDATETIME()
);`,
    ]);
    assert.equal(INSTALLED_SQL, `SELECT OBJECT_ID(N'[branchline].[change_log]', N'U') AS id`);
  });

  test('the capture trigger of a table with a composite key and a column of every supported type', () => {
    assert.equal(
      captureSql({ schema: 'sales', table: 'line' }, LINE_COLUMNS, ['store_id', 'line_no']),
      `CREATE OR ALTER TRIGGER [sales].[branchline_capture_line] ON [sales].[line]
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
  SET NOCOUNT ON;
  INSERT INTO [branchline].[change_log] ([schema_name], [table_name], [op], [before], [after])
  SELECT N'sales', N'line',
         CASE WHEN d.[store_id] IS NULL THEN 'i' WHEN i.[store_id] IS NULL THEN 'd' ELSE 'u' END,
         CASE WHEN d.[store_id] IS NOT NULL THEN CAST(N'{' AS nvarchar(max))
           + N'"store_id":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(20), d.[store_id]), 'json') + N'"', N'null')
           + N',"line_no":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(20), d.[line_no]), 'json') + N'"', N'null')
           + N',"qty":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(20), d.[qty]), 'json') + N'"', N'null')
           + N',"big":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(20), d.[big]), 'json') + N'"', N'null')
           + N',"price":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(60), d.[price]), 'json') + N'"', N'null')
           + N',"total":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(30), d.[total], 2), 'json') + N'"', N'null')
           + N',"tip":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(30), d.[tip], 2), 'json') + N'"', N'null')
           + N',"paid":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nchar(1), d.[paid]), 'json') + N'"', N'null')
           + N',"ratio":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(30), d.[ratio], 3), 'json') + N'"', N'null')
           + N',"weight":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(30), d.[weight], 3), 'json') + N'"', N'null')
           + N',"day":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(10), d.[day], 23), 'json') + N'"', N'null')
           + N',"at_time":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(16), d.[at_time], 121), 'json') + N'"', N'null')
           + N',"sold_at":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(23), d.[sold_at], 121), 'json') + N'"', N'null')
           + N',"short_at":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(23), d.[short_at], 121), 'json') + N'"', N'null')
           + N',"exact_at":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(27), d.[exact_at], 121), 'json') + N'"', N'null')
           + N',"zoned_at":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(34), d.[zoned_at], 127), 'json') + N'"', N'null')
           + N',"guid":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nchar(36), d.[guid]), 'json') + N'"', N'null')
           + N',"code":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), d.[code]), 'json') + N'"', N'null')
           + N',"ncode":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), d.[ncode]), 'json') + N'"', N'null')
           + N',"name":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), d.[name]), 'json') + N'"', N'null')
           + N',"note":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), d.[note]), 'json') + N'"', N'null')
           + N',"hash":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), d.[hash], 2), 'json') + N'"', N'null')
           + N',"blob":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), d.[blob], 2), 'json') + N'"', N'null')
           + N',"ver":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), d.[ver], 2), 'json') + N'"', N'null')
           + N'}' END,
         CASE WHEN i.[store_id] IS NOT NULL THEN CAST(N'{' AS nvarchar(max))
           + N'"store_id":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(20), i.[store_id]), 'json') + N'"', N'null')
           + N',"line_no":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(20), i.[line_no]), 'json') + N'"', N'null')
           + N',"qty":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(20), i.[qty]), 'json') + N'"', N'null')
           + N',"big":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(20), i.[big]), 'json') + N'"', N'null')
           + N',"price":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(60), i.[price]), 'json') + N'"', N'null')
           + N',"total":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(30), i.[total], 2), 'json') + N'"', N'null')
           + N',"tip":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(30), i.[tip], 2), 'json') + N'"', N'null')
           + N',"paid":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nchar(1), i.[paid]), 'json') + N'"', N'null')
           + N',"ratio":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(30), i.[ratio], 3), 'json') + N'"', N'null')
           + N',"weight":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(30), i.[weight], 3), 'json') + N'"', N'null')
           + N',"day":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(10), i.[day], 23), 'json') + N'"', N'null')
           + N',"at_time":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(16), i.[at_time], 121), 'json') + N'"', N'null')
           + N',"sold_at":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(23), i.[sold_at], 121), 'json') + N'"', N'null')
           + N',"short_at":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(23), i.[short_at], 121), 'json') + N'"', N'null')
           + N',"exact_at":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(27), i.[exact_at], 121), 'json') + N'"', N'null')
           + N',"zoned_at":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(34), i.[zoned_at], 127), 'json') + N'"', N'null')
           + N',"guid":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nchar(36), i.[guid]), 'json') + N'"', N'null')
           + N',"code":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), i.[code]), 'json') + N'"', N'null')
           + N',"ncode":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), i.[ncode]), 'json') + N'"', N'null')
           + N',"name":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), i.[name]), 'json') + N'"', N'null')
           + N',"note":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), i.[note]), 'json') + N'"', N'null')
           + N',"hash":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), i.[hash], 2), 'json') + N'"', N'null')
           + N',"blob":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), i.[blob], 2), 'json') + N'"', N'null')
           + N',"ver":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(max), i.[ver], 2), 'json') + N'"', N'null')
           + N'}' END
    FROM deleted AS d
    FULL OUTER JOIN inserted AS i ON i.[store_id] = d.[store_id] AND i.[line_no] = d.[line_no]
   ORDER BY CASE WHEN i.[store_id] IS NULL THEN 0 ELSE 1 END, COALESCE(i.[store_id], d.[store_id]), COALESCE(i.[line_no], d.[line_no]);
END`,
    );
  });

  test('names are quoted with [] and ] doubled; names logged as data are N literals with quotes doubled', () => {
    const sql = captureSql({ schema: "o'shop", table: 'we]ird' }, [{ name: `it's.odd"`, type: t('int', 4, 10) }], [`it's.odd"`]);
    assert.equal(
      sql,
      `CREATE OR ALTER TRIGGER [o'shop].[branchline_capture_we]]ird] ON [o'shop].[we]]ird]
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
  SET NOCOUNT ON;
  INSERT INTO [branchline].[change_log] ([schema_name], [table_name], [op], [before], [after])
  SELECT N'o''shop', N'we]ird',
         CASE WHEN d.[it's.odd"] IS NULL THEN 'i' WHEN i.[it's.odd"] IS NULL THEN 'd' ELSE 'u' END,
         CASE WHEN d.[it's.odd"] IS NOT NULL THEN CAST(N'{' AS nvarchar(max))
           + N'"it''s.odd\\"":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(20), d.[it's.odd"]), 'json') + N'"', N'null')
           + N'}' END,
         CASE WHEN i.[it's.odd"] IS NOT NULL THEN CAST(N'{' AS nvarchar(max))
           + N'"it''s.odd\\"":' + COALESCE(N'"' + STRING_ESCAPE(CONVERT(nvarchar(20), i.[it's.odd"]), 'json') + N'"', N'null')
           + N'}' END
    FROM deleted AS d
    FULL OUTER JOIN inserted AS i ON i.[it's.odd"] = d.[it's.odd"]
   ORDER BY CASE WHEN i.[it's.odd"] IS NULL THEN 0 ELSE 1 END, COALESCE(i.[it's.odd"], d.[it's.odd"]);
END`,
    );
    // The JSON key the trigger writes is the column's name exactly.
    assert.deepEqual(Object.keys(JSON.parse(`{"it's.odd\\"":"1"}`)), [`it's.odd"`]);
  });

  test('trigger names stay within 128 characters and apart for long table names', () => {
    assert.equal(triggerName({ schema: 'dbo', table: 'item' }), 'branchline_capture_item');
    const long = 'x'.repeat(128);
    const a = triggerName({ schema: 'dbo', table: long });
    const b = triggerName({ schema: 'dbo', table: `${'x'.repeat(100)}y`.padEnd(128, 'x') });
    assert.ok(a.length <= 128 && b.length <= 128, `${a.length}, ${b.length}`);
    assert.match(a, /^branchline_capture_x{100}_[0-9a-f]{8}$/);
    assert.notEqual(a, b);
    assert.equal(triggerName({ schema: 'dbo', table: 'x'.repeat(109) }), `branchline_capture_${'x'.repeat(109)}`, '128 characters exactly: kept whole');
  });

  test('a table without a primary key gets no trigger', () => {
    assert.throws(() => captureSql({ schema: 'dbo', table: 'heap' }, LINE_COLUMNS, []), /primary key/);
  });

  test('whether a trigger is there (the table name is a bound value)', () => {
    assert.equal(TRIGGER_EXISTS_SQL, `SELECT COUNT(*) AS n FROM sys.triggers WHERE parent_id = OBJECT_ID(@table) AND name = @trigger`);
    assert.deepEqual(values(triggerExistsParams({ schema: 'dbo', table: 'we]ird' })), { table: '[dbo].[we]]ird]', trigger: 'branchline_capture_we]ird' });
  });
});

describe('mssql-trigger uninstall SQL', () => {
  test('finds the capture triggers by name, drops each, then the three tables and the schema when empty', () => {
    assert.equal(
      LIST_TRIGGERS_SQL,
      `SELECT s.name AS schema_name, o.name AS table_name, tr.name AS trigger_name
  FROM sys.triggers AS tr
  JOIN sys.objects AS o ON o.object_id = tr.parent_id
  JOIN sys.schemas AS s ON s.schema_id = o.schema_id
 WHERE tr.parent_class = 1 AND tr.name LIKE N'branchline[_]capture[_]%'
 ORDER BY s.name, o.name, tr.name`,
    );
    assert.equal(dropTriggerSql('sales', 'branchline_capture_we]ird'), 'DROP TRIGGER IF EXISTS [sales].[branchline_capture_we]]ird];');
    assert.equal(
      DROP_LOG_SQL,
      `IF OBJECT_ID(N'[branchline].[change_log_purged]', N'U') IS NOT NULL DROP TABLE [branchline].[change_log_purged];
IF OBJECT_ID(N'[branchline].[change_log_readers]', N'U') IS NOT NULL DROP TABLE [branchline].[change_log_readers];
IF OBJECT_ID(N'[branchline].[change_log]', N'U') IS NOT NULL DROP TABLE [branchline].[change_log];
IF SCHEMA_ID(N'branchline') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sys.objects WHERE schema_id = SCHEMA_ID(N'branchline'))
  EXEC(N'DROP SCHEMA [branchline]');`,
    );
  });
});

/** The names a statement uses (`@name`, not `@@ROWCOUNT`). */
function paramNames(sql: string): string[] {
  return [...new Set([...sql.matchAll(/(?<!@)@([A-Za-z_]\w*)/g)].map((m) => m[1]!))].sort();
}

function values(params: readonly BoundParam[]): Record<string, unknown> {
  return Object.fromEntries(params.map((p) => [p.name, Buffer.isBuffer(p.value) ? p.value.toString('hex') : p.value]));
}

describe('mssql-trigger reader SQL', () => {
  test('the window bound, read first', () => {
    assert.equal(HORIZON_SQL, 'SELECT MIN_ACTIVE_ROWVERSION() AS bound');
  });

  test('a page of the window [from, bound), in log order, without the skipped origin', () => {
    assert.equal(
      READ_SQL,
      `SELECT TOP (@pageRows) [id], [rv], [schema_name], [table_name], [op], [before], [after], [logged_at]
  FROM [branchline].[change_log]
 WHERE [rv] >= @from AND [rv] < @bound AND [id] > @lastId
   AND (@skipOrigin IS NULL OR [origin] IS NULL OR [origin] <> @skipOrigin)
 ORDER BY [id]`,
    );
  });

  test('the acknowledgement moves a reader only forward', () => {
    assert.equal(
      ACK_SQL,
      `UPDATE [branchline].[change_log_readers] SET [position] = @position, [acked_at] = SYSUTCDATETIME()
 WHERE [reader] = @reader AND [position] < @position;
IF @@ROWCOUNT = 0 AND NOT EXISTS (SELECT 1 FROM [branchline].[change_log_readers] WHERE [reader] = @reader)
  INSERT INTO [branchline].[change_log_readers] ([reader], [position]) VALUES (@reader, @position);`,
    );
  });

  test('how far the log was purged, read at open and after every window', () => {
    assert.equal(PURGED_SQL, `SELECT COALESCE((SELECT [purged_below] FROM [branchline].[change_log_purged]), 0x0000000000000000) AS purged_below`);
  });

  test('the purge: its bounds, the mark written first, batches of deletes, the readers left behind', () => {
    assert.equal(
      PURGE_FACTS_SQL,
      `SELECT (SELECT MIN([position]) FROM [branchline].[change_log_readers]) AS min_reader,
       (SELECT MIN([rv]) FROM [branchline].[change_log] WHERE [logged_at] >= DATEADD(second, -@retentionSeconds, SYSUTCDATETIME())) AS retention_bound`,
    );
    assert.equal(
      MARK_PURGED_SQL,
      `UPDATE [branchline].[change_log_purged] SET [purged_below] = @bound, [purged_at] = SYSUTCDATETIME()
 WHERE [one] = 1 AND [purged_below] < @bound;
IF @@ROWCOUNT = 0 AND NOT EXISTS (SELECT 1 FROM [branchline].[change_log_purged])
  INSERT INTO [branchline].[change_log_purged] ([one], [purged_below]) VALUES (1, @bound);`,
    );
    assert.equal(PURGE_SQL, `DELETE TOP (@batchRows) FROM [branchline].[change_log] WHERE [rv] < @bound`);
    assert.equal(READER_POSITION_SQL, `SELECT [position] FROM [branchline].[change_log_readers] WHERE [reader] = @reader`);
    assert.equal(READERS_BEHIND_SQL, `SELECT [reader] FROM [branchline].[change_log_readers] WHERE [position] < @bound ORDER BY [reader]`);
  });

  test('the session marker of branchline own writers', () => {
    assert.equal(SET_ORIGIN_SQL, `EXEC sp_set_session_context N'branchline.origin', @origin`);
  });

  test('the catalog: columns with their base types, then unique keys with the primary key first', () => {
    assert.equal(
      CATALOG_SQL,
      `SELECT s.name AS schema_name, t.name AS table_name, c.column_id, c.name AS column_name,
       CASE WHEN ty.is_assembly_type = 1 THEN ty.name ELSE TYPE_NAME(c.system_type_id) END AS type_name,
       c.max_length, c.precision, c.scale, c.is_nullable, c.is_identity, c.is_computed,
       CAST(CASE WHEN c.default_object_id <> 0 THEN 1 ELSE 0 END AS bit) AS has_default
  FROM sys.tables AS t
  JOIN sys.schemas AS s ON s.schema_id = t.schema_id
  JOIN sys.columns AS c ON c.object_id = t.object_id
  JOIN sys.types AS ty ON ty.user_type_id = c.user_type_id
 WHERE s.name = @schema AND t.name = @table
 ORDER BY c.column_id;
SELECT i.index_id, i.is_primary_key, c.name AS column_name
  FROM sys.tables AS t
  JOIN sys.schemas AS s ON s.schema_id = t.schema_id
  JOIN sys.indexes AS i ON i.object_id = t.object_id
  JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
  JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
 WHERE s.name = @schema AND t.name = @table
   AND i.is_unique = 1 AND i.has_filter = 0 AND i.is_disabled = 0 AND ic.is_included_column = 0
 ORDER BY i.is_primary_key DESC, i.index_id, ic.key_ordinal;`,
    );
  });

  test('values are bound, never spliced: each statement names exactly the parameters sent with it', () => {
    const hostile = `HQ'); DROP TABLE [branchline].[change_log]; --`;
    const cases: [string, BoundParam[]][] = [
      [
        READ_SQL,
        readParams({ from: RowversionPosition.parse('00000000000007d1'), bound: RowversionPosition.parse('0000000000000800'), lastId: '42', pageRows: 500, skipOrigin: hostile }),
      ],
      [ACK_SQL, ackParams(hostile, RowversionPosition.parse('0000000000000800'))],
      [CATALOG_SQL, catalogParams({ schema: hostile, table: 'we]ird' })],
      [TRIGGER_EXISTS_SQL, triggerExistsParams({ schema: 'dbo', table: hostile })],
      [SET_ORIGIN_SQL, originParams(hostile)],
      [PURGE_FACTS_SQL, purgeFactsParams(168)],
      [MARK_PURGED_SQL, purgeParams(RowversionPosition.parse('0000000000000800'))],
      [PURGE_SQL, purgeParams(RowversionPosition.parse('0000000000000800'), 50_000)],
      [READERS_BEHIND_SQL, purgeParams(RowversionPosition.parse('0000000000000800'))],
    ];
    for (const [sql, params] of cases) {
      assert.deepEqual(params.map((p) => p.name).sort(), paramNames(sql), sql.slice(0, 40));
      assert.ok(!sql.includes('DROP TABLE [branchline].[change_log]; --'));
    }
    assert.deepEqual(values(cases[0]![1]), { pageRows: 500, from: '00000000000007d1', bound: '0000000000000800', lastId: '42', skipOrigin: hostile });
    assert.deepEqual(values(cases[1]![1]), { reader: hostile, position: '0000000000000800' });
    assert.deepEqual(values(cases[2]![1]), { schema: hostile, table: 'we]ird' });
    assert.deepEqual(values(cases[4]![1]), { origin: hostile });
    assert.deepEqual(values(cases[5]![1]), { retentionSeconds: 604_800 });
    assert.deepEqual(values(cases[7]![1]), { bound: '0000000000000800', batchRows: 50_000 });
  });
});
