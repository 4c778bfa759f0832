import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { checkAndCompile, loadMappings, readCatalog, tablesOf } from '../src/agent/prepare.js';
import { qualified, quoteIdent } from '../src/db/connect.js';
import { compareStore, inStep, truncateScope } from '../src/verify/compare.js';
import { AgentProcess, runCli } from './support/agent-process.js';
import { deadPort } from './support/dead-port.js';
import { cannotControl, serversForTests } from './support/pg.js';
import { parsePromText, sampleValue } from './support/prom-text.js';
import { createWorld, eventually, TEST_UP_CONNECTOR, type World } from './support/world.js';

/**
 * The fault suite's lost-slot case: a store whose `max_slot_wal_keep_size`
 * (1 MB here) is smaller than what it writes while the agent is away
 * invalidates its slot. The up pipeline must halt with BL-S003 naming the
 * fix, `branchline status` and `/metrics` must say so (the
 * BranchlineStoreHalted alert reads the state), nothing may claim to be in
 * step, and after the fix of docs/operations.md the store flows again
 * with HQ equal to it.
 */

const TOKEN = 'faults-slot-token-0123456789abcdef';
const FIX_LOAD = 'branchline snapshot --store V001 --direction up --restart';

/** The fix's second step: the store's rows deleted from the up mappings' targets at HQ (those a TRUNCATE at the store would delete). */
async function clearStoreAtHq(world: World, storeCode: string): Promise<number> {
  const files = await loadMappings(await world.config());
  const mappings = checkAndCompile(files, await readCatalog(world.hq.url, 'HQ', tablesOf(files).targets), null, 'HQ');
  let deleted = 0;
  for (const m of mappings.mappings) {
    const scope = truncateScope(m, { storeCode });
    if (!scope) continue;
    const where = scope.map(([c], i) => `${quoteIdent(c)} = $${i + 1}`).join(' AND ');
    const r = await world.hqQuery<{ n: number }>(`WITH d AS (DELETE FROM ${qualified(m.target.schema, m.target.table)} WHERE ${where} RETURNING 1) SELECT count(*)::int AS n FROM d`, scope.map(([, v]) => v));
    deleted += r[0]!.n;
  }
  return deleted;
}

describe('faults: a store slot invalidated by max_slot_wal_keep_size', { timeout: 300_000 }, () => {
  const servers = serversForTests({ stores: { max_slot_wal_keep_size: '1MB' } });

  it('halts the up pipeline with BL-S003 naming the fix, says so in status and /metrics, never claims to be in step, and flows again after the fix', async (t) => {
    if (TEST_UP_CONNECTOR === 'pg-trigger') return t.skip('pg-logical only: a pg-trigger store has no slot to invalidate');
    const why = cannotControl(servers.stores);
    if (why) return t.skip(`needs its own store server with max_slot_wal_keep_size = 1MB: ${why}`);
    const port = await deadPort();
    const world = await createWorld({
      hqServer: servers.hq,
      storeServer: servers.stores,
      stores: ['V001'],
      extraConfig: `down:\n  poll_ms: 200\nhttp:\n  listen: 127.0.0.1:${port}\n  tokens:\n    - name: test\n      token: ${TOKEN}\n`,
    });
    const store = world.stores[0]!;
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    const cfg = ['--config', world.configFile];
    const state = async (direction: 'up' | 'down', s: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      return sampleValue(parsePromText(await res.text()), 'branchline_pipeline_state', { store: 'V001', direction, state: s });
    };
    const mappings = async () => {
      const files = await loadMappings(await world.config());
      return checkAndCompile(files, await readCatalog(world.hq.url, 'HQ', tablesOf(files).targets), null, 'HQ');
    };
    const compare = async () => compareStore({ storeUrl: store.server.url(store.db), hqUrl: world.hq.server.url(world.hq.db), storeCode: 'V001', mappings: await mappings() });
    const slot = async () =>
      (await servers.stores.query<{ wal_status: string }>(store.db, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'branchline_v001'`))[0]?.wal_status;
    try {
      agent.start();
      for (let i = 0; i < 20; i++) await store.workload.sale();
      await eventually('the first sales at HQ', async () => (await world.hqQuery<{ n: number }>(`SELECT count(*)::int AS n FROM store_sale`))[0]!.n === 20);
      await agent.stop();

      // The store sells on while the agent is away, and writes more WAL than its slot may keep.
      for (let i = 0; i < 5; i++) {
        for (let j = 0; j < 6; j++) await store.workload.sale();
        await servers.stores.query(store.db, `SELECT pg_switch_wal()`);
      }
      await eventually('the slot to be invalidated', async () => {
        await servers.stores.query(store.db, `CHECKPOINT`);
        return (await slot()) === 'lost';
      });

      agent.start();
      await eventually('/metrics to show the up pipeline halted', async () => (await state('up', 'halted')) === 1, 30_000);
      assert.equal(await state('up', 'streaming'), 0);
      assert.equal(await state('up', 'backoff'), 0, 'halted, not retrying');
      assert.equal(await state('down', 'streaming'), 1, 'the down channel of the store goes on');
      const log = await agent.logText();
      assert.match(log, /BL-S003/);
      assert.match(log, /pipeline halted/);
      assert.ok(log.includes(FIX_LOAD) && log.includes('branchline install --store V001'), 'the log names the fix');
      // Halted means no retry loop: the error is not met again.
      const seen = (await agent.logText()).split('\n').filter((l) => l.includes('"BL-S003"')).length;
      await new Promise((r) => setTimeout(r, 3_000));
      assert.equal((await agent.logText()).split('\n').filter((l) => l.includes('"BL-S003"')).length, seen, 'a halted pipeline does not try again by itself');

      const status = await runCli(['status', ...cfg, '--json']);
      assert.equal(status.code, 0, status.stderr);
      const [row] = JSON.parse(status.stdout) as { state: string; lagSeconds: number | null; slotState: string; lastError: { code: string; message: string } | null }[];
      assert.equal(row!.state, 'halted');
      assert.equal(row!.slotState.startsWith('lost'), true, `slot state ${row!.slotState}`);
      assert.notEqual(row!.lagSeconds, 0, 'a halted pipeline never says it is caught up');
      assert.equal(row!.lastError?.code, 'BL-S003');
      assert.ok(row!.lastError!.message.includes(FIX_LOAD), row!.lastError!.message);
      const text = await runCli(['status', ...cfg]);
      assert.match(text.stdout, /V001\s+halted/);
      assert.doesNotMatch(text.stdout, /streaming/);
      const before = await compare();
      assert.equal(inStep(before), false, 'HQ lacks the sales written while the slot was lost');

      // The fix (docs/operations.md), the agent running on: a new slot, the store's rows out of HQ, the load.
      const install = await runCli(['install', ...cfg, '--store', 'V001']);
      assert.equal(install.code, 0, install.stderr);
      assert.match(install.stdout, /replaced the invalidated replication slot "branchline_v001"/);
      assert.ok((await clearStoreAtHq(world, 'V001')) > 0);
      const load = await runCli(['snapshot', ...cfg, '--store', 'V001', '--direction', 'up', '--restart']);
      assert.equal(load.code, 0, load.stderr);
      await eventually('the up pipeline streaming again', async () => (await state('up', 'streaming')) === 1, 30_000);
      assert.equal(await state('up', 'halted'), 0);
      for (let i = 0; i < 10; i++) await store.workload.sale();
      const sales = (await store.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM sale`)).rows[0]!.n;
      await eventually('every sale at HQ', async () => (await world.hqQuery<{ n: number }>(`SELECT count(*)::int AS n FROM store_sale`))[0]!.n === sales);
      await eventually('HQ equal to the store', async () => inStep(await compare()));
      const healed = JSON.parse((await runCli(['status', ...cfg, '--json'])).stdout) as { state: string }[];
      assert.equal(healed[0]!.state, 'streaming');
      assert.equal((await agent.logText()).includes('resuming'), true, 'the halted pipeline resumed by itself');
    } finally {
      await agent.dispose();
      await world.dispose();
    }
  });
});
