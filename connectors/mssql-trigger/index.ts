export { MssqlTriggerSource, type MssqlTriggerSourceOptions } from './mssql-trigger-source.js';
export { MssqlTriggerInstaller, type MssqlTriggerInstallerOptions } from './installer.js';
export { ROWVERSION_CODEC, RowversionPosition } from './rowversion-codec.js';
export { describeMssqlTables, tableInfoFromCatalog, type MssqlTableInfo } from './catalog.js';
export { mssqlConnect, parseMssqlUrl, describeMssqlUrl } from './connect.js';
export { mssqlTypeMapping, mssqlTypeSql, normalizeValue, requireTypeMapping, type MssqlColumnType, type TypeMapping } from './types.js';
export { captureSql, createLogSql, triggerName, READ_SQL, HORIZON_SQL, ACK_SQL, CATALOG_SQL, LOG_TABLE, READERS_TABLE, PURGED_TABLE, ORIGIN_KEY, SET_ORIGIN_SQL } from './sql.js';
export { purgeMssqlChangeLog, type MssqlPurgeOptions, type MssqlPurgeResult } from './purge.js';
