import pg from 'pg';
import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { tableKey, type RowChange, type SourceMessage, type TableId } from '../../src/core/change.js';
import { BranchlineError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import { Lsn } from '../../src/core/lsn.js';
import { SlotPosition } from '../../src/core/slot-position.js';
import type { Source, SourceStream } from '../../src/core/source.js';
import { clientConfig, connect, connectionError, describeUrl, endClient, isConnectionError, quoteIdent, quoteLiteral, bounded } from '../../src/db/connect.js';
import { LSN_CODEC } from './lsn-codec.js';
import { WalStream } from './wal-stream.js';
import { decodeRowMessage, type RelationShape } from './row-decoder.js';
import { TupleArena } from '../../src/core/tuple-row.js';

export interface PgLogicalSourceOptions {
  readonly url: string;
  /** For messages: "store S001". */
  readonly role: string;
  readonly slot: string;
  readonly publication: string;
  readonly logger: Logger;
  readonly statusIntervalMs?: number;
  readonly silenceTimeoutMs?: number;
  /** The load that repairs an invalidated slot (BL-S003), e.g. `branchline snapshot --store S001 --direction up --restart`. */
  readonly reloadCommand?: string;
  /** Messages buffered before the socket is paused (bounds memory for any transaction size). */
  readonly highWaterMark?: number;
  /**
   * Capture only transactions without a replication origin (pgoutput's
   * `origin 'none'`, PostgreSQL 16+): what branchline's down channel applied
   * to this store carries one, so it never goes back up (no echo). Default
   * true.
   */
  readonly onlyLocalChanges?: boolean;
}

/**
 * A store's logical replication slot, decoded with `pgoutput` (protocol 1).
 * The slot is the store's durable queue: nothing is released until the
 * consumer acknowledges a position, after its target transaction committed.
 */
/** The slot check's statements, at the server (its read deadline adds the usual grace). */
const CHECK_TIMEOUT_MS = 10_000;

export class PgLogicalSource implements Source<SlotPosition> {
  readonly connector = 'pg-logical';
  readonly positions = LSN_CODEC;

  constructor(private readonly options: PgLogicalSourceOptions) {}

  async open(after: SlotPosition | null): Promise<SourceStream<SlotPosition>> {
    await this.checkSlot();
    const client = new pg.Client(clientConfig(this.options.url, { role: this.options.role, replication: true, applicationName: `branchline-${this.options.slot}` }));
    const stream = new PgLogicalStream(client, after, this.options);
    try {
      await client.connect();
    } catch (e) {
      await client.end().catch(() => undefined);
      throw connectionError(e, this.options.url, this.options.role);
    }
    stream.start();
    return stream;
  }

  /** Clear errors before streaming: slot missing, lost, or held by another connection. */
  private async checkSlot(): Promise<void> {
    const { url, role, slot, publication } = this.options;
    // Bounded: a link that stalls without a reset must not hold the session's start (see src/pipeline/clock-offset.ts).
    const db = await connect(url, { role, applicationName: 'branchline-check', connectTimeoutMs: 10_000, ...bounded(CHECK_TIMEOUT_MS) });
    try {
      const res = await db.query<{ active_pid: number | null; wal_status: string | null; plugin: string; reason: string | null }>(
        `SELECT active_pid, wal_status, plugin,
                ${(await serverVersion(db)) >= 170000 ? 'invalidation_reason' : "CASE WHEN wal_status = 'lost' THEN 'wal_removed' END"} AS reason
           FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
        [slot],
      );
      const row = res.rows[0];
      if (!row)
        throw new BranchlineError({
          code: 'BL-S001',
          message: `the replication slot "${slot}" does not exist at the ${role} database (${describeUrl(url)}).`,
          hint: 'Run `branchline install` to create it. If it was dropped after changes were made, those changes are gone from the store\'s WAL: reload the store with an initial load.',
        });
      if (row.reason || row.wal_status === 'lost')
        throw new BranchlineError({
          code: 'BL-S003',
          message: `the replication slot "${slot}" at the ${role} database was invalidated (${row.reason ?? 'wal_removed'}): the store removed WAL branchline had not applied yet, so HQ cannot be brought in step from the slot.`,
          hint: invalidatedHint(this.options),
        });
      if (row.plugin !== 'pgoutput')
        throw new BranchlineError({
          code: 'BL-S001',
          message: `the replication slot "${slot}" uses the plugin "${row.plugin}", not pgoutput.`,
          hint: 'Drop it or configure another `slot:` name for this store, then run `branchline install`.',
        });
      const pub = await db.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [publication]);
      if (pub.rowCount === 0)
        throw new BranchlineError({
          code: 'BL-S004',
          message: `the publication "${publication}" does not exist at the ${role} database.`,
          hint: 'Run `branchline install` to create it.',
        });
      if (row.active_pid !== null) {
        // A previous connection of ours can linger after a network cut until
        // the server notices (wal_sender_timeout). The caller holds the HQ
        // lock for this pipeline, so any other reader of the slot is stale.
        this.options.logger.warn('replication slot held by a stale connection; terminating it', { slot, pid: row.active_pid });
        await db.query('SELECT pg_terminate_backend($1)', [row.active_pid]);
        for (let i = 0; i < 50; i++) {
          const again = await db.query<{ active_pid: number | null }>(`SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
          if (again.rows[0]?.active_pid == null) return;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new BranchlineError({
          code: 'BL-S002',
          message: `the replication slot "${slot}" is in use by another connection (pid ${row.active_pid}) at the ${role} database.`,
          hint: 'Another process reads this slot. Stop it, or give this store its own `slot:`.',
        });
      }
    } catch (e) {
      if (isConnectionError(e)) throw connectionError(e, url, role);
      throw e;
    } finally {
      await endClient(db);
    }
  }
}

async function serverVersion(db: pg.Client): Promise<number> {
  const res = await db.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  return Number(res.rows[0]?.v ?? 0);
}

type Waiter = { resolve: (r: IteratorResult<SourceMessage<SlotPosition>>) => void; reject: (e: unknown) => void };

/** One replication connection, exposed as an async iterator of source messages with bounded buffering. */
class PgLogicalStream implements SourceStream<SlotPosition> {
  readonly messages: AsyncIterator<SourceMessage<SlotPosition>>;
  private readonly plugin: PgoutputPlugin;
  private readonly wal: WalStream;
  private readonly queue: SourceMessage<SlotPosition>[] = [];
  private head = 0;
  private waiter: Waiter | null = null;
  private failure: unknown = null;
  private ended = false;
  private inTransaction = false;
  private skipping = false;
  /** The open transaction is in an initial load's copy for the loaded tables only: their changes are dropped. */
  private skippingLoaded = false;
  /** Where the open transaction's commit record starts. */
  private commitStart: Lsn | null = null;
  /** The position of the last commit sent (carries an initial load's snapshot until the stream passes it). */
  private current: SlotPosition | null;
  private readonly highWater: number;
  private readonly lowWater: number;
  private readonly relations = new Map<number, TableId>();
  private readonly shapes = new Map<number, RelationShape>();
  /** Where inserts keep their rows as bytes (see TupleRow). */
  private readonly arena = new TupleArena();

  constructor(
    private readonly client: pg.Client,
    private readonly after: SlotPosition | null,
    private readonly options: PgLogicalSourceOptions,
  ) {
    this.current = after;
    this.plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [options.publication] });
    this.highWater = options.highWaterMark ?? 5_000;
    this.lowWater = Math.floor(this.highWater / 4);
    this.wal = new WalStream({
      client,
      logger: options.logger,
      statusIntervalMs: options.statusIntervalMs ?? 10_000,
      silenceTimeoutMs: options.silenceTimeoutMs ?? 45_000,
      onData: (payload) => this.onData(payload),
      onKeepalive: (walEnd) => this.onKeepalive(walEnd),
      onSilence: () =>
        this.fail(
          new BranchlineError({
            code: 'BL-S005',
            message: `the ${options.role} database sent nothing for ${Math.round((options.silenceTimeoutMs ?? 45_000) / 1000)} s, not even an answer to a ping.`,
            hint: 'The connection is treated as lost and re-opened; check the network between this agent and the store if this repeats.',
          }),
        ),
    });
    client.on('error', (e) => this.fail(e));
    client.on('end', () => this.fail(new Error('Connection terminated')));
    this.messages = { next: () => this.next() };
  }

  start(): void {
    const start = this.after?.lsn ?? Lsn.ZERO;
    this.options.logger.info('replication starting', { slot: this.options.slot, from: this.after?.toString() ?? 'slot position' });
    // Written here rather than by the plugin's start(), which cannot pass `origin`.
    const options = [`proto_version '1'`, `publication_names ${quoteLiteral(this.options.publication)}`];
    if (this.options.onlyLocalChanges ?? true) options.push(`origin 'none'`);
    this.client
      .query(`START_REPLICATION SLOT ${quoteIdent(this.options.slot)} LOGICAL ${start.toString()} (${options.join(', ')})`)
      .then(() => this.fail(new Error('Connection terminated: replication ended by the server')))
      .catch((e: unknown) => this.fail(e));
    this.wal.start();
  }

  ack(position: SlotPosition): void {
    this.wal.confirm(position.lsn);
  }

  async close(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      this.wal.stop();
      this.settle({ done: true, value: undefined });
    }
    // end() waits for the server to finish the copy; a broken link must not hang us.
    await endClient(this.client);
  }

  poll(): SourceMessage<SlotPosition> | undefined {
    if (this.head >= this.queue.length) return undefined;
    const value = this.queue[this.head]!;
    this.head++;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (this.queue.length - this.head <= this.lowWater) this.wal.resume();
    return value;
  }

  private next(): Promise<IteratorResult<SourceMessage<SlotPosition>>> {
    const value = this.poll();
    if (value) return Promise.resolve({ done: false, value });
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    this.wal.resume();
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private push(msg: SourceMessage<SlotPosition>): void {
    if (this.ended) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ done: false, value: msg });
      return;
    }
    this.queue.push(msg);
    if (this.queue.length - this.head >= this.highWater) this.wal.pause();
  }

  private settle(result: IteratorResult<SourceMessage<SlotPosition>>): void {
    const w = this.waiter;
    this.waiter = null;
    w?.resolve(result);
  }

  private fail(e: unknown): void {
    if (this.failure || this.ended) return;
    this.failure = mapStreamError(e, this.options);
    this.wal.stop();
    const w = this.waiter;
    this.waiter = null;
    w?.reject(this.failure);
    const conn = (this.client as unknown as { connection?: { stream?: { destroy(): void } } }).connection;
    conn?.stream?.destroy();
  }

  private onKeepalive(walEnd: Lsn): void {
    if (this.inTransaction) return;
    // Coalesce consecutive idle notes: only the newest position matters.
    const last = this.queue.length > this.head ? this.queue[this.queue.length - 1] : undefined;
    const position = this.current ? this.current.idleAt(walEnd) : SlotPosition.at(walEnd);
    if (last && last.kind === 'idle') {
      this.queue[this.queue.length - 1] = { kind: 'idle', position };
      return;
    }
    this.push({ kind: 'idle', position });
  }

  private onData(payload: Buffer): void {
    const tag = payload[0];
    // Row data, the hot path: decoded here (see row-decoder.ts), or not at all when skipped.
    if (tag === 0x49 /* I */ || tag === 0x55 /* U */ || tag === 0x44 /* D */) {
      if (this.skipping) return;
      try {
        const change = decodeRowMessage(payload, this.shapes, this.arena)!;
        if (this.skippingLoaded && change.op !== 'truncate' && this.after!.loaded(tableKey(change.table))) return;
        this.pushChange(change);
      } catch (e) {
        this.fail(e);
      }
      return;
    }
    // Begin and Commit come with every transaction: read here, without the library's BigInt parsing.
    if (tag === 0x42 /* B */ && payload.length >= 21) {
      this.onBegin(Lsn.read(payload, 1), pgTime(payload, 9), payload.readUInt32BE(17));
      return;
    }
    if (tag === 0x43 /* C */ && payload.length >= 26) {
      this.onCommit(Lsn.read(payload, 10), pgTime(payload, 18));
      return;
    }
    let msg: Pgoutput.Message;
    try {
      msg = this.plugin.parse(payload) as Pgoutput.Message;
    } catch (e) {
      this.fail(e);
      return;
    }
    switch (msg.tag) {
      case 'begin':
        this.onBegin(msg.commitLsn ? Lsn.parse(msg.commitLsn) : null, micros(msg.commitTime), msg.xid);
        return;
      case 'origin':
        return; // only local transactions are sent (origin 'none')
      case 'relation': {
        // Rows are decoded in text form by row-decoder.ts: exact numerics,
        // microsecond timestamps, no Date/number conversion.
        const table = { schema: msg.schema, table: msg.name };
        this.relations.set(msg.relationOid, table);
        this.shapes.set(msg.relationOid, {
          table,
          columns: msg.columns.map((c) => c.name),
          isKey: msg.columns.map((c) => (c.flags & 1) === 1),
        });
        return;
      }
      case 'truncate': {
        if (this.skipping) return;
        const tables = msg.relations.map((r) => this.table(r)).filter((t) => !this.skippingLoaded || !this.after!.loaded(tableKey(t)));
        if (tables.length > 0) this.pushChange({ op: 'truncate', tables });
        return;
      }
      case 'commit':
        this.onCommit(Lsn.parse(msg.commitEndLsn!), micros(msg.commitTime));
        return;
      default:
        return; // type, message: nothing to replicate
    }
  }

  private onBegin(commitStart: Lsn | null, commitTime: Date, xid: number): void {
    this.inTransaction = true;
    // Redelivered: committed at or before the position HQ already holds.
    // `commitStart` is where the commit record starts; our position is
    // where the last applied one ended.
    // Or, right after an initial load into HQ, already in its copy: the
    // load's snapshot saw this transaction committed (decided by xid).
    this.commitStart = commitStart;
    const after = this.after;
    const inCopy = after !== null && commitStart !== null ? after.inCopy(xid, commitStart) : 'none';
    this.skipping = (after !== null && commitStart !== null && commitStart.isBefore(after.lsn)) || inCopy === 'all';
    this.skippingLoaded = inCopy === 'loaded tables';
    if (!this.skipping)
      this.push(commitStart ? { kind: 'begin', xid, commitTime, commitPosition: SlotPosition.at(commitStart) } : { kind: 'begin', xid, commitTime });
  }

  private onCommit(end: Lsn, commitTime: Date): void {
    this.inTransaction = false;
    this.skippingLoaded = false;
    if (this.skipping) {
      this.skipping = false;
      return;
    }
    const position = this.current ? this.current.afterCommit(this.commitStart ?? end, end) : SlotPosition.at(end);
    this.current = position;
    this.push({ kind: 'commit', position, commitTime });
  }

  private pushChange(change: RowChange): void {
    this.push({ kind: 'change', change });
  }

  private table(relation: Pgoutput.MessageRelation): TableId {
    return this.relations.get(relation.relationOid) ?? { schema: relation.schema, table: relation.name };
  }
}

/** A pgoutput timestamp (Int64 microseconds since 2000-01-01) at `offset`, to the millisecond, without BigInt. */
function pgTime(buf: Buffer, offset: number): Date {
  const us = buf.readInt32BE(offset) * 4_294_967_296 + buf.readUInt32BE(offset + 4);
  return new Date(Math.floor(us / 1000) + 946_684_800_000);
}

function micros(us: bigint | BigInt): Date {
  return new Date(Number((us as bigint) / 1000n));
}

/** What to do about an invalidated slot (BL-S003): a new slot, and the store's tables loaded into HQ again. */
function invalidatedHint(options: PgLogicalSourceOptions): string {
  const load = options.reloadCommand ?? 'branchline snapshot --store S --direction up --restart';
  const install = load.replace(/^branchline snapshot (--store \S+).*$/, 'branchline install $1');
  return (
    `The pipeline is halted and applies nothing until then: re-create the slot with \`${install}\`, delete the store's rows from the up mappings' target tables at HQ (its totals too), ` +
    `and load them again with \`${load}\`; it carries on by itself once the load is done (docs/operations.md, "A store's slot was invalidated"). Raise max_slot_wal_keep_size so the next outage fits.`
  );
}

function mapStreamError(e: unknown, options: PgLogicalSourceOptions): unknown {
  if (e instanceof BranchlineError) return e;
  const err = e as { code?: string; message?: string };
  if (err?.code === '55006')
    return new BranchlineError(
      { code: 'BL-S002', message: `the replication slot "${options.slot}" is in use by another connection at the ${options.role} database.`, hint: 'branchline retries; if this persists, another process reads this slot.' },
      { cause: e },
    );
  if (err?.code === '42704' && /publication/i.test(err.message ?? ''))
    return new BranchlineError(
      { code: 'BL-S004', message: `the publication "${options.publication}" does not exist at the ${options.role} database.`, hint: 'Run `branchline install`.' },
      { cause: e },
    );
  if (err?.code === '42704')
    return new BranchlineError(
      { code: 'BL-S001', message: `the replication slot "${options.slot}" does not exist at the ${options.role} database.`, hint: 'Run `branchline install`.' },
      { cause: e },
    );
  if (err?.code === '55000' && /invalidated|wal_removed|can no longer/i.test(err.message ?? ''))
    return new BranchlineError(
      { code: 'BL-S003', message: `the replication slot "${options.slot}" at the ${options.role} database can no longer be read: ${err.message}.`, hint: invalidatedHint(options) },
      { cause: e },
    );
  if (isConnectionError(e)) return connectionError(e, options.url, options.role);
  return e;
}
