import { createHash } from 'node:crypto';
import sql from 'mssql';
import type { TableId } from '../../src/core/change.js';
import type { RowversionPosition } from './rowversion-codec.js';
import { mssqlTypeMapping, type MssqlColumnType } from './types.js';

/**
 * All T-SQL of the `mssql-trigger` connector, generated in one place so
 * tests can state it exactly (needs SQL Server 2016 SP1 or later: CREATE OR
 * ALTER, STRING_ESCAPE, SESSION_CONTEXT).
 *
 * Identifiers are quoted with [] (`]` doubled); names that the trigger
 * writes into the log as data are N'' literals (`'` doubled). Every value a
 * reader sends (positions, page sizes, origins, reader names) is a bound
 * parameter (`@name`), never spliced.
 */
export const SCHEMA = 'branchline';
export const LOG_TABLE = '[branchline].[change_log]';
export const READERS_TABLE = '[branchline].[change_log_readers]';
export const PURGED_TABLE = '[branchline].[change_log_purged]';
/** The session key branchline's own writers set (`sp_set_session_context`): their rows carry it as `origin`. */
export const ORIGIN_KEY = 'branchline.origin';
export const TRIGGER_PREFIX = 'branchline_capture_';

export function quoteName(name: string): string {
  return `[${name.replace(/]/g, ']]')}]`;
}

export function qualifiedName(t: TableId): string {
  return `${quoteName(t.schema)}.${quoteName(t.table)}`;
}

/** A Unicode string literal: for catalog names the SQL must carry as text, never for data values. */
export function nLiteral(text: string): string {
  return `N'${text.replace(/'/g, "''")}'`;
}

/** The change log and the readers' table, idempotently: one batch each. */
export function createLogSql(): string[] {
  return [
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
  ];
}

/** Whether the change log exists (non-null `id`). */
export const INSTALLED_SQL = `SELECT OBJECT_ID(N'[branchline].[change_log]', N'U') AS id`;

/**
 * The capture trigger's name in the table's schema:
 * `branchline_capture_<table>`, or, when that would pass SQL Server's 128
 * characters, the table name cut to 100 and a hash of the whole name.
 */
export function triggerName(t: TableId): string {
  const plain = `${TRIGGER_PREFIX}${t.table}`;
  if (plain.length <= 128) return plain;
  const hash = createHash('sha256').update(`${t.schema}.${t.table}`).digest('hex').slice(0, 8);
  return `${TRIGGER_PREFIX}${t.table.slice(0, 100)}_${hash}`;
}

export interface CaptureColumn {
  readonly name: string;
  readonly type: MssqlColumnType;
}

/**
 * A JSON object of every column's text built by concatenation:
 * `STRING_ESCAPE(..., 'json')` inside quotes, `null` for NULL. (FOR JSON
 * PATH would nest on a dot in a column name.)
 */
function rowJson(alias: 'd' | 'i', columns: readonly CaptureColumn[]): string {
  const parts = columns.map((c, n) => {
    const mapping = mssqlTypeMapping(c.type);
    if (!mapping) throw new Error(`no type mapping for ${c.name} (${c.type.name}): check types first (requireTypeMapping)`);
    const key = nLiteral(`${n === 0 ? '' : ','}${JSON.stringify(c.name)}:`);
    const text = mapping.textExpr(`${alias}.${quoteName(c.name)}`);
    return `\n           + ${key} + COALESCE(N'"' + STRING_ESCAPE(${text}, 'json') + N'"', N'null')`;
  });
  return `CAST(N'{' AS nvarchar(max))${parts.join('')}\n           + N'}'`;
}

/**
 * The capture trigger of one table (one batch). One change-log row per
 * affected row, set-based: `deleted` FULL OUTER JOIN `inserted` on the
 * primary key; matched rows are updates (before and after), deleted only
 * are deletes, inserted only are inserts, so an update that changes the key
 * is logged as a delete and an insert. Rows are logged deletes first, then
 * in key order (the identity follows the ORDER BY of an INSERT ... SELECT).
 */
export function captureSql(t: TableId, columns: readonly CaptureColumn[], primaryKey: readonly string[]): string {
  if (primaryKey.length === 0) throw new Error(`captureSql needs the primary key of ${t.schema}.${t.table}`);
  const k = (alias: string, c: string) => `${alias}.${quoteName(c)}`;
  const first = primaryKey[0]!;
  const on = primaryKey.map((c) => `${k('i', c)} = ${k('d', c)}`).join(' AND ');
  const order = primaryKey.map((c) => `COALESCE(${k('i', c)}, ${k('d', c)})`).join(', ');
  return `CREATE OR ALTER TRIGGER ${quoteName(t.schema)}.${quoteName(triggerName(t))} ON ${qualifiedName(t)}
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
  SET NOCOUNT ON;
  INSERT INTO ${LOG_TABLE} ([schema_name], [table_name], [op], [before], [after])
  SELECT ${nLiteral(t.schema)}, ${nLiteral(t.table)},
         CASE WHEN ${k('d', first)} IS NULL THEN 'i' WHEN ${k('i', first)} IS NULL THEN 'd' ELSE 'u' END,
         CASE WHEN ${k('d', first)} IS NOT NULL THEN ${rowJson('d', columns)} END,
         CASE WHEN ${k('i', first)} IS NOT NULL THEN ${rowJson('i', columns)} END
    FROM deleted AS d
    FULL OUTER JOIN inserted AS i ON ${on}
   ORDER BY CASE WHEN ${k('i', first)} IS NULL THEN 0 ELSE 1 END, ${order};
END`;
}

/** Every capture trigger in the database (what uninstall drops). */
export const LIST_TRIGGERS_SQL = `SELECT s.name AS schema_name, o.name AS table_name, tr.name AS trigger_name
  FROM sys.triggers AS tr
  JOIN sys.objects AS o ON o.object_id = tr.parent_id
  JOIN sys.schemas AS s ON s.schema_id = o.schema_id
 WHERE tr.parent_class = 1 AND tr.name LIKE N'branchline[_]capture[_]%'
 ORDER BY s.name, o.name, tr.name`;

export function dropTriggerSql(schema: string, trigger: string): string {
  return `DROP TRIGGER IF EXISTS ${quoteName(schema)}.${quoteName(trigger)};`;
}

/** The three tables install made, then the schema if nothing else is in it. */
export const DROP_LOG_SQL = `IF OBJECT_ID(N'[branchline].[change_log_purged]', N'U') IS NOT NULL DROP TABLE [branchline].[change_log_purged];
IF OBJECT_ID(N'[branchline].[change_log_readers]', N'U') IS NOT NULL DROP TABLE [branchline].[change_log_readers];
IF OBJECT_ID(N'[branchline].[change_log]', N'U') IS NOT NULL DROP TABLE [branchline].[change_log];
IF SCHEMA_ID(N'branchline') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sys.objects WHERE schema_id = SCHEMA_ID(N'branchline'))
  EXEC(N'DROP SCHEMA [branchline]');`;

/**
 * The bound of the next window: every transaction that wrote a rowversion
 * below it has ended (committed or rolled back), so no row can appear
 * below it later. With no transaction open it is `@@DBTS + 1`.
 */
export const HORIZON_SQL = `SELECT MIN_ACTIVE_ROWVERSION() AS bound`;

/**
 * One page of the window [@from, @bound): in log order (`id`) after
 * @lastId, without the rows written on behalf of @skipOrigin (rows without
 * an origin, the store's own writes, always come).
 */
export const READ_SQL = `SELECT TOP (@pageRows) [id], [rv], [schema_name], [table_name], [op], [before], [after], [logged_at]
  FROM [branchline].[change_log]
 WHERE [rv] >= @from AND [rv] < @bound AND [id] > @lastId
   AND (@skipOrigin IS NULL OR [origin] IS NULL OR [origin] <> @skipOrigin)
 ORDER BY [id]`;

/** Below which rowversion the log was purged (zero when never): a reader behind it needs an initial load. */
export const PURGED_SQL = `SELECT COALESCE((SELECT [purged_below] FROM [branchline].[change_log_purged]), 0x0000000000000000) AS purged_below`;

/** What a purge is bounded by: the readers' lowest position and the oldest row within the retention (@retentionSeconds). */
export const PURGE_FACTS_SQL = `SELECT (SELECT MIN([position]) FROM [branchline].[change_log_readers]) AS min_reader,
       (SELECT MIN([rv]) FROM [branchline].[change_log] WHERE [logged_at] >= DATEADD(second, -@retentionSeconds, SYSUTCDATETIME())) AS retention_bound`;

/** One reader's recorded position (a store's change table has one reader: its up pipeline). */
export const READER_POSITION_SQL = `SELECT [position] FROM [branchline].[change_log_readers] WHERE [reader] = @reader`;

/** READER_POSITION_SQL's parameter. */
export function readerParams(reader: string): BoundParam[] {
  return [{ name: 'reader', type: sql.NVarChar(128), value: reader }];
}

/** Records how far the log is purged (only forward), before anything is deleted. */
export const MARK_PURGED_SQL = `UPDATE [branchline].[change_log_purged] SET [purged_below] = @bound, [purged_at] = SYSUTCDATETIME()
 WHERE [one] = 1 AND [purged_below] < @bound;
IF @@ROWCOUNT = 0 AND NOT EXISTS (SELECT 1 FROM [branchline].[change_log_purged])
  INSERT INTO [branchline].[change_log_purged] ([one], [purged_below]) VALUES (1, @bound);`;

/** One batch of the purge (a short transaction each). */
export const PURGE_SQL = `DELETE TOP (@batchRows) FROM [branchline].[change_log] WHERE [rv] < @bound`;

/** The readers a purge left behind. */
export const READERS_BEHIND_SQL = `SELECT [reader] FROM [branchline].[change_log_readers] WHERE [position] < @bound ORDER BY [reader]`;

/** Records how far a reader has applied (only forward). */
export const ACK_SQL = `UPDATE [branchline].[change_log_readers] SET [position] = @position, [acked_at] = SYSUTCDATETIME()
 WHERE [reader] = @reader AND [position] < @position;
IF @@ROWCOUNT = 0 AND NOT EXISTS (SELECT 1 FROM [branchline].[change_log_readers] WHERE [reader] = @reader)
  INSERT INTO [branchline].[change_log_readers] ([reader], [position]) VALUES (@reader, @position);`;

/**
 * A table's columns (base system type: alias types resolve to theirs, CLR
 * types keep their own name) and, second result, its unique keys (primary
 * key first) without filtered or disabled indexes. @schema, @table.
 */
export const CATALOG_SQL = `SELECT s.name AS schema_name, t.name AS table_name, c.column_id, c.name AS column_name,
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
 ORDER BY i.is_primary_key DESC, i.index_id, ic.key_ordinal;`;

/** Sets the session marker on a connection: what that session writes is logged with this origin. */
export const SET_ORIGIN_SQL = `EXEC sp_set_session_context N'branchline.origin', @origin`;

/** Whether a table has its capture trigger (@table: the quoted qualified name, bound as text; @trigger). */
export const TRIGGER_EXISTS_SQL = `SELECT COUNT(*) AS n FROM sys.triggers WHERE parent_id = OBJECT_ID(@table) AND name = @trigger`;

/** The server's major version (13 is SQL Server 2016; NULL before 2012). */
export const VERSION_SQL = `SELECT CAST(SERVERPROPERTY('ProductMajorVersion') AS int) AS major, CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition`;

/** A value sent beside a statement: the only way a value reaches SQL Server. */
export interface BoundParam {
  readonly name: string;
  readonly type: sql.ISqlType | (() => sql.ISqlType);
  readonly value: unknown;
}

export function bind(request: sql.Request, params: readonly BoundParam[]): sql.Request {
  for (const p of params) request.input(p.name, p.type, p.value);
  return request;
}

/** READ_SQL's parameters. */
export function readParams(p: {
  readonly from: RowversionPosition;
  readonly bound: RowversionPosition;
  readonly lastId: string;
  readonly pageRows: number;
  readonly skipOrigin: string | null;
}): BoundParam[] {
  return [
    { name: 'pageRows', type: sql.Int, value: p.pageRows },
    { name: 'from', type: sql.VarBinary(8), value: p.from.toBuffer() },
    { name: 'bound', type: sql.VarBinary(8), value: p.bound.toBuffer() },
    { name: 'lastId', type: sql.BigInt, value: p.lastId },
    { name: 'skipOrigin', type: sql.NVarChar(64), value: p.skipOrigin },
  ];
}

/** ACK_SQL's parameters. */
export function ackParams(reader: string, position: RowversionPosition): BoundParam[] {
  return [
    { name: 'reader', type: sql.NVarChar(128), value: reader },
    { name: 'position', type: sql.VarBinary(8), value: position.toBuffer() },
  ];
}

/** CATALOG_SQL's parameters. */
export function catalogParams(t: TableId): BoundParam[] {
  return [
    { name: 'schema', type: sql.NVarChar(128), value: t.schema },
    { name: 'table', type: sql.NVarChar(128), value: t.table },
  ];
}

/** TRIGGER_EXISTS_SQL's parameters: the table's quoted name is a value here (OBJECT_ID reads it). */
export function triggerExistsParams(t: TableId): BoundParam[] {
  return [
    { name: 'table', type: sql.NVarChar(300), value: qualifiedName(t) },
    { name: 'trigger', type: sql.NVarChar(128), value: triggerName(t) },
  ];
}

/** PURGE_FACTS_SQL's parameter. */
export function purgeFactsParams(retentionHours: number): BoundParam[] {
  return [{ name: 'retentionSeconds', type: sql.Int, value: Math.round(retentionHours * 3600) }];
}

/** MARK_PURGED_SQL's, PURGE_SQL's (with batchRows) and READERS_BEHIND_SQL's parameters. */
export function purgeParams(bound: RowversionPosition, batchRows?: number): BoundParam[] {
  const params: BoundParam[] = [{ name: 'bound', type: sql.VarBinary(8), value: bound.toBuffer() }];
  if (batchRows !== undefined) params.push({ name: 'batchRows', type: sql.Int, value: batchRows });
  return params;
}

/** SET_ORIGIN_SQL's parameter. */
export function originParams(origin: string): BoundParam[] {
  return [{ name: 'origin', type: sql.NVarChar(64), value: origin }];
}
