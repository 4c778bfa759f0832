import pg from 'pg';
import { Lsn } from '../../src/core/lsn.js';
import type { Logger } from '../../src/core/logger.js';
import { CopyDataTap } from './copy-data-tap.js';

/** Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
const PG_EPOCH_MS = 946_684_800_000;

export interface WalStreamOptions {
  readonly client: pg.Client;
  readonly logger: Logger;
  /** Called for each XLogData payload, in order (a view of the socket's bytes, valid during the call). */
  readonly onData: (payload: Buffer) => void;
  /** Called for each primary keepalive, in order with the data. */
  readonly onKeepalive: (walEnd: Lsn) => void;
  /** Status update period; also how often silence is checked. */
  readonly statusIntervalMs: number;
  /** No message from the server for this long (after pings) ends the stream. */
  readonly silenceTimeoutMs: number;
  readonly onSilence: () => void;
}

/**
 * The walsender side of the replication protocol, over a `pg` client in
 * replication mode: XLogData and keepalives in, standby status updates out.
 *
 * Why not `LogicalReplicationService` from pg-logical-replication: its
 * acknowledge() reports `lsn + 1` as flushed, which can make the server
 * skip a transaction whose commit record starts exactly at the end of the
 * one acknowledged; its flow-control queue swallows handler errors and keeps
 * going; and keepalives overtake queued data, so "nothing pending" cannot be
 * judged. We keep its pgoutput parser and write the stream part here.
 */
export class WalStream {
  private flushed: Lsn | null = null;
  /** The highest WAL end the server reported, as two 32-bit halves (no BigInt per message). */
  private receivedHigh = 0;
  private receivedLow = 0;
  private lastServerMessageAt = Date.now();
  private pingSentAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private paused = false;
  private closed = false;

  /** Before the client connects: its CopyData frames then come here straight from the socket (see CopyDataTap). */
  constructor(private readonly options: WalStreamOptions) {
    CopyDataTap.install(options.client, (buf, start, end) => this.onCopyData(buf, start, end));
  }

  // pg's Connection is not in its typings.
  private get connection(): {
    on(event: string, fn: (...args: never[]) => void): void;
    sendCopyFromChunk(buffer: Buffer): void;
    stream: NodeJS.ReadableStream & { destroy(): void; destroyed?: boolean };
  } {
    return (this.options.client as unknown as { connection: never }).connection;
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.options.statusIntervalMs);
    this.timer.unref();
  }

  /** Reports `position` as durably applied (write, flush and apply). Never moves backwards. */
  confirm(position: Lsn): void {
    if (this.flushed && !position.isAfter(this.flushed)) return;
    this.flushed = position;
    this.sendStatus(false);
  }

  get confirmed(): Lsn | null {
    return this.flushed;
  }

  pause(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.connection.stream.pause();
  }

  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    this.connection.stream.resume();
  }

  stop(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One CopyData frame, `buf[start, end)`: code `d`, Int32 length, then the replication message. */
  private onCopyData(buf: Buffer, start: number, end: number): void {
    if (this.closed) return;
    this.lastServerMessageAt = Date.now();
    this.pingSentAt = 0;
    const at = start + 5;
    const type = buf[at];
    if (type === 0x77 /* w: XLogData */) {
      // Never skipped: a message cut short fails the connection (CopyDataTap destroys it), which is then opened again.
      if (end - at < 25) throw new Error(`the server sent an XLogData message of ${end - at} bytes, shorter than its 25-byte header`);
      this.noteReceived(buf, at + 9);
      this.options.onData(buf.subarray(at + 25, end));
    } else if (type === 0x6b /* k: primary keepalive */) {
      if (end - at < 18) throw new Error(`the server sent a keepalive message of ${end - at} bytes, not 18`);
      this.noteReceived(buf, at + 1);
      if (buf[at + 17] === 1) this.sendStatus(false);
      this.options.onKeepalive(Lsn.read(buf, at + 1));
    } else {
      this.options.logger.warn('unknown replication message ignored', { type, bytes: end - at });
    }
  }

  /** The WAL end at `offset` (8 bytes, big-endian), kept when it is past what was received. */
  private noteReceived(buf: Buffer, offset: number): void {
    const high = buf.readUInt32BE(offset);
    const low = buf.readUInt32BE(offset + 4);
    if (high > this.receivedHigh || (high === this.receivedHigh && low > this.receivedLow)) {
      this.receivedHigh = high;
      this.receivedLow = low;
    }
  }

  private get received(): Lsn {
    return Lsn.fromBigInt((BigInt(this.receivedHigh) << 32n) | BigInt(this.receivedLow));
  }

  private tick(): void {
    if (this.closed) return;
    const silentFor = Date.now() - this.lastServerMessageAt;
    if (silentFor >= this.options.silenceTimeoutMs) {
      this.options.onSilence();
      return;
    }
    // Ask for a reply when the server has been quiet for a while: it answers
    // with a keepalive carrying its current position (which lets an idle
    // store's slot advance) and proves the connection is alive.
    const wantReply = silentFor >= this.options.statusIntervalMs && this.pingSentAt === 0;
    if (wantReply) this.pingSentAt = Date.now();
    this.sendStatus(wantReply);
  }

  /**
   * Standby status update ('r'). flush = apply = what the target committed;
   * 0 (invalid, ignored by the server) until something was confirmed, so a
   * restart never moves the slot's confirmed position backwards.
   */
  private sendStatus(replyRequested: boolean): void {
    if (this.closed || this.connection.stream.destroyed) return;
    const flush = this.flushed ?? Lsn.ZERO;
    const write = Lsn.max(this.received, flush);
    const buf = Buffer.alloc(34);
    buf[0] = 0x72; // 'r'
    write.write(buf, 1);
    flush.write(buf, 9);
    flush.write(buf, 17);
    buf.writeBigInt64BE(BigInt(Date.now() - PG_EPOCH_MS) * 1000n, 25);
    buf[33] = replyRequested ? 1 : 0;
    try {
      this.connection.sendCopyFromChunk(buf);
    } catch (e) {
      this.options.logger.debug('status update not sent', { error: (e as Error).message });
    }
  }
}
