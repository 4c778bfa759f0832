export { PgTriggerSource, type PgTriggerSourceOptions } from './pg-trigger-source.js';
export { PgTriggerInstaller, type PgTriggerInstallerOptions } from './installer.js';
export { afterWindow, XID8_CODEC, xidPosition, type XidPosition } from './xid-codec.js';
export { purgeChangeLog, type PurgeOptions, type PurgeResult } from './purge.js';
export { captureSql, createLogSql, TXNS_SQL, ROWS_SQL, HORIZON_SQL, LOG_TABLE, NOTIFY_CHANNEL, READERS_TABLE, PURGED_TABLE, ACK_SQL } from './sql.js';
