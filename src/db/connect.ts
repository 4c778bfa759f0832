import pg from 'pg';
import { BranchlineError, isBranchlineError } from '../core/errors.js';
import { redact } from '../core/logger.js';

export interface ConnectOptions {
  /** Who is connecting, for messages: "HQ", "store S001". */
  readonly role: string;
  readonly applicationName?: string;
  readonly connectTimeoutMs?: number;
  readonly statementTimeoutMs?: number;
  /**
   * Client-side deadline for every query's answer: past it the query fails
   * with BL-S010 and the connection is dropped (destroyed, no goodbye). What
   * a connection that hangs without a reset needs (a firewall that drops
   * packets, a dead link): TCP keepalives do not fire while a request waits
   * for its answer, and retransmissions take minutes to give up.
   *
   * Not for a client that runs `COPY ... TO STDOUT` through pg-copy-streams:
   * its copy-to stream never calls the query's callback, so pg's read timer
   * would not be cleared and would fail the finished stream later (COPY FROM
   * does call it, so the sinks may use it).
   */
  readonly readTimeoutMs?: number;
  readonly replication?: boolean;
}

/** host:port/database of a URL, never its password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    const db = u.pathname.replace(/^\//, '') || '(default database)';
    return `${u.hostname || 'localhost'}:${u.port || '5432'}/${db}`;
  } catch {
    return redact(url);
  }
}

/**
 * Session settings that make text values unambiguous both ways: ISO dates,
 * full float precision, and UTC so timestamptz text carries +00.
 */
const SESSION_OPTIONS = '-c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=3 -c TimeZone=UTC';

/** Every value as PostgreSQL prints it (no parsing into JS numbers or dates): what mappings read and compare. */
export const TEXT_VALUES = { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig;

export function clientConfig(url: string, options: ConnectOptions): pg.ClientConfig {
  const cfg: pg.ClientConfig & { replication?: string } = {
    connectionString: url,
    application_name: options.applicationName ?? 'branchline',
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    options: SESSION_OPTIONS,
  };
  if (options.statementTimeoutMs) cfg.statement_timeout = options.statementTimeoutMs;
  if (options.readTimeoutMs) cfg.query_timeout = options.readTimeoutMs;
  if (options.replication) cfg.replication = 'database';
  return cfg;
}

/** Connects a client, turning connection failures into sentences. */
export async function connect(url: string, options: ConnectOptions): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(url, options));
  // An error on an idle client must not crash the process; the next query reports it.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (e) {
    await client.end().catch(() => undefined);
    throw connectionError(e, url, options.role);
  }
  if (options.readTimeoutMs) dropOnReadTimeout(client);
  return client;
}

const READ_TIMEOUT = /Query read timeout/;

/** A query that got no answer within its read deadline (the connection has been dropped). */
export function isReadTimeout(e: unknown): boolean {
  return READ_TIMEOUT.test((e as Error | null)?.message ?? '');
}

/** How long after its statement_timeout a statement's answer may come before the link counts as hung (BL-S010). */
const READ_GRACE_MS = 10_000;

/** The read deadline of a connection whose statements time out at the server after `statementTimeoutMs`. */
export function readDeadlineMs(statementTimeoutMs: number): number {
  return statementTimeoutMs + READ_GRACE_MS;
}

/** A statement timeout at the server and, on our side, the read deadline that goes with it: every connection a running agent keeps or opens again and again. */
export function bounded(statementTimeoutMs: number): { statementTimeoutMs: number; readTimeoutMs: number } {
  return { statementTimeoutMs, readTimeoutMs: readDeadlineMs(statementTimeoutMs) };
}

/**
 * node-postgres answers a query past `query_timeout` with an error but
 * keeps the connection, whose next queries would wait behind the one that
 * never got an answer: destroy it instead, so everything after fails at
 * once and the caller reconnects.
 */
function dropOnReadTimeout(client: pg.Client): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const result = query(...args);
    if (result instanceof Promise)
      result.catch((e: unknown) => {
        if (isReadTimeout(e)) destroyClient(client);
      });
    return result;
  };
}

/** Drops a client's connection at once (no goodbye): for a link that may hang, where `end()` would wait. */
export function destroyClient(client: pg.ClientBase): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** Ends a client, or destroys its connection when the server does not see it off within `ms` (a hung link would keep `end()` waiting). */
export async function endClient(client: pg.Client, ms = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([
    client.end().then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  if (!ended) destroyClient(client);
}

export function newPool(url: string, options: ConnectOptions & { max?: number }): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(url, options), max: options.max ?? 4, idleTimeoutMillis: 30_000 });
  pool.on('error', () => undefined);
  return pool;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN', 'EPIPE']);

export function isConnectionError(e: unknown): boolean {
  const err = e as { code?: string; message?: string } | null;
  if (!err) return false;
  if (err.code && UNREACHABLE.has(err.code)) return true;
  if (err.code && /^(08|57P0[1-3])/.test(err.code)) return true; // connection exception, admin shutdown, crash shutdown, cannot connect now
  return /Connection terminated|timeout expired|connection timeout|Client has encountered a connection error|not queryable|socket hang up|Query read timeout/i.test(
    err.message ?? '',
  );
}

/**
 * A database that could not be reached, refused us, lacks branchline's
 * schema (BL-D...) or stopped answering on an open connection (BL-S010):
 * what a running agent waits out and tries again, never a reason to stop.
 */
export function isUnreachableError(e: unknown): e is BranchlineError {
  return isBranchlineError(e) && (e.code.startsWith('BL-D') || e.code === 'BL-S010');
}

/** A user-facing error for a failed connection attempt. */
export function connectionError(e: unknown, url: string, role: string): BranchlineError {
  const err = e as { code?: string; message?: string };
  const where = `${role} database at ${describeUrl(url)}`;
  if (err?.code === '28P01' || err?.code === '28000') {
    return new BranchlineError(
      { code: 'BL-D002', message: `the ${where} refused the user name or password.`, hint: 'Check the user and password in the URL (or the environment variable that holds it).' },
      { cause: e },
    );
  }
  if (isReadTimeout(e)) {
    return new BranchlineError(
      {
        code: 'BL-S010',
        message: `the ${where} stopped answering: a query got no reply within its deadline, and the connection was not reset (a firewall dropping packets, a dead link, a stalled server).`,
        hint: 'branchline dropped that connection and reconnects on its own. If it keeps happening, check the link; if big batches need longer, raise apply.statement_timeout_ms (the deadline is it plus 10 s).',
      },
      { cause: e },
    );
  }
  if (err?.code === '3D000') {
    return new BranchlineError(
      { code: 'BL-D001', message: `the ${where} does not exist (${redact(err.message ?? '')}).`, hint: 'Check the database name at the end of the URL.' },
      { cause: e },
    );
  }
  return new BranchlineError(
    {
      code: 'BL-D001',
      message: `cannot reach the ${where}: ${redact(err?.message ?? String(e))}.`,
      hint: 'Check that the server is running, the host and port are right, and a firewall lets this machine in; branchline retries on its own while running.',
    },
    { cause: e },
  );
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('NUL in SQL literal');
  return `'${value.replace(/'/g, "''")}'`;
}

export function qualified(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}
