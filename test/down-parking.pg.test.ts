import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../src/core/logger.js';
import { runInitialLoad } from '../src/load/initial-load.js';
import { runCli } from './support/agent-process.js';
import { startInProcess, type InProcess } from './support/in-process.js';
import { eventually } from './support/world.js';

/**
 * The down twin of the association tests: an HQ change that refers to an
 * HQ key the store has no code for (a manual entity) is parked at the
 * store, with the row's later changes behind it, and goes through by itself
 * once a person associates the key at HQ (`branchline associate`), with no
 * `branchline retry`; a row the store rejects waits for `branchline retry`,
 * which marks the changes parked at the stores too.
 */

const HQ_SQL = `
  CREATE TABLE cost_center (id int PRIMARY KEY);
  CREATE TABLE budget (id int PRIMARY KEY, cost_center_id int NOT NULL REFERENCES cost_center (id), amount numeric(12,2) NOT NULL);
  CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL);
  INSERT INTO cost_center VALUES (100), (101);`;

const STORE_SQL = `
  CREATE TABLE budget (id int PRIMARY KEY, cc text NOT NULL, amount numeric(12,2) NOT NULL CONSTRAINT small CHECK (amount < 1000));
  CREATE TABLE cust (id int PRIMARY KEY, name text NOT NULL);`;

const MAPPINGS = {
  'entities.yml': `cost_center:
  kind: manual
`,
  'cust-up.yml': `source: cust
target: customer
columns:
  id: id
  name: name
`,
  'budget-down.yml': `direction: down
source: budget
target: budget
columns:
  id: id
  cc: associate(cost_center, cost_center_id)
  amount: amount
`,
};

describe('down parking: a change waiting for an association at HQ', { timeout: 120_000 }, () => {
  let env: InProcess;
  const store = async <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => env.server.query<R>(env.world.stores[0]!.db, sql, params);
  const parked = () =>
    store<{ reason_code: string; entity: string | null; branch_code: string | null; op: string }>(
      `SELECT reason_code, entity, branch_code, change->>'op' AS op FROM branchline.parked WHERE pipeline = 'down:S1' AND status = 'parked' ORDER BY id`,
    );

  before(async () => {
    env = await startInProcess({
      name: 'down-parking',
      stores: ['S1'],
      hqSql: HQ_SQL,
      storeSql: STORE_SQL,
      mappings: MAPPINGS,
      extraConfig: 'down:\n  poll_ms: 200\n  purge_interval_s: 3600\n',
      beforeAgent: async (w) => {
        const config = await w.config();
        await runInitialLoad({ config, store: config.stores[0]!, logger: silentLogger() });
      },
    });
    await env.world.hqQuery(`INSERT INTO branchline.associations (store_code, entity, branch_code, hq_key, origin, created_by) VALUES ('S1', 'cost_center', 'CC-01', '101', 'manual', 'test')`);
  });
  after(async () => env?.dispose());

  it('is applied at the store within seconds of `branchline associate` at HQ, without `branchline retry`', async () => {
    await env.world.hqQuery(`INSERT INTO budget VALUES (1, 100, 50.00)`);
    await env.world.hqQuery(`UPDATE budget SET amount = 75.00 WHERE id = 1`);
    await env.world.hqQuery(`INSERT INTO budget VALUES (2, 101, 20.00)`);
    // The associated one goes; budget 1 waits, its update behind its insert.
    await eventually('budget 2 at the store', async () => (await store(`SELECT 1 FROM budget WHERE id = 2`)).length === 1, 20_000);
    await eventually('budget 1 parked with its update behind it', async () => (await parked()).length === 2, 20_000);
    assert.deepEqual(await parked(), [
      { reason_code: 'BL-M021', entity: 'cost_center', branch_code: '100', op: 'insert' },
      { reason_code: 'BL-P006', entity: null, branch_code: null, op: 'update' },
    ]);
    assert.deepEqual(await store(`SELECT id, cc, amount::text FROM budget ORDER BY id`), [{ id: 2, cc: 'CC-01', amount: '20.00' }]);
    // Still parked a few retry checks later: nothing changed at HQ's associations.
    await new Promise((r) => setTimeout(r, 4_500));
    assert.equal((await parked()).length, 2);

    const t0 = Date.now();
    const r = await runCli(['associate', '--config', env.world.configFile, '--store', 'S1', '--entity', 'cost_center', '--code', 'CC-09', '--hq-key', '100']);
    assert.equal(r.code, 0, r.stderr);
    await eventually('budget 1 at the store, updated', async () => (await store<{ amount: string }>(`SELECT amount::text FROM budget WHERE id = 1`))[0]?.amount === '75.00', 10_000, 100);
    process.stderr.write(`# down parking: applied ${Date.now() - t0} ms after associate\n`);
    assert.deepEqual(await store(`SELECT id, cc, amount::text FROM budget ORDER BY id`), [
      { id: 1, cc: 'CC-09', amount: '75.00' },
      { id: 2, cc: 'CC-01', amount: '20.00' },
    ]);
    assert.deepEqual(await parked(), []);
    // And the stream goes on for that row.
    await env.world.hqQuery(`UPDATE budget SET amount = 80.00 WHERE id = 1`);
    await eventually('the next change of budget 1', async () => (await store<{ amount: string }>(`SELECT amount::text FROM budget WHERE id = 1`))[0]?.amount === '80.00', 10_000, 100);
  });

  it('a row the store rejects stays parked at the store until `branchline retry` once the store accepts it', async () => {
    await env.world.hqQuery(`INSERT INTO budget VALUES (3, 101, 5000.00)`);
    await env.world.hqQuery(`INSERT INTO budget VALUES (4, 101, 40.00)`);
    await eventually('budget 4 at the store', async () => (await store(`SELECT 1 FROM budget WHERE id = 4`)).length === 1, 20_000);
    await eventually('budget 3 parked', async () => (await parked()).length === 1, 20_000);
    assert.equal((await parked())[0]!.reason_code, 'BL-A004');
    await store(`ALTER TABLE budget DROP CONSTRAINT small`);
    // Nothing retries it by itself (nothing it waits for changed at HQ).
    await new Promise((r) => setTimeout(r, 4_500));
    assert.equal((await parked()).length, 1);
    const r = await runCli(['retry', '--config', env.world.configFile, '--store', 'S1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /retry requested for 1 parked change \(S1 \(down, at the store\): 1\)/);
    await eventually('budget 3 at the store', async () => (await store<{ amount: string }>(`SELECT amount::text FROM budget WHERE id = 3`))[0]?.amount === '5000.00', 10_000, 100);
    assert.deepEqual(await parked(), []);
  });
});
