import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { PgLogicalInstaller, PgLogicalSource } from '../connectors/pg-logical/index.js';
import type { SourceMessage } from '../src/core/change.js';
import { silentLogger } from '../src/core/logger.js';
import { Lsn } from '../src/core/lsn.js';
import pg from 'pg';
import { PgSnapshot } from '../src/core/pg-snapshot.js';
import { SlotPosition } from '../src/core/slot-position.js';
import type { SourceStream } from '../src/core/source.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { makeCertificates, type TestCertificates } from './support/tls.js';
import { rm } from 'node:fs/promises';

/** Reads messages until `n` commits have arrived (or fails after `ms`). */
async function readCommits(stream: SourceStream<SlotPosition>, n: number, ms = 15_000): Promise<SourceMessage<SlotPosition>[]> {
  const out: SourceMessage<SlotPosition>[] = [];
  let commits = 0;
  const deadline = Date.now() + ms;
  while (commits < n) {
    const left = deadline - Date.now();
    assert.ok(left > 0, `timed out after ${commits} of ${n} commits`);
    const r = await Promise.race([
      stream.messages.next(),
      new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), left).unref()),
    ]);
    assert.notEqual(r, 'timeout', `timed out after ${commits} of ${n} commits`);
    const res = r as IteratorResult<SourceMessage<SlotPosition>>;
    assert.equal(res.done, false);
    if (res.value.kind === 'idle') continue;
    out.push(res.value);
    if (res.value.kind === 'commit') commits++;
  }
  return out;
}

/** Changes as plain objects (the decoder builds rows without a prototype). */
function changes(msgs: SourceMessage<SlotPosition>[]) {
  return msgs.flatMap((m) => {
    if (m.kind !== 'change') return [];
    const c = m.change as unknown as Record<string, unknown>;
    // An insert keeps its row as bytes (TupleInsert: `after` is built from `tuple` when read); compared by its values.
    const { tuple, ...own } = c;
    if (c['op'] === 'insert') assert.ok(tuple !== undefined, 'an insert carries its row as bytes (TupleRow)');
    const out: Record<string, unknown> = { ...own };
    if (c['after']) out['after'] = { ...(c['after'] as object) };
    if (c['before']) out['before'] = { ...(c['before'] as object) };
    return [out as unknown as typeof m.change];
  });
}

function commits(msgs: SourceMessage<SlotPosition>[]) {
  return msgs.flatMap((m) => (m.kind === 'commit' ? [m.position] : []));
}

describe('pg-logical source', () => {
  let server: TestServer;
  let db: string;
  const slot = 'branchline_test';
  const publication = 'branchline_test';
  const logger = silentLogger();
  let source: PgLogicalSource;

  before(async () => {
    server = await startTestServer('pglogical');
    db = await server.createDatabase('store');
    await server.query(
      db,
      `CREATE TABLE item (id int PRIMARY KEY, label text, price numeric(20,6), at timestamptz, raw bytea, big text);
       CREATE TABLE other (id int PRIMARY KEY);`,
    );
    const installer = new PgLogicalInstaller({ url: server.url(db), role: 'store T', slot, publication, logger });
    const first = await installer.install([{ schema: 'public', table: 'item' }]);
    assert.match(first.join('\n'), /created publication/);
    assert.match(first.join('\n'), /created replication slot/);
    const again = await installer.install([{ schema: 'public', table: 'item' }]);
    assert.match(again.join('\n'), /already holds the 1 mapped tables/);
    assert.match(again.join('\n'), /already exists/);
    source = new PgLogicalSource({ url: server.url(db), role: 'store T', slot, publication, logger, statusIntervalMs: 200, silenceTimeoutMs: 10_000 });
  });

  after(async () => {
    await server?.dispose();
  });

  it('delivers committed transactions in order with exact text values and resumes after a position', async () => {
    const stream = await source.open(null);
    try {
      await server.query(db, `INSERT INTO item VALUES (1, 'caf\u00e9 \u{1F600}', 12345678901234.123456, '2026-11-23 10:11:12.345678+00', '\\x00ff10', NULL)`);
      await server.query(db, `INSERT INTO other VALUES (1)`); // not published: no transaction delivered
      await server.query(db, `BEGIN; UPDATE item SET label = 'x' WHERE id = 1; DELETE FROM item WHERE id = 1; COMMIT;`);
      const msgs = await readCommits(stream, 2);
      const ch = changes(msgs);
      assert.equal(ch.length, 3);
      assert.deepEqual(ch[0], {
        op: 'insert',
        table: { schema: 'public', table: 'item' },
        after: { id: '1', label: 'caf\u00e9 \u{1F600}', price: '12345678901234.123456', at: '2026-11-23 10:11:12.345678+00', raw: '\\x00ff10', big: null },
      });
      assert.equal(ch[1]!.op, 'update');
      assert.equal(ch[2]!.op, 'delete');
      assert.deepEqual((ch[2] as { before: unknown }).before, { id: '1' });
      const [c1, c2] = commits(msgs);
      assert.ok(c1!.isBefore(c2!), 'commit positions increase');
      stream.ack(c1!);
    } finally {
      await stream.close();
    }

    // Resume after the first commit: only the second transaction comes back.
    const again = await source.open(null);
    let secondPos: SlotPosition;
    try {
      const msgs = await readCommits(again, 1);
      assert.deepEqual(
        changes(msgs).map((c) => c.op),
        ['update', 'delete'],
      );
      secondPos = commits(msgs)[0]!;
      // not acknowledged: the slot will send it again
    } finally {
      await again.close();
    }

    // The slot redelivers the second transaction, but a consumer that holds
    // it already (position stored at HQ) passes `after` and never sees it.
    const resumed = await source.open(secondPos);
    try {
      await server.query(db, `INSERT INTO item (id, label) VALUES (2, 'two')`);
      const msgs = await readCommits(resumed, 1);
      assert.deepEqual(changes(msgs), [
        { op: 'insert', table: { schema: 'public', table: 'item' }, after: { id: '2', label: 'two', price: null, at: null, raw: null, big: null } },
      ]);
      resumed.ack(commits(msgs)[0]!);
    } finally {
      await resumed.close();
    }
  });

  it('leaves unchanged TOAST values out of an update instead of writing NULL', async () => {
    // Incompressible and over 2 kB: stored out of line (TOAST).
    const big = randomBytes(12_000).toString('base64');
    await server.query(db, `INSERT INTO item (id, label, big) VALUES (3, 'a', $1)`, [big]);
    const stream = await source.open(null);
    try {
      await server.query(db, `UPDATE item SET label = 'b' WHERE id = 3`);
      const msgs = await readCommits(stream, 2);
      const ch = changes(msgs);
      assert.equal(ch[0]!.op, 'insert');
      assert.equal((ch[0] as { after: Record<string, unknown> }).after['big'], big);
      const upd = ch[1] as { op: string; after: Record<string, unknown> };
      assert.equal(upd.op, 'update');
      assert.equal(upd.after['label'], 'b');
      assert.equal('big' in upd.after && upd.after['big'] !== undefined, false, 'unchanged TOAST value must be absent, not null');
      stream.ack(commits(msgs).at(-1)!);
    } finally {
      await stream.close();
    }
  });

  it('acknowledging an idle position lets the slot advance when nothing is pending', async () => {
    const stream = await source.open(null);
    try {
      const before = await server.query<{ lsn: string }>(db, `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
      // WAL moves on without any published change (another table).
      for (let i = 10; i < 20; i++) await server.query(db, `INSERT INTO other VALUES (${i})`);
      let idle: SlotPosition | null = null;
      const deadline = Date.now() + 10_000;
      while (!idle || !idle.lsn.isAfter(Lsn.parse(before[0]!.lsn))) {
        assert.ok(Date.now() < deadline, 'no idle position arrived');
        const r = await stream.messages.next();
        assert.equal(r.done, false);
        if (r.value.kind === 'idle') idle = r.value.position;
      }
      stream.ack(idle);
      let confirmed = Lsn.ZERO;
      while (confirmed.isBefore(idle.lsn)) {
        assert.ok(Date.now() < deadline, 'slot did not advance');
        await new Promise((r) => setTimeout(r, 100));
        const now = await server.query<{ lsn: string }>(db, `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
        confirmed = Lsn.parse(now[0]!.lsn);
      }
      assert.ok(confirmed.isAfter(Lsn.parse(before[0]!.lsn)));
    } finally {
      await stream.close();
    }
  });

  it('delivers a transaction far larger than its buffer, whole and in order', async () => {
    const small = new PgLogicalSource({ url: server.url(db), role: 'store T', slot, publication, logger, highWaterMark: 50 });
    const stream = await small.open(null);
    try {
      await server.query(db, `INSERT INTO item (id, label) SELECT g, 'r' || g FROM generate_series(1000, 40999) g`);
      let n = 0;
      let last = 999;
      for (;;) {
        const r = await stream.messages.next();
        assert.equal(r.done, false);
        const m = r.value;
        if (m.kind === 'change') {
          const id = Number((m.change as { after: Record<string, string> }).after['id']);
          assert.equal(id, last + 1);
          last = id;
          n++;
          if (n % 5000 === 0) await new Promise((res) => setTimeout(res, 20)); // a slow consumer
        }
        if (m.kind === 'commit') break;
      }
      assert.equal(n, 40_000);
    } finally {
      await stream.close();
    }
  });

  it('right after an initial load, skips by xid what the load\'s snapshot saw: whole transactions, or only the loaded tables\' changes', async () => {
    await server.query(db, `CREATE TABLE la (id int PRIMARY KEY); CREATE TABLE lb (id int PRIMARY KEY); CREATE PUBLICATION load_pub FOR TABLE la, lb`);
    const [slotRow] = await server.query<{ lsn: string }>(db, `SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot('load_slot', 'pgoutput')`);
    await server.query(db, `BEGIN; INSERT INTO la VALUES (1); INSERT INTO lb VALUES (1); COMMIT`); // seen by the snapshot
    const running = new pg.Client({ connectionString: server.url(db) });
    await running.connect();
    await running.query(`BEGIN`);
    await running.query(`INSERT INTO la VALUES (2); INSERT INTO lb VALUES (2)`); // running for the snapshot
    const [taken] = await server.query<{ s: string; until: string }>(db, `SELECT pg_current_snapshot()::text AS s, pg_current_wal_insert_lsn()::text AS until`);
    await running.query(`COMMIT`);
    await running.end();
    await server.query(db, `BEGIN; INSERT INTO la VALUES (3); INSERT INTO lb VALUES (3); COMMIT`); // after it
    const src = new PgLogicalSource({ url: server.url(db), role: 'store T', slot: 'load_slot', publication: 'load_pub', logger });
    const read = async (tables: string[] | null, n: number) => {
      const stream = await src.open(SlotPosition.withLoad(Lsn.parse(slotRow!.lsn), PgSnapshot.parse(taken!.s), Lsn.parse(taken!.until), tables));
      try {
        const msgs = await readCommits(stream, n);
        const rows = changes(msgs).map((c) => (c.op === 'insert' ? `${c.table.table}:${c.after['id']}` : c.op));
        return { rows, positions: commits(msgs) };
      } finally {
        await stream.close();
      }
    };
    const all = await read(null, 2);
    assert.deepEqual(all.rows, ['la:2', 'lb:2', 'la:3', 'lb:3']);
    assert.ok(all.positions.every((p) => p.load === null), 'both commits are past until: plain positions');
    const some = await read(['public.la'], 3);
    assert.deepEqual(some.rows, ['lb:1', 'la:2', 'lb:2', 'la:3', 'lb:3']);
    assert.notEqual(some.positions[0]!.load, null, 'a commit before until keeps the snapshot in the position');
    assert.equal(some.positions[2]!.load, null);
    await server.query(db, `SELECT pg_drop_replication_slot('load_slot'); DROP PUBLICATION load_pub`);
  });

  it('says clearly when the slot is missing', async () => {
    const missing = new PgLogicalSource({ url: server.url(db), role: 'store T', slot: 'nope', publication, logger });
    await assert.rejects(missing.open(null), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'BL-S001');
      assert.match(e.message, /replication slot "nope" does not exist at the store T database/);
      assert.match(e.message, /branchline install/);
      return true;
    });
  });

  it('uninstall removes the slot and the publication and nothing else', async () => {
    const installer = new PgLogicalInstaller({ url: server.url(db), role: 'store T', slot, publication, logger });
    const done = await installer.uninstall();
    assert.deepEqual(done, [`dropped replication slot "${slot}"`, `dropped publication "${publication}"`]);
    const slots = await server.query(db, `SELECT 1 FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
    const pubs = await server.query(db, `SELECT 1 FROM pg_publication WHERE pubname = $1`, [publication]);
    const tables = await server.query(db, `SELECT count(*)::int AS n FROM item`);
    assert.equal(slots.length, 0);
    assert.equal(pubs.length, 0);
    assert.ok((tables[0] as { n: number }).n > 0, 'data untouched');
  });
});

/**
 * The capture reads the CopyData frames itself (CopyDataTap) from the
 * stream pg parses, which over TLS is the decrypted one: the same rows must
 * come through, and an error sent while replicating must still reach the
 * source as the server's error.
 */
describe('pg-logical source over TLS (sslmode=verify-full)', () => {
  let server: TestServer | null = null;
  let certs: TestCertificates | null = null;
  let db = '';
  const logger = silentLogger();

  before(async () => {
    certs = await makeCertificates('pglogical');
    server = await startTestServer('pglogical-tls', certs.settings);
    if (!server.controllable) return;
    db = await server.createDatabase('store');
    await server.query(db, `CREATE TABLE doc (id int PRIMARY KEY, body text)`);
    await new PgLogicalInstaller({ url: server.url(db), role: 'store T', slot: 'tls_slot', publication: 'tls_pub', logger }).install([{ schema: 'public', table: 'doc' }]);
  });

  after(async () => {
    await server?.dispose();
    if (certs) await rm(certs.dir, { recursive: true, force: true });
  });

  it('delivers every row, large values too, and passes on the server ending the stream', async (t) => {
    if (!server!.controllable) {
      t.skip('needs its own server with ssl=on and a test certificate, not the shared BRANCHLINE_TEST_PG_URL server');
      process.stdout.write('# skipped: needs its own server with a test certificate (BRANCHLINE_TEST_PG_URL is set)\n');
      return;
    }
    const u = new URL(server!.url(db));
    u.hostname = 'localhost';
    u.search = `?sslmode=verify-full&sslrootcert=${certs!.ca}`;
    const source = new PgLogicalSource({ url: u.toString(), role: 'store T', slot: 'tls_slot', publication: 'tls_pub', logger, statusIntervalMs: 200, silenceTimeoutMs: 10_000 });
    const stream = await source.open(null);
    try {
      // 200 small transactions and one of 20 rows of 100 kB: frames cut by TLS records and socket chunks.
      await server!.query(db, `DO $$ BEGIN FOR i IN 1..200 LOOP INSERT INTO doc VALUES (i, 'row ' || i); COMMIT; END LOOP; END $$`);
      await server!.query(db, `INSERT INTO doc SELECT 1000 + g, repeat(md5(g::text), 3125) FROM generate_series(1, 20) g`);
      const msgs = await readCommits(stream, 201, 30_000);
      const rows = changes(msgs).map((c) => (c as unknown as { after: { id: string; body: string } }).after);
      assert.equal(rows.length, 220);
      assert.deepEqual(rows.slice(0, 3), [{ id: '1', body: 'row 1' }, { id: '2', body: 'row 2' }, { id: '3', body: 'row 3' }]);
      assert.deepEqual(rows.slice(0, 200).map((r) => Number(r.id)), Array.from({ length: 200 }, (_, i) => i + 1));
      const big = await server!.query<{ id: string; body: string }>(db, `SELECT id::text, body FROM doc WHERE id > 1000 ORDER BY id`);
      assert.deepEqual(rows.slice(200), big.map((r) => ({ id: r.id, body: r.body })));
      assert.equal(rows[219]!.body.length, 100_000);
      // The walsender's link is encrypted.
      const ssl = await server!.query<{ ssl: boolean }>('postgres', `SELECT s.ssl FROM pg_stat_ssl s JOIN pg_replication_slots r ON r.active_pid = s.pid WHERE r.slot_name = 'tls_slot'`);
      assert.deepEqual(ssl, [{ ssl: true }]);
      // The server ends the walsender (a FATAL ErrorResponse while replicating): the stream fails with that error, not a hang.
      const ended = (async () => {
        const deadline = Date.now() + 15_000;
        // Keepalives may come first; nothing else is left to read.
        while (Date.now() < deadline) {
          const r = await stream.messages.next();
          if (r.done) throw new Error('the stream ended without an error');
          assert.equal(r.value.kind, 'idle');
        }
        throw new Error('the stream went on for 15 s after its walsender was terminated');
      })();
      const failed = assert.rejects(ended, (e: Error & { code?: string }) => {
        // The server's own words: its ErrorResponse went through the tap to pg, not just a closed socket.
        assert.equal(e.code, 'BL-D001');
        assert.match(e.message, /terminating connection due to administrator command/);
        return true;
      });
      await server!.query('postgres', `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'tls_slot'`);
      await failed;
    } finally {
      await stream.close();
    }
  });
});
