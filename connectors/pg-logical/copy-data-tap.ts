import { EventEmitter } from 'node:events';
import type pg from 'pg';

/** Called for each CopyData frame once replication started: the frame is `buf[start, end)`, its first byte the code `d`. */
export type CopyDataHandler = (buf: Buffer, start: number, end: number) => void;

const COPY_DATA = 0x64; // d
const REPLICATION_START = 0x57; // W (CopyBothResponse)
const HEADER = 5; // code byte + Int32 length (which counts itself)

/**
 * The replication connection's CopyData frames, taken off the socket before
 * `pg`'s protocol parser sees them.
 *
 * During catch-up a walsender sends hundreds of thousands of small CopyData
 * messages a second. Through `pg` each one becomes a Buffer slice and a
 * message object, and is emitted as an event twice over (the connection's
 * and the client's listeners). Here a frame is handed over as its place in
 * the socket's chunk; only a frame cut by a chunk boundary is copied.
 *
 * Everything before the CopyBothResponse that starts replication (start-up,
 * authentication, the START_REPLICATION command's answer) and every frame
 * after it that is not CopyData (ErrorResponse, NoticeResponse, CopyDone,
 * CommandComplete, ReadyForQuery) still goes to `pg`, byte for byte and in
 * order, so errors, the end of the stream and the client's state work
 * exactly as without the tap.
 */
export class CopyDataTap {
  private tapping = false;
  /** An incomplete frame's bytes so far (its header may be incomplete too). */
  private partial: Buffer | null = null;
  private partialLength = 0;

  constructor(
    private readonly onCopyData: CopyDataHandler,
    /** Bytes for `pg`'s parser. */
    private readonly forward: (bytes: Buffer) => void,
  ) {}

  /**
   * Installs a tap on a client that has not connected yet: `pg` then reads
   * the socket through it (TLS or not: the tap sits on the stream `pg`
   * parses, after any TLS layer).
   */
  static install(client: pg.Client, onCopyData: CopyDataHandler): CopyDataTap {
    const connection = (client as unknown as { connection: TappableConnection }).connection;
    const attach = connection.attachListeners.bind(connection);
    let attached = false;
    const proxy = new EventEmitter();
    const installed = new CopyDataTap(onCopyData, (bytes) => proxy.emit('data', bytes));
    connection.attachListeners = (stream: NodeJS.ReadableStream) => {
      if (attached) throw new Error('internal: the replication connection attached its listeners twice');
      attached = true;
      stream.on('data', (chunk: Buffer) => {
        try {
          installed.feed(chunk);
        } catch (e) {
          // Never an exception out of a socket listener: the connection fails, and its owner reconnects.
          (stream as unknown as { destroy(error: Error): void }).destroy(e instanceof Error ? e : new Error(String(e)));
        }
      });
      stream.on('end', () => proxy.emit('end'));
      attach(proxy as unknown as NodeJS.ReadableStream);
    };
    return installed;
  }

  /** One chunk read from the socket. */
  feed(chunk: Buffer): void {
    let at = 0;
    /** Before replication: where the bytes not yet forwarded start (everything is forwarded, in runs). */
    let run = 0;
    if (this.partialLength > 0) {
      at = this.complete(chunk);
      if (at < 0) {
        // Still incomplete: before replication its bytes go on to pg as they come.
        if (!this.tapping) this.forward(chunk);
        return;
      }
      const frame = this.partial!;
      const length = this.partialLength;
      this.partial = null;
      this.partialLength = 0;
      if (!this.tapping) {
        this.forward(chunk.subarray(0, at));
        run = at;
        if (frame[0] === REPLICATION_START) this.tapping = true;
      } else this.frame(frame, 0, length);
    }
    const end = chunk.length;
    while (at + HEADER <= end) {
      const length = 1 + chunk.readUInt32BE(at + 1);
      if (length < HEADER) throw new Error(`the server sent a protocol frame whose length is ${length - 1}, less than the 4 bytes of the length itself`);
      if (at + length > end) break;
      if (!this.tapping) {
        at += length;
        if (chunk[at - length] === REPLICATION_START) {
          this.forward(chunk.subarray(run, at));
          run = at;
          this.tapping = true;
        }
        continue;
      }
      this.frame(chunk, at, at + length);
      at += length;
    }
    if (at < end) this.keep(chunk, at);
    if (!this.tapping && run < end) this.forward(run === 0 ? chunk : chunk.subarray(run));
  }

  private frame(buf: Buffer, start: number, end: number): void {
    if (buf[start] === COPY_DATA) this.onCopyData(buf, start, end);
    // pg's parser may keep what it is given: a copy of the (rare) other frames.
    else this.forward(Buffer.from(buf.subarray(start, end)));
  }

  /** Starts keeping an incomplete frame: `chunk[at..]`. */
  private keep(chunk: Buffer, at: number): void {
    const have = chunk.length - at;
    const size = have >= HEADER ? 1 + chunk.readUInt32BE(at + 1) : HEADER;
    this.partial = Buffer.allocUnsafe(size);
    chunk.copy(this.partial, 0, at);
    this.partialLength = have;
  }

  /** Adds the start of `chunk` to the kept frame; returns where the frame ends in `chunk`, or -1 when it still is not whole. */
  private complete(chunk: Buffer): number {
    let at = 0;
    if (this.partialLength < HEADER) {
      const take = Math.min(HEADER - this.partialLength, chunk.length);
      chunk.copy(this.partial!, this.partialLength, 0, take);
      this.partialLength += take;
      at = take;
      if (this.partialLength < HEADER) return -1;
      const size = 1 + this.partial!.readUInt32BE(1);
      if (size < HEADER) throw new Error(`the server sent a protocol frame whose length is ${size - 1}, less than the 4 bytes of the length itself`);
      const grown = Buffer.allocUnsafe(size);
      this.partial!.copy(grown, 0, 0, HEADER);
      this.partial = grown;
    }
    const frame = this.partial!;
    const take = Math.min(frame.length - this.partialLength, chunk.length - at);
    chunk.copy(frame, this.partialLength, at, at + take);
    this.partialLength += take;
    at += take;
    return this.partialLength === frame.length ? at : -1;
  }
}

interface TappableConnection {
  attachListeners(stream: NodeJS.ReadableStream): void;
}
