import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StoreConfig } from '../src/config/load.js';
import { silentLogger } from '../src/core/logger.js';
import { readCatalog } from '../src/agent/prepare.js';
import { runInitialLoadUp } from '../src/load/initial-load-up.js';
import { PgSourceRows } from '../src/reconcile/pg-source-rows.js';
import { runReconcile } from '../src/reconcile/reconcile.js';
import type { SourceTable } from '../src/reconcile/source-rows.js';
import { deadPort } from './support/dead-port.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { createWorld, type World } from './support/world.js';

/**
 * The source-rows seam reconcile reads through, on PostgreSQL: a store
 * table with a three-column key (one column named with a double quote)
 * read in chunks smaller than a key group, so chunk boundaries fall inside
 * runs of equal leading key columns; rows read again by key; the read's
 * snapshot. Then the mapped method and --fix through the seam, and what a
 * SQL Server store now gets from reconcile.
 */
const DAYS = 3;
const REGISTERS = 3;
const SEQS = 4;
const ROWS = DAYS * REGISTERS * SEQS;
const CHUNK = 5;
const HQ_SQL = `
  CREATE TABLE line (store_code text NOT NULL, day date NOT NULL, reg int NOT NULL, seq int NOT NULL, item text NOT NULL, qty numeric(10,2) NOT NULL,
                     PRIMARY KEY (store_code, day, reg, seq));`;
const STORE_SQL = `
  CREATE TABLE line (day date NOT NULL, "reg""no" int NOT NULL, seq int NOT NULL, item text NOT NULL, qty numeric(10,3) NOT NULL, PRIMARY KEY (day, "reg""no", seq));
  INSERT INTO line SELECT DATE '2026-03-01' + d, r, s, ' item ' || d || '-' || r || '-' || s, (d * 100 + r * 10 + s) / 4.0
    FROM generate_series(0, ${DAYS - 1}) d, generate_series(1, ${REGISTERS}) r, generate_series(1, ${SEQS}) s;`;
// An expression (upper, trim): compared by the mapped method, whatever the source database.
const LINE_UP = `direction: up
source: line
target: line
key: [store_code, day, reg, seq]
columns:
  store_code: store.code
  day: day
  reg: '"reg""no"'
  seq: seq
  item: upper(trim(item))
  qty: qty
`;

describe('reconcile through the source-rows seam: composite keys in small chunks', { timeout: 300_000 }, () => {
  let server: TestServer;
  let world: World;
  let mappingsDir: string;
  const store = <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => world.stores[0]!.server.query(world.stores[0]!.db, sql, params) as Promise<R[]>;
  const lineTable = async (): Promise<SourceTable> => {
    const config = await world.config();
    const catalog = await readCatalog(config.stores[0]!.url, 'store S1', [{ schema: 'public', table: 'line' }]);
    const info = catalog.tables.get('public.line')!;
    return { id: info.id, info, primaryKey: info.primaryKey! };
  };

  before(async () => {
    server = await startTestServer('reconcile-rows');
    mappingsDir = await mkdtemp(path.join(os.tmpdir(), 'branchline-maps-'));
    await chmod(mappingsDir, 0o755);
    await writeFile(path.join(mappingsDir, 'line-up.yml'), LINE_UP);
    world = await createWorld({ hqServer: server, storeServer: server, stores: ['S1'], hqSql: HQ_SQL, storeSql: STORE_SQL, mappingsDir, setup: false });
    const config = await world.config();
    await runInitialLoadUp({ config, store: config.stores[0]!, logger: silentLogger() });
  });
  after(async () => {
    await world?.dispose();
    if (mappingsDir) await rm(mappingsDir, { recursive: true, force: true });
    await server?.dispose();
  });

  it('the PostgreSQL reader: every row once, in key order, across chunk boundaries inside equal leading keys; rows by key; one snapshot', async () => {
    const config = await world.config();
    const table = await lineTable();
    assert.deepEqual(table.primaryKey, ['day', 'reg"no', 'seq']);
    // Statistics: a table never analyzed has no estimate (null).
    await store('ANALYZE line');
    const reader = new PgSourceRows({ url: config.stores[0]!.url, role: 'store S1', applicationName: 'branchline-test' });
    await reader.begin();
    try {
      assert.equal(reader.isolation, 'repeatable read');
      assert.ok(reader.postgres, 'a PostgreSQL source offers its session (the hashed method)');
      // Written after the read began: not in its snapshot.
      await store(`INSERT INTO line VALUES (DATE '2026-03-01', 1, 99, 'late', 1)`);
      const keys: string[] = [];
      let last: string | null = null;
      let chunks = 0;
      for (;;) {
        const rows = await reader.chunk(table, last, CHUNK);
        chunks++;
        keys.push(...rows.map((r) => r.key));
        if (rows.length < CHUNK) break;
        last = rows[rows.length - 1]!.key;
      }
      assert.equal(chunks, Math.ceil((ROWS + 1) / CHUNK));
      const expected: string[] = [];
      for (let d = 0; d < DAYS; d++) for (let r = 1; r <= REGISTERS; r++) for (let s = 1; s <= SEQS; s++) expected.push(JSON.stringify([`2026-03-0${d + 1}`, String(r), String(s)]));
      assert.deepEqual(keys, expected, 'every row once, in key order, the late row unseen');
      const again = await reader.byKeys(table, [expected[7]!, expected[20]!, JSON.stringify(['2026-03-01', '1', '99']), JSON.stringify(['2030-01-01', '1', '1'])]);
      // The store's values of a key (as STORE_SQL writes them): item ' item d-r-s', qty (d*100 + r*10 + s) / 4.
      const storeValues = (key: string) => {
        const [day, r, seq] = JSON.parse(key) as [string, string, string];
        const d = Number(day.slice(-2)) - 1;
        return [key, ` item ${d}-${r}-${seq}`, ((d * 100 + Number(r) * 10 + Number(seq)) / 4).toFixed(3)];
      };
      assert.deepEqual(
        again.map((r) => [r.key, r.values['item'], r.values['qty']]).sort(),
        [storeValues(expected[7]!), storeValues(expected[20]!)].sort(),
        'the keys asked that the snapshot holds, values as text',
      );
      assert.equal(await reader.estimate([table.id]), ROWS, 'the statistics (ANALYZE ran before the read)');
      await reader.end();
    } finally {
      await reader.close();
      await store(`DELETE FROM line WHERE seq = 99`);
    }
  });

  it('the mapped method and --fix through the seam find and repair exactly the keys changed, at chunk boundaries', async () => {
    const config = await world.config();
    const s1 = config.stores[0]!;
    const equal = await runReconcile({ config, store: s1, logger: silentLogger(), chunkRows: CHUNK });
    assert.equal(equal.differences, 0, JSON.stringify(equal.tables));
    const [line] = equal.tables;
    assert.equal(line!.method, 'mapped');
    assert.equal(line!.isolation, 'repeatable read');
    assert.equal(line!.sourceRows, ROWS);
    assert.equal(line!.targetRows, ROWS);
    // Row 5 and 6 of the key order lie on either side of the first chunk boundary (same day and register).
    await world.hqQuery(`UPDATE line SET item = 'CHANGED' WHERE store_code = 'S1' AND day = '2026-03-01' AND reg = 2 AND seq = 1`);
    await world.hqQuery(`DELETE FROM line WHERE store_code = 'S1' AND day = '2026-03-01' AND reg = 2 AND seq = 2`);
    await world.hqQuery(`INSERT INTO line VALUES ('S1', '2026-03-02', 9, 9, 'EXTRA', 1)`);
    const found = await runReconcile({ config, store: s1, logger: silentLogger(), chunkRows: CHUNK });
    const t = found.tables[0]!;
    assert.deepEqual(t.different, [['S1', '2026-03-01', '2', '1']]);
    assert.deepEqual(t.missing, [['S1', '2026-03-01', '2', '2']]);
    assert.deepEqual(t.extra, [['S1', '2026-03-02', '9', '9']]);
    const fixed = await runReconcile({ config, store: s1, logger: silentLogger(), chunkRows: CHUNK, fix: true });
    assert.equal(fixed.tables[0]!.resent, 2);
    assert.equal(fixed.tables[0]!.removed, 1);
    assert.deepEqual(
      await world.hqQuery(`SELECT seq, item, qty::text AS qty FROM line WHERE store_code = 'S1' AND day = '2026-03-01' AND reg = 2 AND seq IN (1, 2) ORDER BY seq`),
      [
        { seq: 1, item: 'ITEM 0-2-1', qty: '5.25' },
        { seq: 2, item: 'ITEM 0-2-2', qty: '5.50' },
      ],
      're-sent through the mapping (upper, trim; numeric(10,3) into numeric(10,2))',
    );
    const again = await runReconcile({ config, store: s1, logger: silentLogger(), chunkRows: CHUNK });
    assert.equal(again.differences, 0);
  });

  it('a SQL Server store: up is read through its own reader (no longer refused), down is BL-R001', async () => {
    const config = await world.config();
    const mssql = { ...config.stores[0]!, connector: 'mssql-trigger', url: `mssql://branchline:secret@127.0.0.1:${await deadPort()}/erp` } as StoreConfig;
    await assert.rejects(
      runReconcile({ config, store: mssql, logger: silentLogger(), directions: ['down'] }),
      (e: Error & { code?: string }) => e.code === 'BL-R001' && /no down channel/.test(e.message) && !e.message.includes('secret'),
    );
    // Up: it goes to SQL Server (nobody listens here): a connection error, not a refusal, and no password in it.
    await assert.rejects(runReconcile({ config, store: mssql, logger: silentLogger() }), (e: Error & { code?: string }) => e.code === 'BL-D001' && !e.message.includes('secret'));
  });
});
