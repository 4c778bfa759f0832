import pg from 'pg';
import { BranchlineError } from '../core/errors.js';
import { bounded, clientConfig, connectionError, describeUrl, isConnectionError } from '../db/connect.js';
import { redact } from '../core/logger.js';
import type { Status, UnavailableReason } from './answer.js';
import { withDeadline } from './record-reader.js';

/** One check as the audit keeps it. */
export interface AuditEntry {
  readonly caller: string;
  readonly asked: 'store' | 'hq';
  readonly store: string;
  readonly kind: string;
  readonly ref: string;
  readonly amount: string;
  readonly status: Status;
  readonly originAmount: string | null;
  readonly reason: UnavailableReason | null;
  readonly detail: string;
  readonly durationMs: number;
}

export interface AuditLogOptions {
  readonly url: string;
  readonly role: string;
  readonly timeoutMs: number;
}

/**
 * `branchline.settlement_checks` at one database: every check of a call in
 * one INSERT, before the call is answered. A failure is BL-D001/BL-D005:
 * the caller gets no answer rather than one nobody recorded.
 */
export class AuditLog {
  private readonly pool: pg.Pool;

  constructor(private readonly options: AuditLogOptions) {
    this.pool = new pg.Pool({
      ...clientConfig(options.url, { role: options.role, applicationName: 'branchline-settlement-audit', connectTimeoutMs: options.timeoutMs, ...bounded(options.timeoutMs) }),
      max: 2,
      idleTimeoutMillis: 30_000,
    });
    this.pool.on('error', () => undefined);
    // A checked-out client whose link dies emits 'error' too (the pool listens only while it is idle): its query fails, and that is reported.
    this.pool.on('connect', (c) => c.on('error', () => undefined));
    // The read deadline (query_timeout) gives back a client whose link stalled: the pool drops it instead of waiting on it for good.
  }

  async record(entries: readonly AuditEntry[]): Promise<{ ids: string[]; at: Date }> {
    const col = <K extends keyof AuditEntry>(k: K) => entries.map((e) => e[k]);
    const insert = this.pool.query<{ id: string; checked_at: Date }>(
      `INSERT INTO branchline.settlement_checks
         (caller, asked, store_code, kind, ref, amount, status, origin_amount, reason, detail, duration_ms)
       SELECT caller, asked, store_code, kind, ref, amount, status, origin_amount, reason, detail, duration_ms
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[], $7::text[], $8::numeric[], $9::text[], $10::text[], $11::int[])
              WITH ORDINALITY AS e(caller, asked, store_code, kind, ref, amount, status, origin_amount, reason, detail, duration_ms, ord)
        ORDER BY ord
       RETURNING id::text, checked_at`,
      [col('caller'), col('asked'), col('store'), col('kind'), col('ref'), col('amount'), col('status'), col('originAmount'), col('reason'), col('detail'), col('durationMs')],
    );
    try {
      const r = await withDeadline(insert, this.options.timeoutMs, () => Object.assign(new Error('timeout expired'), { code: 'ETIMEDOUT' }));
      // Ids are drawn in insertion order, which is the entries' order (ORDER BY ord).
      const ids = r.rows.map((x) => x.id).sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
      return { ids, at: r.rows[0]?.checked_at ?? new Date() };
    } catch (e) {
      const where = `${this.options.role} database at ${describeUrl(this.options.url)}`;
      if ((e as { code?: string }).code === '42P01')
        throw new BranchlineError({
          code: 'BL-D005',
          message: `the ${where} has no branchline.settlement_checks table, where settlement checks are recorded; no answer was given.`,
          hint: 'Run `branchline install` (it applies branchline\'s migrations there).',
        });
      if (isConnectionError(e)) {
        const err = connectionError(e, this.options.url, this.options.role);
        throw new BranchlineError({ code: err.code, message: `${err.problem.message.replace(/\.$/, '')}, so the settlement checks could not be recorded; no answer was given.`, hint: err.hint ?? '' });
      }
      throw new BranchlineError({
        code: 'BL-D001',
        message: `the ${where} refused to record the settlement checks (${redact((e as Error).message)}); no answer was given.`,
        hint: 'Check that the agent\'s role may INSERT into branchline.settlement_checks.',
      });
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
