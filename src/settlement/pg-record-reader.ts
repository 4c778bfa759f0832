import pg from 'pg';
import { BranchlineError } from '../core/errors.js';
import { clientConfig, connectionError, describeUrl, isConnectionError, qualified, quoteIdent, TEXT_VALUES } from '../db/connect.js';
import { redact } from '../core/logger.js';
import { byReference, RoundFailure, withDeadline, type LookupResult, type RecordLookup, type RecordReader } from './record-reader.js';

export interface PgRecordReaderOptions {
  readonly url: string;
  /** For messages: "store S001", "HQ". */
  readonly role: string;
  /** A round (connecting included) fails as unreachable after this long. */
  readonly timeoutMs: number;
  readonly applicationName?: string;
}


/**
 * Reads records at one PostgreSQL database for settlement checks: one
 * statement per round, whatever the number of references; every session
 * is read only (`default_transaction_read_only`), and a round that has not
 * finished within the timeout is abandoned and its connection destroyed
 * (a link that drops packets without a reset never holds a caller).
 */
export class PgRecordReader implements RecordReader {
  private readonly pool: pg.Pool;
  private readonly types = new Map<string, string>();

  constructor(private readonly options: PgRecordReaderOptions) {
    const base = clientConfig(options.url, {
      role: options.role,
      applicationName: options.applicationName ?? 'branchline-settlement',
      connectTimeoutMs: options.timeoutMs,
      statementTimeoutMs: options.timeoutMs,
    });
    this.pool = new pg.Pool({
      ...base,
      options: `${base.options ?? ''} -c default_transaction_read_only=on`,
      types: TEXT_VALUES,
      max: 4,
      idleTimeoutMillis: 30_000,
      keepAliveInitialDelayMillis: 5_000,
    });
    this.pool.on('error', () => undefined);
    // A checked-out client whose link dies emits 'error' too (the pool listens only while it is idle): its query fails, and that is reported.
    this.pool.on('connect', (c) => c.on('error', () => undefined));
  }

  /** The rows of each reference; throws a RoundFailure (never hangs past the timeout). */
  async read(lookup: RecordLookup, refs: readonly string[]): Promise<LookupResult> {
    if (refs.length === 0) return new Map();
    let abandoned = false;
    const connecting = this.pool.connect();
    const work = (async () => {
      const c = await connecting;
      let failed = true;
      try {
        if (abandoned) throw new Error('abandoned');
        const type = lookup.refType ?? (await this.refType(c, lookup));
        let result;
        try {
          result = await c.query<Record<string, string | null>>(statement(lookup, type, false), params(lookup, refs));
        } catch (e) {
          // A reference that is not a value of the column's type (text for an integer key): compare as text, which finds nothing wrong.
          const code = (e as { code?: string }).code;
          if (code !== '22P02' && code !== '22003' && code !== '22007' && code !== '22008') throw e;
          result = await c.query<Record<string, string | null>>(statement(lookup, type, true), params(lookup, refs));
        }
        failed = false;
        return result;
      } finally {
        // A connection that failed or outlived its round is not trusted again: destroyed, not returned to the pool.
        c.release(failed || abandoned);
      }
    })();
    try {
      const result = await withDeadline(
        work,
        this.options.timeoutMs,
        () => new RoundFailure('unreachable', `the ${this.where()} did not answer within ${this.options.timeoutMs} ms.`, null),
        () => {
          abandoned = true;
          // The round's socket may hang for minutes: end it now.
          connecting.then((c) => (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy(), () => undefined);
        },
      );
      return byReference(result.rows);
    } catch (e) {
      if (e instanceof RoundFailure) throw e;
      throw this.failure(e);
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }

  private where(): string {
    return `${this.options.role} database at ${describeUrl(this.options.url)}`;
  }

  private failure(e: unknown): RoundFailure {
    if (e instanceof BranchlineError) return new RoundFailure('error', `${e.problem.message} ${e.problem.hint ?? ''}`.trim(), e.code);
    if (isConnectionError(e) || (e as { code?: string }).code === '28P01' || (e as { code?: string }).code === '28000' || (e as { code?: string }).code === '3D000') {
      const err = connectionError(e, this.options.url, this.options.role);
      return new RoundFailure('unreachable', err.problem.message, err.code);
    }
    const pgError = e as { code?: string; message?: string };
    if (pgError.code === '57014') return new RoundFailure('unreachable', `the ${this.where()} did not answer within ${this.options.timeoutMs} ms (statement timeout).`, null);
    return new RoundFailure('error', `the ${this.where()} refused the read: ${redact(pgError.message ?? String(e))} (SQLSTATE ${pgError.code ?? 'none'}).`, pgError.code ?? null);
  }

  /** The reference column's SQL type, looked up once per table and column. */
  private async refType(c: pg.PoolClient, lookup: RecordLookup): Promise<string> {
    const key = `${qualified(lookup.table.schema, lookup.table.table)}.${quoteIdent(lookup.refColumn)}`;
    const known = this.types.get(key);
    if (known) return known;
    const r = await c.query<{ rel: string | null; type: string | null }>(
      `SELECT to_regclass($1)::text AS rel,
              (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped) AS type`,
      [qualified(lookup.table.schema, lookup.table.table), lookup.refColumn],
    );
    const row = r.rows[0]!;
    if (!row.rel || !row.type)
      throw new BranchlineError({
        code: 'BL-M025',
        message: row.rel
          ? `the ${this.where()} has no column "${lookup.refColumn}" in ${lookup.table.schema}.${lookup.table.table}, which settlement checks read.`
          : `the ${this.where()} has no table ${lookup.table.schema}.${lookup.table.table} (or the role may not see it), which settlement checks read.`,
        hint: 'Run `branchline validate`, and grant the read-only role SELECT on the table.',
      });
    this.types.set(key, row.type);
    return row.type;
  }
}

function params(lookup: RecordLookup, refs: readonly string[]): unknown[] {
  const p: unknown[] = [refs];
  for (const f of lookup.filters ?? []) p.push(f.value);
  if (lookup.association) p.push(lookup.association.store, lookup.association.entity);
  return p;
}

/** The one statement of a round. `asText`: compare the column as text (a reference that is not of its type). */
export function statement(lookup: RecordLookup, refType: string, asText: boolean): string {
  const t = qualified(lookup.table.schema, lookup.table.table);
  const cols = lookup.columns.map((c) => `t.${quoteIdent(c)}`);
  let n = 2;
  const filters = (lookup.filters ?? []).map((f) => ` AND t.${quoteIdent(f.column)} = $${n++}`).join('');
  const a = lookup.association ? { store: `$${n++}`, entity: `$${n++}` } : null;
  const value = a ? 'a.hq_key' : 'r.ref';
  const match = asText ? `t.${quoteIdent(lookup.refColumn)}::text = ${value}` : `t.${quoteIdent(lookup.refColumn)} = ${value}::${refType}`;
  return [
    `SELECT r.ord AS "__ord"${cols.length ? `, ${cols.join(', ')}` : ''}`,
    `FROM unnest($1::text[]) WITH ORDINALITY AS r(ref, ord)`,
    ...(a ? [`JOIN branchline.associations a ON a.store_code = ${a.store} AND a.entity = ${a.entity} AND a.branch_code = r.ref`] : []),
    `JOIN ${t} t ON ${match}${filters}`,
  ].join('\n');
}
