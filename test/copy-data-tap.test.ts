import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import pg from 'pg';
import { CopyDataTap } from '../connectors/pg-logical/copy-data-tap.js';
import { WalStream } from '../connectors/pg-logical/wal-stream.js';
import { silentLogger } from '../src/core/logger.js';

/** One backend protocol frame: code, Int32 length (counting itself), body. */
function frame(code: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = code.charCodeAt(0);
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** A small seeded generator (mulberry32), so a failure can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function bytes(random: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(random() * 256);
  return b;
}

/**
 * A connection's bytes: start-up frames, the START_REPLICATION answer
 * (CopyBothResponse), then CopyData frames with a notice, an error and the
 * end of the copy among them.
 */
function conversation(random: () => number, copyFrames: number, big: boolean) {
  const before = [
    frame('R', Buffer.from([0, 0, 0, 0])),
    frame('S', Buffer.from('server_version\u000017.1\u0000')),
    frame('K', bytes(random, 8)),
    frame('Z', Buffer.from('I')),
    frame('W', Buffer.from([0, 0, 0])),
  ];
  const after: Buffer[] = [];
  for (let i = 0; i < copyFrames; i++) {
    // Mostly small messages, some larger than a socket chunk.
    const size = big && i % 7 === 3 ? 70_000 + Math.floor(random() * 1000) : Math.floor(random() * 300);
    after.push(frame('d', bytes(random, size)));
    if (i === Math.floor(copyFrames / 2)) after.push(frame('N', Buffer.from('SNOTICE\u0000Mhello\u0000\u0000')));
  }
  after.push(frame('E', Buffer.from('SERROR\u0000C55000\u0000Mslot lost\u0000\u0000')), frame('c', Buffer.alloc(0)), frame('C', Buffer.from('COPY 0\u0000')), frame('Z', Buffer.from('I')));
  return { before, after, all: Buffer.concat([...before, ...after]) };
}

type Event = { kind: 'forward' | 'tapped'; bytes: Buffer };

function run(chunks: readonly Buffer[]): Event[] {
  const events: Event[] = [];
  const tap = new CopyDataTap(
    // The view is valid only during the call: copy it, as the decoder copies what it keeps.
    (buf, start, end) => events.push({ kind: 'tapped', bytes: Buffer.from(buf.subarray(start, end)) }),
    (b) => events.push({ kind: 'forward', bytes: Buffer.from(b) }),
  );
  for (const c of chunks) tap.feed(c);
  return events;
}

/** Every byte before and including the CopyBothResponse reaches pg in order; after it, each frame arrives whole, in order, CopyData at the handler and the rest at pg. */
function assertDelivered(events: Event[], conv: ReturnType<typeof conversation>, what: string): void {
  const beforeBytes = Buffer.concat(conv.before);
  let i = 0;
  let forwarded = 0;
  const head: Buffer[] = [];
  while (forwarded < beforeBytes.length) {
    const e = events[i++];
    assert.ok(e, `${what}: the stream ended after ${forwarded} of the ${beforeBytes.length} bytes before replication`);
    assert.equal(e.kind, 'forward', `${what}: a frame was taken before replication started`);
    head.push(e.bytes);
    forwarded += e.bytes.length;
  }
  assert.deepEqual(Buffer.concat(head), beforeBytes, `${what}: the bytes before replication differ (or ran past the CopyBothResponse)`);
  const rest = events.slice(i);
  assert.equal(rest.length, conv.after.length, `${what}: ${rest.length} deliveries after replication started, not one per frame (${conv.after.length})`);
  conv.after.forEach((f, k) => {
    const e = rest[k]!;
    assert.equal(e.kind, f[0] === 0x64 ? 'tapped' : 'forward', `${what}: frame ${k} (${String.fromCharCode(f[0]!)}) went the wrong way`);
    assert.ok(e.bytes.equals(f), `${what}: frame ${k} (${String.fromCharCode(f[0]!)}) arrived changed`);
  });
}

describe('CopyDataTap: CopyData frames taken off the replication socket', () => {
  it('splits at every byte: each cut point between two chunks delivers the same frames', () => {
    const conv = conversation(seeded(1), 12, false);
    for (let cut = 0; cut <= conv.all.length; cut++) {
      assertDelivered(run([conv.all.subarray(0, cut), conv.all.subarray(cut)]), conv, `cut at ${cut}`);
    }
  });

  it('one byte at a time, in one piece, and in random pieces with frames larger than a chunk', () => {
    const small = conversation(seeded(2), 20, false);
    assertDelivered(run([...small.all].map((b) => Buffer.from([b]))), small, 'one byte at a time');
    assertDelivered(run([small.all]), small, 'in one piece');
    for (let seed = 3; seed < 23; seed++) {
      const random = seeded(seed);
      const conv = conversation(random, 300, true);
      const chunks: Buffer[] = [];
      for (let at = 0; at < conv.all.length; ) {
        const n = 1 + Math.floor(random() * 65_536);
        chunks.push(conv.all.subarray(at, at + n));
        at += n;
      }
      assertDelivered(run(chunks), conv, `seed ${seed}, ${chunks.length} chunks`);
    }
  });

  it('does nothing to a connection that never starts replication', () => {
    const frames = [frame('R', Buffer.from([0, 0, 0, 0])), frame('Z', Buffer.from('I')), frame('T', bytes(seeded(4), 40)), frame('D', bytes(seeded(5), 30)), frame('C', Buffer.from('SELECT 1\u0000'))];
    const all = Buffer.concat(frames);
    const events = run([all.subarray(0, 7), all.subarray(7, 50), all.subarray(50)]);
    assert.ok(events.every((e) => e.kind === 'forward'));
    assert.deepEqual(Buffer.concat(events.map((e) => e.bytes)), all);
  });

  it('refuses a frame whose length cannot be', () => {
    const bad = Buffer.concat([frame('W', Buffer.from([0, 0, 0])), Buffer.from([0x64, 0, 0, 0, 2, 9, 9])]);
    assert.throws(() => run([bad]), /protocol frame whose length is 2, less than the 4 bytes of the length itself/);
    // The same with the bad header cut in two.
    assert.throws(() => run([bad.subarray(0, 10), bad.subarray(10)]), /protocol frame whose length is 2, less than the 4 bytes of the length itself/);
  });

  it('installed on a client: XLogData reaches the WAL stream, and a message cut short fails the connection instead of being skipped', () => {
    const client = new pg.Client({});
    const payloads: string[] = [];
    new WalStream({
      client,
      logger: silentLogger(),
      onData: (p) => payloads.push(p.toString('latin1')),
      onKeepalive: () => undefined,
      statusIntervalMs: 60_000,
      silenceTimeoutMs: 60_000,
      onSilence: () => undefined,
    });
    // The socket as pg would attach it: a tap failure must destroy it, not throw out of its 'data' listener.
    let destroyedWith: Error | null = null;
    const socket = Object.assign(new EventEmitter(), { destroy: (e: Error) => void (destroyedWith = e) });
    (client as unknown as { connection: { attachListeners(s: unknown): void } }).connection.attachListeners(socket);
    const xlogData = (body: string) => frame('d', Buffer.concat([Buffer.from([0x77]), Buffer.alloc(24), Buffer.from(body, 'latin1')]));
    socket.emit('data', Buffer.concat([frame('W', Buffer.from([0, 0, 0])), xlogData('first'), xlogData('second').subarray(0, 9)]));
    socket.emit('data', Buffer.concat([xlogData('second').subarray(9), xlogData('third')]));
    assert.deepEqual(payloads, ['first', 'second', 'third']);
    assert.equal(destroyedWith, null);
    socket.emit('data', frame('d', Buffer.from([0x77, 1, 2])));
    assert.match((destroyedWith as Error | null)?.message ?? '(not destroyed)', /XLogData message of 3 bytes, shorter than its 25-byte header/);
    assert.deepEqual(payloads, ['first', 'second', 'third'], 'nothing delivered from the broken message');
  });
});
