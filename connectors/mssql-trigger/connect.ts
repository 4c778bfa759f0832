import sql from 'mssql';
import { BranchlineError } from '../../src/core/errors.js';
import { redact } from '../../src/core/logger.js';

/**
 * SQL Server URLs: `mssql://user:password@host:port/database?encrypt=true&trustServerCertificate=false`
 * (`sqlserver://` too). User and password are percent-decoded; port 1433
 * by default; a named instance is `?instanceName=SQLEXPRESS` (then the
 * SQL Browser service finds the port). Without `encrypt` the driver's
 * default (encrypted, the server's certificate checked) applies.
 */
const PARAMS = ['encrypt', 'trustServerCertificate', 'instanceName'] as const;

export interface MssqlConnectOptions {
  readonly applicationName?: string;
  readonly connectTimeoutMs?: number;
}

function urlError(role: string, reason: string): BranchlineError {
  return new BranchlineError({
    code: 'BL-C003',
    message: `the SQL Server URL of ${role} is not well formed: ${reason}.`,
    hint: 'Write it as mssql://user:password@host:1433/database?encrypt=true&trustServerCertificate=false (percent-encode @ : / in the password).',
  });
}

function flag(role: string, name: string, value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw urlError(role, `${name} must be true or false, not ${JSON.stringify(value)}`);
}

function decode(role: string, part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw urlError(role, `the ${what} has a bad percent-escape`);
  }
}

/** The mssql (tedious) configuration of a URL; BL-C003 when it is not one (the message never shows the password). */
export function parseMssqlUrl(url: string, role: string, options: MssqlConnectOptions = {}): sql.config {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw urlError(role, 'it is not a URL');
  }
  if (u.protocol !== 'mssql:' && u.protocol !== 'sqlserver:') throw urlError(role, `it starts with ${u.protocol}// instead of mssql:// or sqlserver://`);
  if (!u.hostname) throw urlError(role, 'it names no host');
  const database = decode(role, u.pathname.replace(/^\//, ''), 'database name');
  if (database.includes('/')) throw urlError(role, 'the path after the host must be just the database name');
  const config: sql.config = {
    server: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    user: decode(role, u.username, 'user name'),
    password: decode(role, u.password, 'password'),
    connectionTimeout: options.connectTimeoutMs ?? 10_000,
    options: { appName: options.applicationName ?? 'branchline' },
    pool: { max: 2, min: 0, idleTimeoutMillis: 30_000 },
  };
  if (database) config.database = database;
  if (u.port) config.port = Number(u.port);
  for (const [name, value] of u.searchParams) {
    switch (name) {
      case 'encrypt':
        config.options!.encrypt = flag(role, name, value);
        break;
      case 'trustServerCertificate':
        config.options!.trustServerCertificate = flag(role, name, value);
        break;
      case 'instanceName':
        if (!value) throw urlError(role, 'instanceName is empty');
        config.options!.instanceName = value;
        break;
      default:
        throw urlError(role, `it has the unknown parameter ${JSON.stringify(name)} (accepted: ${PARAMS.join(', ')})`);
    }
  }
  return config;
}

/** host:port/database (or host\instance/database) of a URL, never its user or password. */
export function describeMssqlUrl(url: string): string {
  try {
    const u = new URL(url);
    const instance = u.searchParams.get('instanceName');
    const where = instance ? `${u.hostname}\\${instance}` : `${u.hostname}:${u.port || '1433'}`;
    return `${where}/${decodeURIComponent(u.pathname.replace(/^\//, '')) || '(default database)'}`;
  } catch {
    return redact(url);
  }
}

const CONNECTION_CODES = new Set(['ESOCKET', 'ECONNCLOSED', 'ENOTOPEN', 'ELOGIN', 'EINSTLOOKUP', 'ETIMEOUT', 'ECONNRESET', 'ECONNREFUSED']);

/** A failed or lost connection (not an error of a statement). */
export function isMssqlConnectionError(e: unknown): boolean {
  const err = e as { name?: string; code?: string } | null;
  if (!err || e instanceof BranchlineError) return false;
  if (err.name === 'ConnectionError') return true;
  // A query's RequestError: ETIMEOUT there is a statement timeout, not a lost connection.
  return err.name !== 'RequestError' ? CONNECTION_CODES.has(err.code ?? '') : err.code === 'ECONNCLOSED' || err.code === 'ESOCKET' || err.code === 'ENOTOPEN';
}

/** A user-facing error for a failed connection: BL-D002 for a refused login, BL-D001 otherwise; never the password. */
export function mssqlConnectionError(e: unknown, url: string, role: string): BranchlineError {
  if (e instanceof BranchlineError) return e;
  const err = e as { code?: string; message?: string } | null;
  const where = `${role} SQL Server database at ${describeMssqlUrl(url)}`;
  const said = redact(err?.message ?? String(e)).replace(/\.$/, '');
  if (err?.code === 'ELOGIN' && /Cannot open database/i.test(err.message ?? '')) {
    return new BranchlineError(
      { code: 'BL-D001', message: `the ${where} does not exist or this login may not open it (${said}).`, hint: 'Check the database name at the end of the URL and that the login is a user of that database.' },
      { cause: e },
    );
  }
  if (err?.code === 'ELOGIN') {
    return new BranchlineError(
      {
        code: 'BL-D002',
        message: `the ${where} refused the user name or password (${said}).`,
        hint: 'Check the user and password in the URL (or the environment variable that holds it), and that the server accepts SQL Server logins (mixed authentication).',
      },
      { cause: e },
    );
  }
  return new BranchlineError(
    {
      code: 'BL-D001',
      message: `cannot reach the ${where}: ${said}.`,
      hint: 'Check that SQL Server is running and accepts TCP/IP connections (SQL Server Configuration Manager; Express has TCP/IP off by default), the host and port are right, and a firewall lets this machine in; branchline retries on its own while running.',
    },
    { cause: e },
  );
}

/** A connected pool (BL-C003 for a bad URL, BL-D001/BL-D002 when it cannot connect). */
export async function mssqlConnect(url: string, role: string, options: MssqlConnectOptions = {}): Promise<sql.ConnectionPool> {
  const pool = new sql.ConnectionPool(parseMssqlUrl(url, role, options));
  // An error on an idle connection must not crash the process; the next request reports it.
  pool.on('error', () => undefined);
  try {
    await pool.connect();
  } catch (e) {
    await pool.close().catch(() => undefined);
    throw mssqlConnectionError(e, url, role);
  }
  return pool;
}
