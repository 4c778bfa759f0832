import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startInProcess, type InProcess } from './support/in-process.js';
import { eventually } from './support/world.js';

/**
 * Rows a store inserted go to HQ by COPY when a statement holds at least
 * `apply.copy_min_rows` of them (100 here, the default), straight from the
 * capture's bytes for plain mappings (src/core/tuple-row.ts,
 * src/apply/copy-rows.ts). What must hold, and what this file checks:
 * - values reach HQ exactly, whatever bytes they hold (COPY's escapes);
 * - a big statement is a COPY and a small one an INSERT (an HQ statement
 *   trigger records which, by `current_query()`);
 * - a value HQ's column cannot hold is refused, never cut: the batch is
 *   redone change by change and that change parked (BL-A004);
 * - a row HQ already holds makes the COPY fail and the batch redone with
 *   upserts: every row once, with the store's values;
 * - inserts, updates and deletes of the same rows in one transaction net out;
 * - `commit_time()` is not a constant: each transaction's own time.
 */

const STORE_SQL = `
CREATE TABLE note (id int PRIMARY KEY, body text, code varchar(20), amount numeric(12,3), raw bytea, tags text[], at timestamptz);
CREATE TABLE stamped (id int PRIMARY KEY, v text);
`;

const HQ_SQL = `
CREATE TABLE h_note (store_code text, id int, body text, code varchar(5), amount numeric(12,2), raw bytea, tags text[], at timestamptz,
                     PRIMARY KEY (store_code, id));
CREATE TABLE h_stamped (store_code text, id int, v text, seen timestamptz, PRIMARY KEY (store_code, id));
-- Which statement wrote rows: COPY or INSERT (the first word of the statement the client sent).
CREATE TABLE h_stmt (n bigserial PRIMARY KEY, tbl text, verb text);
CREATE FUNCTION rec_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO h_stmt (tbl, verb) VALUES (TG_TABLE_NAME, upper(split_part(ltrim(current_query()), ' ', 1)));
  RETURN NULL;
END $$;
CREATE TRIGGER rec AFTER INSERT ON h_note FOR EACH STATEMENT EXECUTE FUNCTION rec_stmt();
CREATE TRIGGER rec AFTER INSERT ON h_stamped FOR EACH STATEMENT EXECUTE FUNCTION rec_stmt();
`;

const MAPPINGS = {
  'note.yml': `source: note
target: h_note
key: [store_code, id]
columns:
  store_code: store.code
  id: id
  body: body
  code: code
  amount: amount
  raw: raw
  tags: tags
  at: at
`,
  'stamped.yml': `source: stamped
target: h_stamped
key: [store_code, id]
columns:
  store_code: store.code
  id: id
  v: v
  seen: commit_time()
`,
};

/** Text COPY must escape (backslash, tab, newline, carriage return), its markers (\\N, \\.), and what else tends to break. */
const BODIES: readonly (string | null)[] = [
  'plain',
  'back\\slash',
  '\\\\two',
  '\\N',
  '\\.',
  'tab\there',
  'new\nline',
  'carriage\rreturn',
  'crlf\r\nend',
  '\t\n\r\\',
  '',
  'NULL',
  '\\x41',
  'Ação 中文 🍕 e\u0301',
  '"quoted" {braces} a,b',
  null,
  'x'.repeat(100_000) + '\\\t',
];

const STORE = 'C1';

describe('COPY of the rows a store inserted', () => {
  let env: InProcess;
  const store = () => env.world.stores[0]!.pool;
  const hq = <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => env.world.hqQuery<R>(sql, params);
  const verbs = async (fromN: number) =>
    (await hq<{ tbl: string; verb: string; n: string }>(`SELECT tbl, verb, count(*)::text AS n FROM h_stmt WHERE n > $1 GROUP BY 1, 2 ORDER BY 1, 2`, [fromN])).map(
      (r) => `${r.tbl} ${r.verb} ${r.n}`,
    );
  const lastStmt = async () => Number((await hq<{ n: string | null }>(`SELECT max(n)::text AS n FROM h_stmt`))[0]?.n ?? 0);
  /** Both sides as text; HQ's numeric(12,2) holds the store's numeric(12,3) rounded, as an INSERT would round it. */
  const noteRows = async (where = 'true') => {
    const cols = (amount: string) => `id, body, code, ${amount} AS amount, encode(raw, 'hex') AS raw, tags::text AS tags, (at AT TIME ZONE 'UTC')::text AS at`;
    const s = await store().query(`SELECT ${cols('round(amount, 2)::text')} FROM note WHERE ${where} ORDER BY id`);
    const h = await hq(`SELECT ${cols('amount::text')} FROM h_note WHERE store_code = $1 AND ${where} ORDER BY id`, [STORE]);
    return { store: s.rows as Record<string, unknown>[], hq: h };
  };
  const waitCount = (what: string, sql: string, n: number) =>
    eventually(what, async () => Number((await hq<{ n: string }>(sql, [STORE]))[0]?.n) === n, 30_000, 100);

  before(async () => {
    env = await startInProcess({ name: 'copy-apply', stores: [STORE], hqSql: HQ_SQL, storeSql: STORE_SQL, mappings: MAPPINGS });
  });

  after(async () => {
    await env?.dispose();
  });

  it('every value arrives exactly through COPY, and a small statement is still an INSERT', async () => {
    const mark = await lastStmt();
    // 340 rows in one transaction: one COPY. Each body, bytea of all 256 bytes and odd arrays.
    await store().query(
      `INSERT INTO note (id, body, code, amount, raw, tags, at)
       SELECT n, b.body, CASE WHEN n % 7 = 0 THEN NULL ELSE 'c' || (n % 1000) END, (n * 1.0005)::numeric(12,3),
              CASE WHEN n % 3 = 0 THEN NULL ELSE decode(string_agg(lpad(to_hex((n + k) % 256), 2, '0'), '' ORDER BY k), 'hex') END,
              CASE WHEN n % 2 = 0 THEN ARRAY['a"b', E'c\\\\d', NULL, '{x}', E'tab\\there'] ELSE '{}'::text[] END,
              timestamptz '2024-02-29 23:59:59.999999+00' + n * interval '1 hour'
         FROM generate_series(1, 340) n
         JOIN LATERAL (SELECT ($1::jsonb ->> ((n - 1) % jsonb_array_length($1::jsonb)))::text AS body) b ON true
         CROSS JOIN generate_series(0, 255) k
        GROUP BY n, b.body`,
      [JSON.stringify(BODIES)],
    );
    await waitCount('340 notes at HQ', `SELECT count(*) AS n FROM h_note WHERE store_code = $1`, 340);
    const rows = await noteRows();
    assert.equal(rows.store.length, 340);
    assert.deepEqual(rows.hq, rows.store, 'HQ holds exactly what the store holds');
    assert.ok(rows.store.some((r) => r['raw'] !== null && String(r['raw']).length === 512), 'bytea values of 256 bytes were among them');
    const bodies = (rows.hq as { body: string | null }[]).slice(0, BODIES.length).map((r) => r.body);
    assert.deepEqual(bodies, BODIES, 'every hostile body unchanged');
    assert.deepEqual(await verbs(mark), ['h_note COPY 1'], 'the 340 rows went in one COPY');

    const mark2 = await lastStmt();
    await store().query(`INSERT INTO note (id, body) VALUES (1001, E'small\\tone'), (1002, NULL)`);
    await waitCount('two more notes', `SELECT count(*) AS n FROM h_note WHERE store_code = $1`, 342);
    assert.deepEqual(await verbs(mark2), ['h_note INSERT 1'], 'two rows are an INSERT');
    assert.deepEqual((await noteRows('id > 1000')).hq.map((r) => (r as { body: unknown }).body), ['small\tone', null]);
  });

  it('a value too long for HQ is refused, not cut: that change parked, the other rows of the COPY applied', async () => {
    await store().query(`INSERT INTO note (id, body, code) SELECT n, 'long ' || n, CASE WHEN n = 2077 THEN 'toolong' ELSE 'ok' END FROM generate_series(2001, 2150) n`);
    await waitCount('149 of the 150 notes at HQ', `SELECT count(*) AS n FROM h_note WHERE store_code = $1 AND id BETWEEN 2001 AND 2150`, 149);
    const parked = await hq<{ reason_code: string; reason: string; row_keys: string[] }>(`SELECT reason_code, reason, row_keys FROM branchline.parked WHERE status = 'parked'`);
    assert.equal(parked.length, 1, 'one change parked');
    assert.equal(parked[0]!.reason_code, 'BL-A004');
    assert.match(parked[0]!.reason, /too long/);
    assert.match(parked[0]!.row_keys.join(), /2077/);
    assert.equal((await hq(`SELECT 1 FROM h_note WHERE id = 2077`)).length, 0, 'the value was not stored cut to 5 characters');
    // A later change of the row waits behind it; HQ's column widened, a retry applies both, in order.
    await store().query(`UPDATE note SET code = 'fixed' WHERE id = 2077`);
    await eventually('the update parked behind the insert', async () => (await hq(`SELECT 1 FROM branchline.parked WHERE status = 'parked'`)).length === 2, 30_000, 100);
    await hq(`ALTER TABLE h_note ALTER code TYPE varchar(10)`);
    await hq(`UPDATE branchline.parked SET retry_requested_at = now() WHERE status = 'parked'`);
    await eventually('the row at HQ with its last value', async () => (await hq<{ code: string }>(`SELECT code FROM h_note WHERE id = 2077`))[0]?.code === 'fixed', 30_000, 100);
    assert.equal((await hq(`SELECT 1 FROM branchline.parked WHERE status = 'parked'`)).length, 0, 'nothing left parked');
  });

  it('a row HQ already holds: the COPY fails, the batch is redone with upserts, every row once with the store\'s values', async () => {
    await hq(`INSERT INTO h_note (store_code, id, body) VALUES ($1, 3050, 'stale at HQ')`, [STORE]);
    const redoneBefore = env.agent.snapshot().get(STORE)!.batchesRedone;
    await store().query(`INSERT INTO note (id, body) SELECT n, 'fresh ' || n FROM generate_series(3001, 3200) n`);
    await waitCount('200 notes of the 3000s', `SELECT count(*) AS n FROM h_note WHERE store_code = $1 AND id BETWEEN 3001 AND 3200`, 200);
    await eventually('the stale row replaced', async () => (await hq<{ body: string }>(`SELECT body FROM h_note WHERE id = 3050`))[0]?.body === 'fresh 3050', 30_000, 100);
    assert.ok(env.agent.snapshot().get(STORE)!.batchesRedone > redoneBefore, 'the batch was redone in exact order');
    const r = await noteRows('id BETWEEN 3001 AND 3200');
    assert.deepEqual(r.hq, r.store);
  });

  it('inserts, updates and deletes of the same rows in one transaction net out', async () => {
    const client = await store().connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO note (id, body, code) SELECT n, 'v1 ' || n, 'a' FROM generate_series(4001, 4300) n`);
      await client.query(`UPDATE note SET body = E'v2\\t' || id, code = 'b' WHERE id BETWEEN 4001 AND 4300 AND id % 2 = 0`);
      await client.query(`DELETE FROM note WHERE id BETWEEN 4001 AND 4300 AND id % 3 = 0`);
      await client.query(`INSERT INTO note (id, body, code) SELECT n, 'again ' || n, 'c' FROM generate_series(4001, 4300) n WHERE n % 9 = 0`);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    let expected = 0;
    for (let n = 4001; n <= 4300; n++) if (n % 3 !== 0 || n % 9 === 0) expected++;
    await waitCount(`${expected} notes of the 4000s`, `SELECT count(*) AS n FROM h_note WHERE store_code = $1 AND id BETWEEN 4001 AND 4300`, expected);
    const r = await noteRows('id BETWEEN 4001 AND 4300');
    assert.equal(r.store.length, expected);
    assert.deepEqual(r.hq, r.store);
  });

  it('commit_time() is each transaction\'s own time, not a constant of the COPY', async () => {
    await store().query(`INSERT INTO stamped SELECT n, 'first' FROM generate_series(1, 150) n`);
    await new Promise((r) => setTimeout(r, 50));
    await store().query(`INSERT INTO stamped SELECT n, 'second' FROM generate_series(151, 300) n`);
    await waitCount('300 stamped rows', `SELECT count(*) AS n FROM h_stamped WHERE store_code = $1`, 300);
    const seen = await hq<{ v: string; times: string; first: Date; last: Date }>(
      `SELECT v, count(DISTINCT seen)::text AS times, min(seen) AS first, max(seen) AS last FROM h_stamped GROUP BY v ORDER BY v`,
    );
    assert.deepEqual(
      seen.map((s) => [s.v, s.times]),
      [
        ['first', '1'],
        ['second', '1'],
      ],
      'one commit time per transaction',
    );
    assert.ok(seen[1]!.first.getTime() - seen[0]!.first.getTime() >= 40, `the second transaction's time is its own (${seen[0]!.first.toISOString()} then ${seen[1]!.first.toISOString()})`);
  });
});
