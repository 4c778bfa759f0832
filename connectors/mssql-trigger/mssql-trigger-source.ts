import sql from 'mssql';
import { wakeableSleep } from '../../src/core/wakeable-sleep.js';
import type { SourceMessage } from '../../src/core/change.js';
import { formatTable, tableKey } from '../../src/core/change.js';
import { BranchlineError } from '../../src/core/errors.js';
import type { ChangeTableReaderOptions, Source, SourceStream } from '../../src/core/source.js';
import { describeMssqlTable } from './catalog.js';
import { describeMssqlUrl, isMssqlConnectionError, mssqlConnect, mssqlConnectionError } from './connect.js';
import { ROWVERSION_CODEC, RowversionPosition } from './rowversion-codec.js';
import { ACK_SQL, ackParams, bind, type BoundParam, HORIZON_SQL, INSTALLED_SQL, PURGED_SQL, READ_SQL, readParams } from './sql.js';
import { loggedColumns, type LoggedTable, type LogRow, logRowChange } from './log-row.js';
import { mssqlTypeMapping, type TypeMapping } from './types.js';

/** SQL Server has no NOTIFY: `pollMs` is how often it looks; `skipOrigin` is compared with `SESSION_CONTEXT(N'branchline.origin')`. */
export type MssqlTriggerSourceOptions = ChangeTableReaderOptions;


/**
 * Reads the change log that `mssql-trigger`'s triggers write (see sql.ts).
 *
 * No gaps: each read first takes `MIN_ACTIVE_ROWVERSION()` as its bound,
 * the lowest rowversion of a transaction still open, then delivers the
 * rows of [position, bound). Every transaction that wrote below the bound
 * has ended, so nothing can appear there later; a long transaction holds
 * the bound back, and its rows and those after it come once it ends. A
 * window is one transaction (begin, changes in log order, commit at the
 * bound); an empty one is `idle` at the new bound. Paged, polled.
 *
 * Values arrive as SQL Server wrote them (types.ts, per column type) and
 * are normalized to PostgreSQL's text form here; the reader reads each
 * table's column types once (and again when a row names a column it does
 * not know: install ran again after the table changed).
 */
export class MssqlTriggerSource implements Source<RowversionPosition> {
  readonly connector = 'mssql-trigger';
  readonly positions = ROWVERSION_CODEC;
  /** The log is purged below what readers acknowledged: an idle position is stored at the target first. */
  readonly idlePositionsStored = true;

  constructor(private readonly options: MssqlTriggerSourceOptions) {}

  async open(after: RowversionPosition | null): Promise<SourceStream<RowversionPosition>> {
    const { url, role } = this.options;
    const pool = await mssqlConnect(url, role, { applicationName: 'branchline-trigger-reader' });
    let purgedBelow: RowversionPosition;
    try {
      const installed = (await pool.request().query<{ id: number | null }>(INSTALLED_SQL)).recordset[0]?.id != null;
      if (!installed) {
        throw new BranchlineError({
          code: 'BL-D005',
          message: `branchline is not installed on the ${role} SQL Server database at ${describeMssqlUrl(url)}: there is no change log [branchline].[change_log].`,
          hint: 'Run branchline install for this store.',
        });
      }
      purgedBelow = RowversionPosition.fromBuffer((await pool.request().query<{ purged_below: Buffer }>(PURGED_SQL)).recordset[0]!.purged_below);
    } catch (e) {
      await pool.close().catch(() => undefined);
      throw isMssqlConnectionError(e) ? mssqlConnectionError(e, url, role) : e;
    }
    if (after !== null && after.compare(purgedBelow) < 0) {
      await pool.close().catch(() => undefined);
      throw purgedError(this.options, `is at ${after} but the change log at ${role} was purged below ${purgedBelow}`);
    }
    return new MssqlTriggerStream(pool, after ?? purgedBelow, this.options);
  }
}

function purgedError(options: MssqlTriggerSourceOptions, what: string): BranchlineError {
  return new BranchlineError({
    code: 'BL-S006',
    message: `${options.reader ?? 'this reader'} ${what}: changes it never applied are gone (it was away longer than the retention).`,
    hint: `Run ${options.reloadCommand ?? 'an initial load'}: a partial picture is never applied.`,
  });
}

class MssqlTriggerStream implements SourceStream<RowversionPosition> {
  readonly messages: AsyncIterator<SourceMessage<RowversionPosition>>;
  private closed = false;
  private wake: (() => void) | null = null;
  private readonly tables = new Map<string, LoggedTable>();
  private acked = 0n;
  private pendingAck: RowversionPosition | null = null;

  constructor(
    private readonly pool: sql.ConnectionPool,
    private position: RowversionPosition,
    private readonly options: MssqlTriggerSourceOptions,
  ) {
    this.messages = this.read();
  }

  /** Nothing is buffered: each message is read when asked for. */
  poll(): SourceMessage<RowversionPosition> | undefined {
    return undefined;
  }

  /** Recorded in change_log_readers before the next query (best effort: it only lets the log be purged). */
  ack(position: RowversionPosition): void {
    if (!this.options.reader || this.closed || position.bound <= this.acked) return;
    this.acked = position.bound;
    this.pendingAck = position;
  }

  async close(): Promise<void> {
    const ack = this.pendingAck;
    this.pendingAck = null;
    if (ack !== null && !this.closed) await this.sendAck(ack).catch(() => undefined);
    this.closed = true;
    this.wake?.();
    await this.pool.close().catch(() => undefined);
  }

  private sendAck(p: RowversionPosition): Promise<unknown> {
    return bind(this.pool.request(), ackParams(this.options.reader!, p)).batch(ACK_SQL);
  }

  private async *read(): AsyncGenerator<SourceMessage<RowversionPosition>, void, undefined> {
    const pageRows = this.options.pageRows ?? 5_000;
    const pollMs = this.options.pollMs ?? 1_000;
    while (!this.closed) {
      const horizon = await this.query<{ bound: Buffer }>([], HORIZON_SQL);
      if (horizon === null) return;
      const bound = RowversionPosition.fromBuffer(horizon[0]!.bound);
      if (bound.bound > this.position.bound) {
        const from = this.position;
        let lastId = '0';
        let begun = false;
        let lastAt: Date | null = null;
        for (;;) {
          const page = await this.query<LogRow>(readParams({ from, bound, lastId, pageRows, skipOrigin: this.options.skipOrigin ?? null }), READ_SQL);
          if (page === null) return;
          for (const r of page) {
            if (!begun) {
              begun = true;
              yield { kind: 'begin', xid: Number(RowversionPosition.fromBuffer(r.rv).bound & 0xffffffffn), commitTime: r.logged_at };
            }
            lastAt = r.logged_at;
            yield { kind: 'change', change: logRowChange(r, await this.table(r.schema_name, r.table_name, loggedColumns(r))) };
          }
          if (page.length < pageRows) break;
          lastId = page[page.length - 1]!.id;
        }
        // A purge that started meanwhile may have deleted part of the window: never deliver it as complete.
        const purged = await this.query<{ purged_below: Buffer }>([], PURGED_SQL);
        if (purged === null) return;
        const purgedBelow = RowversionPosition.fromBuffer(purged[0]!.purged_below);
        if (purgedBelow.compare(from) > 0) throw purgedError(this.options, `was reading from ${from} when the change log at ${this.options.role} was purged below ${purgedBelow}`);
        this.position = bound;
        if (begun) yield { kind: 'commit', position: bound, commitTime: lastAt ?? new Date() };
        else yield { kind: 'idle', position: bound };
        continue;
      }
      await wakeableSleep(pollMs, (wake) => (this.wake = wake));
    }
  }

  /** A query's rows; null once the stream is closed; a lost connection as BL-D001. */
  private async query<R>(params: readonly BoundParam[], text: string): Promise<R[] | null> {
    try {
      const ack = this.pendingAck;
      if (ack !== null) {
        this.pendingAck = null;
        await this.sendAck(ack);
      }
      return (await bind(this.pool.request(), params).query<R>(text)).recordset;
    } catch (e) {
      if (this.closed) return null;
      throw isMssqlConnectionError(e) ? mssqlConnectionError(e, this.options.url, this.options.role) : e;
    }
  }

  /** A table's column mappings; null for a column the table no longer has (its value is delivered as logged). */
  private async table(schema: string, name: string, columns: readonly string[]): Promise<LoggedTable> {
    const key = tableKey({ schema, table: name });
    const known = this.tables.get(key);
    if (known && columns.every((c) => known.types.has(c))) return known;
    const id = known?.id ?? { schema, table: name };
    let info: Awaited<ReturnType<typeof describeMssqlTable>>;
    try {
      info = await describeMssqlTable(this.pool, id);
    } catch (e) {
      throw isMssqlConnectionError(e) ? mssqlConnectionError(e, this.options.url, this.options.role) : e;
    }
    const types = new Map<string, TypeMapping | null>();
    for (const [c, t] of info?.mssqlTypes ?? []) types.set(c, mssqlTypeMapping(t));
    const missing = columns.filter((c) => !types.has(c));
    if (missing.length > 0) {
      this.options.logger.warn(`${formatTable(id)}: column(s) ${missing.join(', ')} of a logged change are no longer in the table; their values are delivered as logged`, {
        table: formatTable(id),
      });
      for (const c of missing) types.set(c, null);
    }
    const entry = { id, types };
    this.tables.set(key, entry);
    return entry;
  }
}
