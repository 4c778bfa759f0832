import type { BranchlineError } from '../src/core/errors.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PgTriggerInstaller, PgTriggerSource, purgeChangeLog, XID8_CODEC, type PgTriggerSourceOptions, type XidPosition } from '../connectors/pg-trigger/index.js';
import type { SourceMessage } from '../src/core/change.js';
import type { SourceStream } from '../src/core/source.js';
import { silentLogger } from '../src/core/logger.js';
import { startTestServer, type TestServer } from './support/pg.js';

/**
 * The pg-trigger source on real PostgreSQL: values in text form whatever the
 * writer's session settings, before-images, truncates, no echo of
 * branchline's own writes, restart from a position, and no gap when a long
 * transaction commits after later ones.
 */

const SCHEMA = `CREATE TABLE price (id int PRIMARY KEY, amount numeric(12,2), tags int[], at timestamptz, day date, note text, raw bytea);`;

type Msg = SourceMessage<XidPosition>;

/** Reads until `n` changes and the commit that closes them arrived (windows may hold several store transactions), or fails after `ms`. */
async function commits(stream: SourceStream<XidPosition>, n: number, ms = 10_000): Promise<Msg[]> {
  const out: Msg[] = [];
  let seen = 0;
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`waited ${ms} ms for ${n} changes; got ${JSON.stringify(out, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`);
    const r = await Promise.race([stream.messages.next(), new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), left))]);
    if (r === 'timeout') continue;
    if (r.done) throw new Error('stream ended');
    if (r.value.kind === 'idle') continue;
    out.push(r.value);
    if (r.value.kind === 'change') seen++;
    if (r.value.kind === 'commit' && seen >= n) return out;
  }
}

/** Waits `ms` and returns what arrived meanwhile besides idle messages (to show that nothing did). */
async function quiet(stream: SourceStream<XidPosition>, ms: number): Promise<Msg[]> {
  const out: Msg[] = [];
  const until = Date.now() + ms;
  for (;;) {
    const left = until - Date.now();
    if (left <= 0) return out;
    const r = await Promise.race([stream.messages.next(), new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), left))]);
    if (r === 'timeout') return out;
    if (!r.done && r.value.kind !== 'idle') out.push(r.value);
  }
}

const changes = (msgs: Msg[]) => msgs.filter((m) => m.kind === 'change').map((m) => (m as Extract<Msg, { kind: 'change' }>).change);

describe('pg-trigger source', { timeout: 120_000 }, () => {
  let server: TestServer;
  let db: string;
  let url: string;
  const clients: pg.Client[] = [];
  const client = async (settings: string[] = []) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    for (const s of settings) await c.query(s);
    clients.push(c);
    return c;
  };
  const source = (more: Partial<PgTriggerSourceOptions> = {}) => new PgTriggerSource({ url, role: 'test', logger: silentLogger(), pollMs: 100, ...more });

  before(async () => {
    server = await startTestServer('pg-trigger');
    db = await server.createDatabase('trig');
    url = server.url(db);
    await server.query(db, SCHEMA);
    const done = await new PgTriggerInstaller({ url, role: 'test', logger: silentLogger() }).install([{ schema: 'public', table: 'price' }]);
    assert.deepEqual(done, ['created the change log branchline.change_log', 'created the capture triggers on public.price (7 columns)']);
  });
  after(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    await server?.dispose();
  });

  it('delivers inserts, updates with before-images, deletes and truncates, values in text form whatever the writer\'s settings', async () => {
    const stream = await source().open(null);
    try {
      const w = await client([`SET datestyle = 'SQL, DMY'`, `SET timezone = 'America/Sao_Paulo'`, `SET bytea_output = 'escape'`]);
      await w.query(`INSERT INTO price VALUES (1, 10.50, '{1,2}', '2026-11-23 10:00:00-03', '2026-02-01', 'a "quoted", text', '\\x00ff')`);
      await w.query(`UPDATE price SET amount = 11.00, note = NULL WHERE id = 1`);
      await w.query(`DELETE FROM price WHERE id = 1`);
      await w.query(`TRUNCATE price`);
      const got = changes(await commits(stream, 4));
      const row = { id: '1', amount: '10.50', tags: '{1,2}', at: '2026-11-23 13:00:00+00', day: '2026-02-01', note: 'a "quoted", text', raw: '\\x00ff' };
      const updated = { ...row, amount: '11.00', note: null };
      const price = { schema: 'public', table: 'price' };
      assert.deepEqual(got, [
        { op: 'insert', table: price, after: row },
        { op: 'update', table: price, before: row, after: updated },
        { op: 'delete', table: price, before: updated },
        { op: 'truncate', tables: [price] },
      ]);
    } finally {
      await stream.close();
    }
  });

  it('does not give a reader back what was written on its behalf (no echo), and gives it to the others', async () => {
    const stream = await source({ skipOrigin: 'S001' }).open(null);
    const other = await source({ skipOrigin: 'S002' }).open(null);
    try {
      await commits(stream, 4); // the previous test's changes, from the start of the log
      await commits(other, 4);
      const b = await client([`SET branchline.origin = 'S001'`]);
      await b.query(`INSERT INTO price (id) VALUES (2)`);
      const w = await client();
      await w.query(`INSERT INTO price (id) VALUES (3)`);
      const got = changes(await commits(stream, 1));
      assert.deepEqual(got.map((c) => c.op === 'insert' && c.after['id']), ['3'], 'S001 does not get back the row applied for it');
      const others = changes(await commits(other, 2));
      assert.deepEqual(others.map((c) => c.op === 'insert' && c.after['id']), ['2', '3'], 'S002 gets both');
    } finally {
      await stream.close();
      await other.close();
    }
  });

  it('never skips a long transaction that commits after later ones, and resumes after a position', async () => {
    let stream = await source().open(null);
    let position: XidPosition;
    try {
      const all = await commits(stream, 6);
      position = (all.filter((m) => m.kind === 'commit').at(-1) as Extract<Msg, { kind: 'commit' }>).position;
      const long = await client();
      await long.query('BEGIN');
      await long.query(`INSERT INTO price (id) VALUES (10)`); // takes its xid first
      const w = await client();
      await w.query(`INSERT INTO price (id) VALUES (11)`); // commits first
      await w.query(`INSERT INTO price (id) VALUES (12)`);
      assert.deepEqual(changes(await quiet(stream, 1_000)), [], 'nothing while the older transaction runs: delivering 11 and 12 would move the position past 10');
      await long.query('COMMIT');
      const got = changes(await commits(stream, 3));
      assert.deepEqual(got.map((c) => c.op === 'insert' && c.after['id']), ['10', '11', '12'], 'all three, in log order');
    } finally {
      await stream.close();
    }
    // From the position before 10, 11 and 12: exactly those, once.
    stream = await source().open(position);
    try {
      const got = changes(await commits(stream, 3));
      assert.deepEqual(got.map((c) => c.op === 'insert' && c.after['id']), ['10', '11', '12']);
      assert.deepEqual(changes(await quiet(stream, 500)), []);
    } finally {
      await stream.close();
    }
    assert.equal(XID8_CODEC.format(XID8_CODEC.parse(XID8_CODEC.format(position))), XID8_CODEC.format(position));
    assert.deepEqual(XID8_CODEC.parse('10:14:11,12'), { bound: 10n, snapshot: '10:14:11,12' });
    assert.ok(XID8_CODEC.compare(XID8_CODEC.parse('10:14:11'), XID8_CODEC.parse('10')) > 0);
  });

  it('right after an initial load, skips exactly the transactions its snapshot saw', async () => {
    const long = await client();
    await long.query('BEGIN');
    await long.query(`INSERT INTO price (id) VALUES (20)`); // running when the snapshot is taken: not in the copy
    const w = await client();
    await w.query(`INSERT INTO price (id) VALUES (21)`); // committed before it: in the copy
    const snap = (await w.query<{ s: string }>(`SELECT pg_current_snapshot()::text AS s`)).rows[0]!.s;
    await long.query('COMMIT');
    await w.query(`INSERT INTO price (id) VALUES (22)`); // after it
    const stream = await source().open(XID8_CODEC.parse(snap));
    try {
      const got = changes(await commits(stream, 2));
      assert.deepEqual(got.map((c) => c.op === 'insert' && c.after['id']), ['20', '22'], `from snapshot ${snap}: 21 is in the copy`);
      assert.deepEqual(changes(await quiet(stream, 500)), []);
    } finally {
      await stream.close();
    }
  });

  it('after an initial load, keeps skipping what its snapshot saw while transactions it saw running are still open', async () => {
    // Two transactions running at the snapshot (first and second), one that committed before it with a later xid
    // (in the copy). The first ends: the reader's bound moves to the second's xid, still below what the copy holds.
    const first = await client();
    await first.query('BEGIN');
    await first.query(`INSERT INTO price (id) VALUES (40)`);
    const second = await client();
    await second.query('BEGIN');
    await second.query(`INSERT INTO price (id) VALUES (41)`);
    const w = await client();
    await w.query(`INSERT INTO price (id) VALUES (42)`); // in the copy
    const snap = (await w.query<{ s: string }>(`SELECT pg_current_snapshot()::text AS s`)).rows[0]!.s;
    await first.query('COMMIT');
    const stream = await source().open(XID8_CODEC.parse(snap));
    try {
      const got = await commits(stream, 1);
      assert.deepEqual(changes(got).map((c) => c.op === 'insert' && c.after['id']), ['40']);
      const at = (got.filter((m) => m.kind === 'commit').at(-1) as Extract<Msg, { kind: 'commit' }>).position;
      assert.notEqual(at.snapshot, null, `the position after the first window still carries the snapshot (${XID8_CODEC.format(at)})`);
      await second.query('COMMIT');
      await w.query(`INSERT INTO price (id) VALUES (43)`);
      const rest = changes(await commits(stream, 2));
      assert.deepEqual(rest.map((c) => c.op === 'insert' && c.after['id']), ['41', '43'], `42 is in the copy: never delivered (snapshot ${snap})`);
      assert.deepEqual(changes(await quiet(stream, 300)), []);
    } finally {
      await stream.close();
    }
  });

  it('purges below what every reader applied; a reader behind the purge or without a start is told to reload', async () => {
    const a = await source({ reader: 'down:A' }).open(null);
    let at: XidPosition;
    try {
      // What the log holds (the earlier tests' changes, several transactions of a window): read on to the end of the window.
      const all = await commits(a, 9);
      at = (all.filter((m) => m.kind === 'commit').at(-1) as Extract<Msg, { kind: 'commit' }>).position;
      while (at.window) {
        const m = (await a.messages.next()).value as Msg;
        if (m.kind === 'commit' || m.kind === 'idle') at = m.position;
      }
      a.ack(at);
    } finally {
      await a.close();
    }
    const w = await client();
    await w.query(`INSERT INTO price (id) VALUES (30)`);
    // Reader B applied nothing yet (position 1): the log keeps everything for it.
    await w.query(`INSERT INTO branchline.change_log_readers (reader, position) VALUES ('down:B', '1')`);
    const before = (await w.query<{ n: number }>(`SELECT count(*)::int AS n FROM branchline.change_log`)).rows[0]!.n;
    const kept = await purgeChangeLog(w, { retentionHours: 1000 });
    assert.equal(kept.deleted, 0, 'B holds the log');
    await w.query(`DELETE FROM branchline.change_log_readers WHERE reader = 'down:B'`);
    const purged = await purgeChangeLog(w, { retentionHours: 1000 });
    assert.equal(purged.purgedBelow, at!.bound, `purged up to what A applied (${XID8_CODEC.format(at!)})`);
    assert.equal(purged.deleted, before - 1, 'everything but row 30');
    // A resumes; a reader at an older position, or with none while a start is required, is refused.
    const again = await source({ reader: 'down:A' }).open(at!);
    try {
      assert.deepEqual(changes(await commits(again, 1)).map((c) => c.op === 'insert' && c.after['id']), ['30']);
    } finally {
      await again.close();
    }
    await assert.rejects(source({ reader: 'down:C', reloadCommand: 'branchline snapshot --store C' }).open(XID8_CODEC.parse('1')), (e: BranchlineError) => {
      assert.equal(e.code, 'BL-S006');
      assert.match(e.message, /was purged below/);
      assert.match(e.problem.hint ?? '', /branchline snapshot --store C/);
      return true;
    });
    await assert.rejects(source({ reader: 'down:C', requireStart: true }).open(null), (e: BranchlineError) => e.code === 'BL-S007');
    // Retention: a reader that stays away too long no longer holds the log.
    await w.query(`INSERT INTO branchline.change_log_readers (reader, position) VALUES ('down:Z', '1')`);
    await w.query(`INSERT INTO price (id) VALUES (31)`);
    await w.query(`UPDATE branchline.change_log SET logged_at = logged_at - interval '3 hours'`);
    const old = await purgeChangeLog(w, { retentionHours: 2 });
    assert.ok(old.deleted >= 2, `rows older than the retention are gone (${old.deleted})`);
    // A read 30 but never acknowledged it; Z applied nothing: both are behind what was purged.
    assert.deepEqual(old.readersBehind, ['down:A', 'down:Z']);
  });

  it('install run again while a writer writes misses none of its changes', async () => {
    const w = await client();
    await w.query(`INSERT INTO price (id, note) VALUES (999001, 'x') ON CONFLICT (id) DO NOTHING`);
    const before = Number((await w.query<{ n: string }>(`SELECT count(*)::text AS n FROM branchline.change_log WHERE table_name = 'price'`)).rows[0]!.n);
    let writes = 0;
    let stop = false;
    const writer = (async () => {
      while (!stop) {
        await w.query(`UPDATE price SET note = $1 WHERE id = (SELECT min(id) FROM price)`, [`w${writes}`]);
        writes++;
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 10; i++) {
      const done = await new PgTriggerInstaller({ url, role: 'test', logger: silentLogger() }).install([{ schema: 'public', table: 'price' }]);
      assert.deepEqual(done, ['refreshed the capture triggers on public.price (7 columns)']);
    }
    stop = true;
    await writer;
    const after = Number((await w.query<{ n: string }>(`SELECT count(*)::text AS n FROM branchline.change_log WHERE table_name = 'price'`)).rows[0]!.n);
    assert.ok(writes > 10, `the writer wrote during the installs (${writes})`);
    assert.equal(after - before, writes, 'every write captured');
  });

  it('uninstall removes the triggers, the functions and the log, and nothing else', async () => {
    const done = await new PgTriggerInstaller({ url, role: 'test', logger: silentLogger() }).uninstall();
    assert.deepEqual(done, ['removed the capture triggers from public.price', 'dropped the change log branchline.change_log']);
    const tables = await server.query(db, `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'branchline'`);
    assert.deepEqual(tables, [{ n: 0 }], 'the readers and purge tables go with the log');
    const left = await server.query(db, `SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'branchline%')::int AS triggers,
      (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'branchline')::int AS functions,
      to_regclass('public.price') IS NOT NULL AS price`);
    assert.deepEqual(left, [{ triggers: 0, functions: 0, price: true }]);
  });
});

describe('pg-trigger source with a route filter (HQ\'s down reader of one store)', { timeout: 120_000 }, () => {
  let server: TestServer;
  let url: string;
  let w: pg.Client;
  const STORE_PRICE = { schema: 'public', table: 'store_price' };
  const PRODUCT = { schema: 'public', table: 'product' };
  const source = (more: Partial<PgTriggerSourceOptions> = {}) => new PgTriggerSource({ url, role: 'HQ', logger: silentLogger(), pollMs: 100, ...more });
  const filtered = () => source({ rowFilter: { store: 'S1', routed: [STORE_PRICE], columns: [{ table: STORE_PRICE, column: 'store_code' }] } });

  before(async () => {
    server = await startTestServer('pg-trigger-route');
    const db = await server.createDatabase('route');
    url = server.url(db);
    await server.query(db, `CREATE TABLE store_price (store_code text NOT NULL, product_id int NOT NULL, price numeric(12,2), PRIMARY KEY (store_code, product_id));
      CREATE TABLE product (id int PRIMARY KEY, name text)`);
    await new PgTriggerInstaller({ url, role: 'HQ', logger: silentLogger() }).install([STORE_PRICE, PRODUCT]);
    w = new pg.Client({ connectionString: url });
    await w.connect();
  });
  after(async () => {
    await w?.end().catch(() => undefined);
    await server?.dispose();
  });

  it('reads only the rows routed to its store (old or new row), every row of other tables, and truncates; skipped transactions still move the position', async () => {
    // 1: S2 only (not delivered to S1). 2: S1 and S2. 3: a product (every store). 4: a price moved from S1 to S2 (S1 must remove it).
    await w.query(`INSERT INTO store_price SELECT 'S2', g, g FROM generate_series(1, 50) g`);
    await w.query(`INSERT INTO store_price VALUES ('S1', 1, 1.00), ('S2', 51, 51.00)`);
    await w.query(`INSERT INTO product VALUES (7, 'seven')`);
    await w.query(`UPDATE store_price SET store_code = 'S2', product_id = 99 WHERE store_code = 'S1' AND product_id = 1`);
    await w.query(`UPDATE store_price SET price = price + 1 WHERE store_code = 'S2'`); // 51 rows, none of S1's
    await w.query(`TRUNCATE store_price`);
    await w.query(`INSERT INTO product VALUES (8, 'eight')`); // after the S2-only ones: reached only if the position moved past them
    const all = await (await source()).open(XID8_CODEC.parse('0'));
    const everything = changes(await commits(all, 50 + 2 + 1 + 1 + 51 + 1 + 1));
    await all.close();
    assert.equal(everything.length, 107, 'the unfiltered reader gets every row');

    const s1 = await (await filtered()).open(XID8_CODEC.parse('0'));
    const msgs = await commits(s1, 5);
    const got = changes(msgs).map((c) => (c.op === 'truncate' ? 'truncate' : `${c.op} ${c.table.table} ${JSON.stringify(c.op === 'delete' ? c.before : c.after)}${c.op === 'update' ? ` from ${JSON.stringify(c.before)}` : ''}`));
    assert.deepEqual(got, [
      'insert store_price {"price":"1.00","product_id":"1","store_code":"S1"}',
      'insert product {"id":"7","name":"seven"}',
      'update store_price {"price":"1.00","product_id":"99","store_code":"S2"} from {"price":"1.00","product_id":"1","store_code":"S1"}',
      'truncate',
      'insert product {"id":"8","name":"eight"}',
    ]);
    // Only transactions with something for S1 are delivered (the S2-only insert and update are not).
    assert.equal(msgs.filter((m) => m.kind === 'begin').length, 5);
    // Nothing more comes, and a reader opened at the last position gets nothing again.
    assert.deepEqual(await quiet(s1, 500), []);
    const last = [...msgs].reverse().find((m) => m.kind === 'commit') as Extract<Msg, { kind: 'commit' }>;
    await s1.close();
    const again = await (await filtered()).open(last.position);
    assert.deepEqual(await quiet(again, 500), []);
    await again.close();
  });
});
