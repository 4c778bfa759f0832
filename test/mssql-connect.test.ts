import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import sql from 'mssql';
import { describeMssqlUrl, isMssqlConnectionError, mssqlConnect, mssqlConnectionError, parseMssqlUrl } from '../connectors/mssql-trigger/connect.js';
import { BranchlineError } from '../src/core/errors.js';

const SECRET = 'S3cr:t@/pw%';
const URL_WITH_SECRET = `mssql://branchline:${encodeURIComponent(SECRET)}@erp-s001.local:14330/Retail Shop?encrypt=true&trustServerCertificate=true`;

function isError(code: string, ...parts: (string | RegExp)[]) {
  return (e: unknown) => {
    assert.ok(e instanceof BranchlineError, String(e));
    assert.equal(e.code, code);
    for (const p of parts) typeof p === 'string' ? assert.ok(e.message.includes(p), `${e.message} has ${p}`) : assert.match(e.message, p);
    assert.ok(!e.message.includes(SECRET) && !e.message.includes(encodeURIComponent(SECRET)) && !e.message.includes('S3cr'), `no password in: ${e.message}`);
    assert.ok(!/\n\s+at /.test(e.message), 'no stack trace');
    return true;
  };
}

describe('mssql-trigger URLs', () => {
  test('user, password (percent-decoded), host, port, database and the TLS flags', () => {
    const c = parseMssqlUrl(URL_WITH_SECRET, 'store S001');
    assert.equal(c.server, 'erp-s001.local');
    assert.equal(c.port, 14330);
    assert.equal(c.database, 'Retail Shop');
    assert.equal(c.user, 'branchline');
    assert.equal(c.password, SECRET);
    assert.equal(c.options?.encrypt, true);
    assert.equal(c.options?.trustServerCertificate, true);
    assert.equal(c.options?.appName, 'branchline');
  });

  test('sqlserver:// too; defaults: port 1433 (none set), driver defaults for TLS; a named instance', () => {
    const c = parseMssqlUrl('sqlserver://sa:pw@10.0.0.5/erp?instanceName=SQLEXPRESS&encrypt=false', 'store S002', { applicationName: 'branchline-install' });
    assert.equal(c.server, '10.0.0.5');
    assert.equal(c.port, undefined);
    assert.equal(c.options?.instanceName, 'SQLEXPRESS');
    assert.equal(c.options?.encrypt, false);
    assert.equal(c.options?.trustServerCertificate, undefined);
    assert.equal(c.options?.appName, 'branchline-install');
    assert.equal(describeMssqlUrl('sqlserver://sa:pw@10.0.0.5/erp?instanceName=SQLEXPRESS'), '10.0.0.5\\SQLEXPRESS/erp');
    assert.equal(describeMssqlUrl(URL_WITH_SECRET), 'erp-s001.local:14330/Retail Shop');
    assert.equal(describeMssqlUrl('mssql://sa:pw@db'), 'db:1433/(default database)');
  });

  test('a URL that is not one is BL-C003 naming the store and the problem, never the password', () => {
    const bad: [string, string][] = [
      [`postgres://branchline:${encodeURIComponent(SECRET)}@h/db`, 'starts with postgres:// instead of mssql:// or sqlserver://'],
      [`mssql://branchline:${encodeURIComponent(SECRET)}@h/db?encrypt=yes`, 'encrypt must be true or false, not "yes"'],
      [`mssql://branchline:${encodeURIComponent(SECRET)}@h/db?encrpyt=true`, 'unknown parameter "encrpyt" (accepted: encrypt, trustServerCertificate, instanceName)'],
      [`mssql://branchline:${encodeURIComponent(SECRET)}@h/db/x`, 'the path after the host must be just the database name'],
      [`mssql://branchline:${SECRET}@h/db`, 'is not well formed'],
      ['not a url', 'it is not a URL'],
    ];
    for (const [url, says] of bad) assert.throws(() => parseMssqlUrl(url, 'store S001'), isError('BL-C003', 'the SQL Server URL of store S001 is not well formed', says), url);
  });
});

describe('mssql-trigger connection errors', () => {
  test('a refused login is BL-D002; a database it cannot open BL-D001; both name the store and where', () => {
    const login = new sql.ConnectionError("Login failed for user 'branchline'.", 'ELOGIN');
    assert.ok(isMssqlConnectionError(login));
    assert.throws(() => {
      throw mssqlConnectionError(login, URL_WITH_SECRET, 'store S001');
    }, isError('BL-D002', "the store S001 SQL Server database at erp-s001.local:14330/Retail Shop refused the user name or password (Login failed for user 'branchline')."));
    const noDb = new sql.ConnectionError('Cannot open database "Retail Shop" requested by the login. The login failed.', 'ELOGIN');
    assert.throws(() => {
      throw mssqlConnectionError(noDb, URL_WITH_SECRET, 'store S001');
    }, isError('BL-D001', 'does not exist or this login may not open it'));
  });

  test('a driver message that carries a URL with a password is redacted', () => {
    const e = new sql.ConnectionError(`Failed to connect to mssql://branchline:${SECRET.replace('@', '')}@erp-s001.local:14330 - getaddrinfo ENOTFOUND`, 'ESOCKET');
    assert.throws(() => {
      throw mssqlConnectionError(e, URL_WITH_SECRET, 'store S001');
    }, isError('BL-D001', 'cannot reach the store S001 SQL Server database at erp-s001.local:14330/Retail Shop'));
  });

  test('a statement error is not a connection error; a statement timeout neither', () => {
    assert.equal(isMssqlConnectionError(new sql.RequestError('Invalid object name', 'EREQUEST')), false);
    assert.equal(isMssqlConnectionError(new sql.RequestError('Timeout: Request failed to complete in 15000ms', 'ETIMEOUT')), false);
    assert.equal(isMssqlConnectionError(new sql.RequestError('Connection lost - read ECONNRESET', 'ECONNCLOSED')), true);
  });

  test('connecting to a port nobody listens on is BL-D001 with a sentence saying what to check', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const url = `mssql://branchline:${encodeURIComponent(SECRET)}@127.0.0.1:${port}/erp?encrypt=false`;
    await assert.rejects(
      mssqlConnect(url, 'store S009', { connectTimeoutMs: 3000 }),
      isError('BL-D001', `cannot reach the store S009 SQL Server database at 127.0.0.1:${port}/erp`, /TCP\/IP/),
    );
  });
});
