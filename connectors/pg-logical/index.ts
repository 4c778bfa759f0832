export { PgLogicalSource, type PgLogicalSourceOptions } from './pg-logical-source.js';
export { PgLogicalInstaller, type PgLogicalInstallerOptions } from './installer.js';
export { LSN_CODEC } from './lsn-codec.js';
