import type pg from 'pg';
import { ok, problem, type CheckResult } from './check.js';

/** What a connection's TLS state means for a database's link. */
export interface TlsState {
  /** pg_stat_ssl of this session: encrypted or not, and the protocol. */
  readonly ssl: boolean;
  readonly version: string | null;
  /** The URL's host (empty or a path: a Unix socket) and sslmode. */
  readonly host: string;
  readonly sslmode: string | null;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[?::1\]?)$/i;

/**
 * ok when encrypted and the certificate is checked, or when the database is
 * on this machine (loopback or a Unix socket: nothing crosses a network);
 * warn (BL-D011) when a link over the network is plain text, or its
 * certificate is not checked (sslmode=no-verify).
 */
export function tlsVerdict(database: string, s: TlsState): CheckResult {
  const fix = 'Add ?sslmode=verify-full&sslrootcert=/etc/branchline/ca.pem to the URL (the CA that signed the server certificate) and accept only hostssl in its pg_hba.conf; see docs/deployment.md#tls-to-hq.';
  if (s.ssl && s.sslmode === 'no-verify')
    return problem(database, 'tls', 'warn', 'BL-D011', `the link is encrypted (${s.version ?? 'TLS'}) but sslmode=no-verify checks no certificate: anyone in the path can pose as the server.`, fix);
  if (s.ssl) return ok(database, 'tls', `the link is encrypted (${s.version ?? 'TLS'}) and the server's certificate and host name are checked.`);
  if (s.host === '' || s.host.startsWith('/') || LOOPBACK.test(s.host)) return ok(database, 'tls', 'not encrypted, but the database is on this machine (loopback or a Unix socket): nothing crosses a network.');
  return problem(database, 'tls', 'warn', 'BL-D011', `the link to ${s.host} is not encrypted: passwords and rows cross the network in plain text.`, fix);
}

/** Reads this session's TLS state (pg_stat_ssl) and judges it for the URL it was opened with. */
export async function tlsCheck(database: string, db: pg.Client, url: string): Promise<CheckResult> {
  const r = (await db.query<{ ssl: boolean | null; version: string | null }>(`SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`)).rows[0];
  let host = '';
  let sslmode: string | null = null;
  try {
    const u = new URL(url);
    host = decodeURIComponent(u.hostname) || (u.searchParams.get('host') ?? '');
    sslmode = u.searchParams.get('sslmode');
  } catch {
    // Not a URL (a keyword string): judged as if remote.
    host = '?';
  }
  return tlsVerdict(database, { ssl: r?.ssl === true, version: r?.version ?? null, host, sslmode });
}
