import type pg from 'pg';
import { wakeableSleep } from '../../src/core/wakeable-sleep.js';
import type { RowChange, RowValues, SourceMessage, TableId } from '../../src/core/change.js';
import type { ChangeTableReaderOptions, Source, SourceStream } from '../../src/core/source.js';
import { connect, connectionError, endClient, isConnectionError, bounded } from '../../src/db/connect.js';
import { ACK_SQL, HORIZON_SQL, NOTIFY_CHANNEL, PURGED_SQL, relevantRows, rowsSql, txnsSql, type RouteFilterSpec } from './sql.js';
import { BranchlineError } from '../../src/core/errors.js';
import { afterWindow, XID8_CODEC, xidPosition, type XidPosition } from './xid-codec.js';

export interface PgTriggerSourceOptions extends ChangeTableReaderOptions {
  /**
   * The target must have been loaded first (an initial load sets the first
   * position): opening without a position is BL-S007. For HQ's down channel,
   * where a store's tables must match HQ's before changes make sense.
   */
  readonly requireStart?: boolean;
  /**
   * Reads only the log rows routed to this store (HQ's down channel): rows
   * of `routed` tables whose old or new row names `store` in one of
   * `columns`; other tables' rows and truncates are all read. Null: all.
   * Transactions with nothing for the store still move the position as
   * before, without being delivered.
   */
  readonly rowFilter?: RowFilter | null;
}

/** `routed`: tables every mapping of which routes by a column or to a list of stores without this one; `columns`: those mappings' route columns. */
export type RowFilter = RouteFilterSpec;

interface LogRow {
  /** The change's id, as text (a bigint). */
  log_id: string;
  xid: string;
  schema_name: string;
  table_name: string;
  op: 'i' | 'u' | 'd' | 't';
  before: Record<string, string | null> | null;
  after: Record<string, string | null> | null;
}

interface TxnRow {
  xid: string;
  last_id: string;
  /** Its changes the reader reads (not the reader's own origin's, only rows routed to it). */
  n: number;
  /** When it logged its last change: its commit time, near enough. */
  at: Date;
}

/** Transactions listed per query. */
const TXN_PAGE = 10_000;

/** How often a reader records its acknowledged position at most (the last one is also recorded at close). */
const ACK_EVERY_MS = 1_000;

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
export class PgTriggerSource implements Source<XidPosition> {
  readonly connector = 'pg-trigger';
  readonly positions = XID8_CODEC;
  /** The log is purged below what readers acknowledged, and a reader opening below a purge is refused: an idle position is stored first. */
  readonly idlePositionsStored = true;

  constructor(private readonly options: PgTriggerSourceOptions) {}

  async open(after: XidPosition | null): Promise<SourceStream<XidPosition>> {
    const { url, role, statementTimeoutMs } = this.options;
    const deadline = statementTimeoutMs ? bounded(statementTimeoutMs) : {};
    const db = await connect(url, { role, applicationName: 'branchline-trigger-reader', ...deadline }); // says BL-D001 itself
    let purgedBelow: bigint;
    try {
      await db.query(`LISTEN ${NOTIFY_CHANNEL}`);
      purgedBelow = BigInt((await db.query<{ purged_below: string }>(PURGED_SQL)).rows[0]!.purged_below);
    } catch (e) {
      await db.end().catch(() => undefined);
      throw isConnectionError(e) ? connectionError(e, url, role) : e;
    }
    const fix = this.options.reloadCommand ?? 'an initial load';
    if (after === null && this.options.requireStart) {
      await db.end().catch(() => undefined);
      throw new BranchlineError({
        code: 'BL-S007',
        message: `${this.options.reader ?? 'this reader'} has no position in the change log at ${role}: its target was never loaded, or its initial load did not finish.`,
        hint: `Run ${fix}; changes follow from where the load ends.`,
      });
    }
    if (after !== null && after.bound < purgedBelow) {
      await db.end().catch(() => undefined);
      throw new BranchlineError({
        code: 'BL-S006',
        message: `${this.options.reader ?? 'this reader'} is at ${XID8_CODEC.format(after)} but the change log at ${role} was purged below ${purgedBelow}: changes it never applied are gone (it was offline longer than the retention).`,
        hint: `Run ${fix}: a partial picture is never applied.`,
      });
    }
    return new TriggerStream(db, after ?? xidPosition(purgedBelow), this.options);
  }
}

class TriggerStream implements SourceStream<XidPosition> {
  readonly messages: AsyncIterator<SourceMessage<XidPosition>>;
  private closed = false;
  private wake: (() => void) | null = null;
  private readonly tables = new Map<string, TableId>();
  private acked = 0n;
  private pendingAck: bigint | null = null;
  private ackedAt = 0;
  /** The two queries, with the route filter's condition, and its values (bound after theirs). */
  private readonly txns: { readonly sql: string; readonly params: readonly string[] };
  private readonly rows: { readonly sql: string; readonly params: readonly string[] };

  constructor(
    private readonly db: pg.Client,
    private position: XidPosition,
    private readonly options: PgTriggerSourceOptions,
  ) {
    const f = options.rowFilter ?? null;
    const forTxns = relevantRows(f, 7);
    const forRows = relevantRows(f, 5);
    this.txns = { sql: txnsSql(forTxns.sql), params: forTxns.params };
    this.rows = { sql: rowsSql(forRows.sql), params: forRows.params };
    db.on('notification', () => this.wake?.());
    db.on('error', () => this.wake?.());
    this.messages = this.read();
  }

  /** Messages are read as they are asked for: none is ever buffered. */
  poll(): SourceMessage<XidPosition> | undefined {
    return undefined;
  }

  /**
   * The log is shared (HQ's feeds every store): the position is recorded as
   * this reader's (best effort: it only lets the log be purged), and purging
   * is the maintainer's job (purge.ts).
   */
  ack(position: XidPosition): void {
    const reader = this.options.reader;
    if (!reader || this.closed || position.bound <= this.acked) return;
    this.acked = position.bound;
    // Sent before the reader's next query (one query at a time on a connection).
    this.pendingAck = position.bound;
  }

  async close(): Promise<void> {
    const ack = this.pendingAck;
    this.pendingAck = null;
    if (ack !== null && this.options.reader && !this.closed) await this.db.query(ACK_SQL, [this.options.reader, ack.toString()]).catch(() => undefined);
    this.closed = true;
    this.wake?.();
    await endClient(this.db);
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

  private async *read(): AsyncGenerator<SourceMessage<XidPosition>, void, undefined> {
    const pollMs = this.options.pollMs ?? 1_000;
    while (!this.closed) {
      // Inside a window (a target committed in its middle): finish it first, with the bound it had.
      let until = this.position.window?.until ?? null;
      if (until === null) {
        const horizon = await this.query<{ xmin: string }>(HORIZON_SQL);
        if (horizon === null) return;
        const bound = BigInt(horizon[0]!.xmin);
        if (bound > this.position.bound) until = bound;
      }
      if (until !== null) {
        const delivered = yield* this.window(until);
        if (delivered === null) return;
        if (!delivered) yield { kind: 'idle', position: this.position };
        continue;
      }
      await wakeableSleep(pollMs, (wake) => (this.wake = wake));
    }
  }

  /**
   * Delivers the transactions of the window [position.bound, until) after
   * the position, one by one, in the order of their last change; moves the
   * position past the window. Whether any was delivered; null once closed.
   */
  private async *window(until: bigint): AsyncGenerator<SourceMessage<XidPosition>, boolean | null, undefined> {
    const pageRows = this.options.pageRows ?? 5_000;
    const from = this.position;
    const skip = this.options.skipOrigin ?? null;
    let after = from.window?.lastId ?? 0n;
    let delivered = false;
    for (;;) {
      const txns = await this.query<TxnRow>(this.txns.sql, [from.bound.toString(), until.toString(), skip, from.snapshot, after.toString(), TXN_PAGE, ...this.txns.params]);
      if (txns === null) return null;
      // A purge that started meanwhile may have deleted part of the window: never deliver it as complete.
      if (!(await this.notPurgedSince(from))) return null;
      const lastPage = txns.length < TXN_PAGE;
      // Where the target stands once txns[n] is applied: inside the window, or past it after its last transaction.
      const positionAfter = (n: number): XidPosition =>
        lastPage && n === txns.length - 1 ? afterWindow(from, until) : { bound: from.bound, snapshot: from.snapshot, window: { until, lastId: BigInt(txns[n]!.last_id) } };
      for (let i = 0; i < txns.length; ) {
        // As many whole transactions as fit in a page of rows (at least one).
        let rows = 0;
        let j = i;
        while (j < txns.length && (j === i || rows + txns[j]!.n <= pageRows)) rows += txns[j++]!.n;
        const chunk = txns.slice(i, j);
        const byXid = new Map<string, RowChange[]>(chunk.map((t) => [t.xid, []]));
        let lastRowId = '0';
        let streamed = 0;
        for (;;) {
          if (rows === 0) break; // nothing routed to this reader in these transactions
          const page = await this.query<LogRow>(this.rows.sql, [chunk.map((t) => t.xid), lastRowId, skip, pageRows, ...this.rows.params]);
          if (page === null) return null;
          if (chunk.length === 1) {
            // One transaction bigger than a page: delivered as it is read (n > 0 here).
            const t = chunk[0]!;
            if (lastRowId === '0') yield { kind: 'begin', xid: Number(BigInt(t.xid) & 0xffffffffn), commitTime: t.at, commitPosition: positionAfter(i) };
            for (const r of page) yield { kind: 'change', change: this.change(r) };
            streamed += page.length;
          } else for (const r of page) byXid.get(r.xid)!.push(this.change(r));
          if (page.length > 0) lastRowId = page[page.length - 1]!.log_id;
          if (page.length < pageRows) break;
        }
        for (let k = 0; k < chunk.length; k++) {
          const t = chunk[k]!;
          const changes = chunk.length === 1 ? null : byXid.get(t.xid)!;
          if ((changes ? changes.length : streamed) !== t.n) return this.purgedUnder(from);
          const position = positionAfter(i + k);
          if (t.n === 0) {
            // Nothing of it routed here: the position moves past it, nothing is delivered.
            this.position = position;
            after = BigInt(t.last_id);
            continue;
          }
          if (changes) {
            yield { kind: 'begin', xid: Number(BigInt(t.xid) & 0xffffffffn), commitTime: t.at, commitPosition: position };
            for (const c of changes) yield { kind: 'change', change: c };
          }
          this.position = position;
          after = BigInt(t.last_id);
          delivered = true;
          yield { kind: 'commit', position: this.position, commitTime: t.at };
        }
        i = j;
      }
      if (lastPage) break;
    }
    this.position = afterWindow(from, until);
    return delivered;
  }

  /** False (after throwing BL-S006) when the log was purged above `from` while it was being read. */
  private async notPurgedSince(from: XidPosition): Promise<boolean> {
    const purged = await this.query<{ purged_below: string }>(PURGED_SQL);
    if (purged === null) return false;
    if (BigInt(purged[0]!.purged_below) > from.bound) this.purgedUnder(from);
    return true;
  }

  private purgedUnder(from: XidPosition): never {
    throw new BranchlineError({
      code: 'BL-S006',
      message: `the change log at ${this.options.role} was purged while ${this.options.reader ?? 'this reader'} was still reading from ${XID8_CODEC.format(from)}: changes it never applied are gone.`,
      hint: `Run ${this.options.reloadCommand ?? 'an initial load'}: a partial picture is never applied.`,
    });
  }

  /** A query's rows; null once the stream is closed; a lost connection as BL-D001. */
  private async query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[] | null> {
    try {
      const ack = this.pendingAck;
      // At most once a second: each record is a write (an xid), which moves the horizon and makes the next idle window.
      if (ack !== null && this.options.reader && Date.now() - this.ackedAt >= ACK_EVERY_MS) {
        this.pendingAck = null;
        this.ackedAt = Date.now();
        await this.db.query(ACK_SQL, [this.options.reader, ack.toString()]);
      }
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
