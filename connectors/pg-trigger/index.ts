export { PgTriggerSource, type PgTriggerSourceOptions } from './pg-trigger-source.js';
export { PgTriggerInstaller, type PgTriggerInstallerOptions } from './installer.js';
export { XID8_CODEC } from './xid-codec.js';
export { captureSql, createLogSql, READ_SQL, HORIZON_SQL, LOG_TABLE, NOTIFY_CHANNEL } from './sql.js';
