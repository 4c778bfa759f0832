import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startInProcess, type InProcess } from './support/in-process.js';
import { eventually } from './support/world.js';

/**
 * The pipeline in-process on a small schema built to corner the apply path:
 * order of many updates to one row, the grouped plan falling back to exact
 * order, huge transactions in chunks, key changes, TRUNCATE, unchanged TOAST.
 */

const STORE_SQL = `
  CREATE TABLE parent (id int PRIMARY KEY, code text NOT NULL UNIQUE, name text);
  CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent (id), version int NOT NULL, note text, big text);`;

const HQ_SQL = `
  CREATE TABLE h_parent (store_code text NOT NULL, id int NOT NULL, code text NOT NULL, name text,
    PRIMARY KEY (store_code, id), UNIQUE (store_code, code));
  -- No ON DELETE CASCADE: deleting a parent a child still points to fails.
  CREATE TABLE h_child (store_code text NOT NULL, id int NOT NULL, parent_id int NOT NULL, version int NOT NULL, note text, big text,
    PRIMARY KEY (store_code, id), FOREIGN KEY (store_code, parent_id) REFERENCES h_parent (store_code, id));
  -- Every version of every child HQ ever held, in the order HQ wrote them.
  CREATE TABLE child_versions (seq bigserial PRIMARY KEY, store_code text, id int, version int);
  CREATE FUNCTION log_version() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO child_versions (store_code, id, version) VALUES (NEW.store_code, NEW.id, NEW.version); RETURN NEW; END $$;
  CREATE TRIGGER log_version AFTER INSERT OR UPDATE ON h_child FOR EACH ROW EXECUTE FUNCTION log_version();`;

const PARENT_YML = `source: parent
target: h_parent
columns:
  store_code: store.code
  id: id
  code: code
  name: name
`;
const CHILD_YML = `source: child
target: h_child
columns:
  store_code: store.code
  id: id
  parent_id: parent_id
  version: version
  note: note
  big: big
`;

describe('pipeline on PostgreSQL', { timeout: 300_000 }, () => {
  let env: InProcess;
  const world = () => env.world;
  const agent = () => env.agent;

  const store = (i = 0) => world().stores[i]!;
  const sq = (sql: string, params?: unknown[], i = 0) => store(i).server.query(store(i).db, sql, params);
  const hq = <R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]) => world().hqQuery<R>(sql, params);
  const txnsApplied = async (code = 'A1') =>
    Number((await hq<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines WHERE pipeline = $1`, [`up:${code}`]))[0]?.n ?? 0);

  before(async () => {
    env = await startInProcess({
      name: 'pipeline',
      stores: ['A1', 'A2'],
      hqSql: HQ_SQL,
      storeSql: STORE_SQL,
      mappings: { 'parent.yml': PARENT_YML, 'child.yml': CHILD_YML },
      extraConfig: 'batch:\n  max_delay_ms: 600\n  idle_ms: 300\n  max_rows: 100000\n  chunk_rows: 1000',
    });
  });

  after(async () => {
    await env?.dispose();
  });

  it('applies hundreds of updates and deletes of one row in commit order', async () => {
    await sq(`INSERT INTO parent VALUES (1, 'P1', 'one'), (2, 'P2', 'two')`);
    await sq(`INSERT INTO child (id, parent_id, version) VALUES (1, 1, 0), (2, 1, 0)`);
    for (let v = 1; v <= 300; v++) {
      if (v % 50 === 0) {
        // delete and re-insert in one transaction, then in two
        await sq(`BEGIN; DELETE FROM child WHERE id = 1; INSERT INTO child (id, parent_id, version) VALUES (1, 2, ${v}); COMMIT;`);
        await sq(`DELETE FROM child WHERE id = 2`);
        await sq(`INSERT INTO child (id, parent_id, version) VALUES (2, 1, ${v})`);
      } else {
        await sq(`UPDATE child SET version = ${v}, note = 'v${v}' WHERE id IN (1, 2)`);
      }
    }
    await eventually('HQ at version 300', async () => {
      const r = await hq<{ version: number }>(`SELECT version FROM h_child WHERE store_code = 'A1' ORDER BY id`);
      return r.length === 2 && r.every((x) => x.version === 300);
    });
    const rows = await hq(`SELECT id, parent_id, version, note FROM h_child WHERE store_code = 'A1' ORDER BY id`);
    assert.deepEqual(rows, [
      { id: 1, parent_id: 2, version: 300, note: null },
      { id: 2, parent_id: 1, version: 300, note: null },
    ]);
    // Whatever HQ wrote on the way, it never went back to an older version.
    const seen = await hq<{ id: number; version: number }>(`SELECT id, version FROM child_versions WHERE store_code = 'A1' ORDER BY seq`);
    for (const id of [1, 2]) {
      const versions = seen.filter((s) => s.id === id).map((s) => s.version);
      assert.ok(versions.length >= 2, `row ${id}: HQ wrote it ${versions.length} times`);
      for (let i = 1; i < versions.length; i++) assert.ok(versions[i]! > versions[i - 1]!, `row ${id} went from version ${versions[i - 1]} back to ${versions[i]}`);
    }
  });

  it('redoes a batch in exact order when the grouped plan trips on a foreign key', async () => {
    await sq(`INSERT INTO parent VALUES (20, 'P20', 'old home'), (21, 'P21', 'new home'), (22, 'X22', 'code to free')`);
    await sq(`INSERT INTO child (id, parent_id, version) VALUES (20, 20, 1)`);
    await eventually('child 20 at HQ', async () => (await hq(`SELECT 1 FROM h_child WHERE store_code = 'A1' AND id = 20`)).length === 1);
    const before = await txnsApplied();
    // Two transactions that land in one batch: the child moves, then its old
    // parent goes. Grouped (deletes first) would delete the parent while HQ's
    // child still points to it.
    await sq(`UPDATE child SET parent_id = 21, version = 2 WHERE id = 20`);
    await sq(`DELETE FROM parent WHERE id = 20`);
    // And a unique code freed by one transaction and taken by the next.
    await sq(`DELETE FROM parent WHERE id = 22`);
    await sq(`INSERT INTO parent VALUES (23, 'X22', 'code reused')`);
    await eventually('the four transactions applied', async () => (await txnsApplied()) >= before + 4);
    assert.deepEqual(await hq(`SELECT id, parent_id, version FROM h_child WHERE store_code = 'A1' AND id = 20`), [{ id: 20, parent_id: 21, version: 2 }]);
    assert.deepEqual(await hq(`SELECT id, code FROM h_parent WHERE store_code = 'A1' AND id BETWEEN 20 AND 23 ORDER BY id`), [
      { id: 21, code: 'P21' },
      { id: 23, code: 'X22' },
    ]);
    const snap = agent().snapshot().get('A1')!;
    assert.equal(snap.state, 'streaming');
    assert.ok(snap.batchesRedone >= 1, 'the grouped plan should have failed on the foreign key and been redone in order');
    assert.equal(await txnsApplied(), before + 4, 'each transaction counted once even though the batch ran twice');
  });

  it('a row HQ already holds when the store inserts it: the plain INSERT is redone as an upsert', async () => {
    await world().hqQuery(`INSERT INTO h_parent (store_code, id, code, name) VALUES ('A1', 50, 'P50', 'written at HQ by hand')`);
    const before = await txnsApplied();
    const redone = agent().snapshot().get('A1')!.batchesRedone;
    await sq(`INSERT INTO parent VALUES (50, 'P50', 'from the store'), (51, 'P51', 'new')`);
    await eventually('the insert applied', async () => (await txnsApplied()) >= before + 1);
    assert.deepEqual(await hq(`SELECT id, name FROM h_parent WHERE store_code = 'A1' AND id IN (50, 51) ORDER BY id`), [
      { id: 50, name: 'from the store' },
      { id: 51, name: 'new' },
    ]);
    assert.equal(agent().snapshot().get('A1')!.batchesRedone, redone + 1, 'the conflict was met once and redone in exact order');
    assert.equal(await txnsApplied(), before + 1);
  });

  it('applies a huge transaction in chunks and shows it at HQ all at once', async () => {
    await sq(`INSERT INTO parent VALUES (100, 'P100', 'bulk')`);
    await eventually('parent 100 at HQ', async () => (await hq(`SELECT 1 FROM h_parent WHERE store_code = 'A1' AND id = 100`)).length === 1);
    const before = await txnsApplied();
    const counts = new Set<number>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const r = await hq<{ n: number }>(`SELECT count(*)::int AS n FROM h_child WHERE store_code = 'A1' AND parent_id = 100`);
        counts.add(r[0]!.n);
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
    await sq(`INSERT INTO child (id, parent_id, version) SELECT g, 100, 1 FROM generate_series(100000, 129999) g`);
    await eventually('30,000 rows at HQ', async () => counts.has(30_000), 60_000, 50);
    watching = false;
    await watcher;
    assert.deepEqual([...counts].filter((n) => n !== 0 && n !== 30_000), [], 'HQ showed part of a source transaction');
    assert.equal(await txnsApplied(), before + 1);
  });

  it('moves a row whose key changed, keeps unchanged TOAST values, and truncates one store only', async () => {
    const big = randomBytes(12_000).toString('base64');
    await sq(`INSERT INTO parent VALUES (300, 'P300', 'toast')`);
    await sq(`INSERT INTO child (id, parent_id, version, big) VALUES (300, 300, 1, $1)`, [big]);
    await sq(`UPDATE child SET version = 2 WHERE id = 300`); // big is not sent: unchanged TOAST
    await sq(`INSERT INTO parent VALUES (400, 'P400', 'moving')`);
    await sq(`UPDATE parent SET id = 401 WHERE id = 400`);
    await sq(`INSERT INTO parent VALUES (1, 'B1', 'other store')`, [], 1);
    await eventually('all at HQ', async () => (await hq(`SELECT 1 FROM h_parent WHERE (store_code, id) IN (('A1', 401), ('A2', 1))`)).length === 2);
    assert.deepEqual(await hq(`SELECT version, big = $1 AS same, big IS NULL AS lost FROM h_child WHERE store_code = 'A1' AND id = 300`, [big]), [
      { version: 2, same: true, lost: false },
    ]);
    assert.deepEqual(await hq(`SELECT id FROM h_parent WHERE store_code = 'A1' AND id IN (400, 401)`), [{ id: 401 }]);

    await sq(`TRUNCATE child`);
    await eventually('A1 children gone at HQ', async () => (await hq(`SELECT 1 FROM h_child WHERE store_code = 'A1' LIMIT 1`)).length === 0);
    await sq(`INSERT INTO child (id, parent_id, version) VALUES (1, 1, 7)`, [], 1);
    await eventually('A2 child at HQ', async () => (await hq(`SELECT 1 FROM h_child WHERE store_code = 'A2'`)).length === 1);
    assert.equal((await hq(`SELECT 1 FROM h_parent WHERE store_code = 'A2'`)).length, 1, 'the other store keeps its rows');
  });
});
