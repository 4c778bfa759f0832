import type pg from 'pg';
import type { RowChange, RowValues, SourceMessage, TableId } from '../../src/core/change.js';
import type { Logger } from '../../src/core/logger.js';
import type { Source, SourceStream } from '../../src/core/source.js';
import { connect, connectionError, isConnectionError } from '../../src/db/connect.js';
import { HORIZON_SQL, NOTIFY_CHANNEL, READ_SQL } from './sql.js';
import { XID8_CODEC } from './xid-codec.js';

export interface PgTriggerSourceOptions {
  readonly url: string;
  /** For messages: "HQ", "store S001". */
  readonly role: string;
  readonly logger: Logger;
  /** How often to look for new changes without a notification (ms). Default 1000. */
  readonly pollMs?: number;
  /** Log rows read per query. Default 5000. */
  readonly pageRows?: number;
}

interface LogRow {
  id: string;
  xid: string;
  schema_name: string;
  table_name: string;
  op: 'i' | 'u' | 'd' | 't';
  before: Record<string, string | null> | null;
  after: Record<string, string | null> | null;
  logged_at: Date;
}

/**
 * Reads the change log that `pg-trigger`'s triggers write (see sql.ts).
 *
 * No gaps: it delivers only changes of transactions whose xid is below the
 * oldest transaction still running (`pg_current_snapshot()` xmin). Every
 * transaction below that bound has ended, so nothing can appear there
 * later; a long transaction that commits late holds the bound back, and its
 * changes and those of every transaction after it are delivered once it
 * ends. Each read is one window [position, bound): it is delivered as one
 * transaction whose position is the bound, in log order (a change that
 * waited for another's row lock is logged after it).
 *
 * A notification from the triggers wakes it up; it also polls every
 * `pollMs`. Reading is paged, so a window of any size takes bounded memory.
 */
export class PgTriggerSource implements Source<bigint> {
  readonly connector = 'pg-trigger';
  readonly positions = XID8_CODEC;

  constructor(private readonly options: PgTriggerSourceOptions) {}

  async open(after: bigint | null): Promise<SourceStream<bigint>> {
    const { url, role } = this.options;
    const db = await connect(url, { role, applicationName: 'branchline-trigger-reader' }); // says BL-D001 itself
    try {
      await db.query(`LISTEN ${NOTIFY_CHANNEL}`);
    } catch (e) {
      await db.end().catch(() => undefined);
      throw isConnectionError(e) ? connectionError(e, url, role) : e;
    }
    return new TriggerStream(db, after ?? 0n, this.options);
  }
}

class TriggerStream implements SourceStream<bigint> {
  readonly messages: AsyncIterator<SourceMessage<bigint>>;
  private closed = false;
  private wake: (() => void) | null = null;
  private readonly buffer: SourceMessage<bigint>[] = [];
  private readonly tables = new Map<string, TableId>();

  constructor(
    private readonly db: pg.Client,
    private position: bigint,
    private readonly options: PgTriggerSourceOptions,
  ) {
    db.on('notification', () => this.wake?.());
    db.on('error', () => this.wake?.());
    this.messages = this.read();
  }

  poll(): SourceMessage<bigint> | undefined {
    return this.buffer.shift();
  }

  /** The log is shared (HQ's feeds every store): purging what every reader applied is not this stream's job. */
  ack(_position: bigint): void {}

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.db.end().catch(() => undefined);
  }

  private table(schema: string, name: string): TableId {
    const k = `${schema}.${name}`;
    let t = this.tables.get(k);
    if (!t) {
      t = { schema, table: name };
      this.tables.set(k, t);
    }
    return t;
  }

  private async *read(): AsyncGenerator<SourceMessage<bigint>, void, undefined> {
    const pageRows = this.options.pageRows ?? 5_000;
    const pollMs = this.options.pollMs ?? 1_000;
    while (!this.closed) {
      const horizon = await this.query<{ xmin: string }>(HORIZON_SQL);
      if (horizon === null) return;
      const bound = BigInt(horizon[0]!.xmin);
      if (bound > this.position) {
        let lastId = '0';
        let begun = false;
        let lastAt: Date | null = null;
        for (;;) {
          const page = await this.query<LogRow>(READ_SQL, [this.position.toString(), bound.toString(), lastId, pageRows]);
          if (page === null) return;
          for (const r of page) {
            if (!begun) {
              begun = true;
              yield { kind: 'begin', xid: Number(BigInt(r.xid) & 0xffffffffn), commitTime: r.logged_at };
            }
            lastAt = r.logged_at;
            yield { kind: 'change', change: this.change(r) };
          }
          if (page.length < pageRows) break;
          lastId = page[page.length - 1]!.id;
        }
        const from = this.position;
        this.position = bound;
        // A window without changes (others' transactions, rolled back ones) moves the position too.
        if (begun) yield { kind: 'commit', position: bound, commitTime: lastAt ?? new Date() };
        else if (bound > from) yield { kind: 'idle', position: bound };
        continue;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, pollMs);
        this.wake = done;
        function done() {
          clearTimeout(t);
          resolve();
        }
      });
      this.wake = null;
    }
  }

  /** A query's rows; null once the stream is closed; a lost connection as BL-D001. */
  private async query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[] | null> {
    try {
      return (await this.db.query<R>(sql, params)).rows;
    } catch (e) {
      if (this.closed) return null;
      throw isConnectionError(e) ? connectionError(e, this.options.url, this.options.role) : e;
    }
  }

    private change(r: LogRow): RowChange {
    const table = this.table(r.schema_name, r.table_name);
    switch (r.op) {
      case 'i':
        return { op: 'insert', table, after: r.after as RowValues };
      case 'u':
        return { op: 'update', table, before: r.before as RowValues, after: r.after as RowValues };
      case 'd':
        return { op: 'delete', table, before: r.before as RowValues };
      case 't':
        return { op: 'truncate', tables: [table] };
    }
  }
}
