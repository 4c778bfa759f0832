import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { METRIC } from '../src/metrics/metrics.js';
import { AgentProcess, runCli } from './support/agent-process.js';
import { deadPort } from './support/dead-port.js';
import { EXTERNAL_URL, startTestServer, type TestServer } from './support/pg.js';
import { parsePromText, sampleValue } from './support/prom-text.js';
import { createWorld, eventually, type World } from './support/world.js';

/**
 * A store whose database clock is minutes ahead of HQ's, then minutes
 * behind: Debian's libfaketime in the store's PostgreSQL server process
 * (LD_PRELOAD, its offset read from a file the test rewrites), so the
 * store's now() and its commit timestamps are skewed while HQ, the agent
 * and this test share the machine's clock. Lag figures stay sane: the
 * agent's /metrics (lag of the last batch, age of the oldest change
 * waiting), `branchline status` and the stock query's freshness, in step
 * and with a real lag of a few seconds, are never negative and never the
 * skew away from the truth.
 */
const FAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const SKEW_S = 240;
const TOKEN = 'clock-skew-test-token-0123456789abcdef';
const PRODUCT = 7;
const UP = { store: 'S001', direction: 'up' } as const;

const unavailable = EXTERNAL_URL
  ? 'needs to start its own store server under libfaketime, which it cannot do with BRANCHLINE_TEST_PG_URL'
  : false;

describe('clock skew between a store and HQ', { timeout: 240_000, skip: unavailable }, () => {
  let hqServer: TestServer;
  let storeServer: TestServer;
  let world: World;
  let agent: AgentProcess;
  let port: number;
  let dir: string;
  let store: pg.Pool;
  const skewFile = () => path.join(dir, 'faketime');

  const metrics = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
    return parsePromText(await res.text());
  };
  const hqQuantity = async () => (await world.hqQuery<{ q: string }>(`SELECT quantity::text AS q FROM store_stock WHERE store_code = 'S001' AND product_id = $1`, [PRODUCT]))[0]?.q ?? null;
  const writeStock = async (q: number) => {
    await store.query(`INSERT INTO stock (product_id, quantity) VALUES ($1, $2) ON CONFLICT (product_id) DO UPDATE SET quantity = EXCLUDED.quantity, updated_at = now()`, [PRODUCT, q]);
    return Date.now();
  };
  const storeOffsetS = async () => {
    const sent = Date.now();
    const [r] = await storeServer.query<{ ms: string }>(world.stores[0]!.db, `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::text AS ms`);
    return (Number(r!.ms) - (sent + Date.now()) / 2) / 1000;
  };

  before(async () => {
    assert.ok(existsSync(FAKETIME), `${FAKETIME} is missing: install Debian's faketime package (apt-get install faketime; .ci/run does)`);
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-skew-'));
    await chmod(dir, 0o755);
    await writeFile(skewFile(), `+${SKEW_S}s\n`, { mode: 0o644 });
    hqServer = await startTestServer('skew-hq');
    // NO_CACHE: every clock read looks at the file, so the test moves the store's clock by rewriting it.
    storeServer = await startTestServer('skew-store', {}, { LD_PRELOAD: FAKETIME, FAKETIME_TIMESTAMP_FILE: skewFile(), FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' });
    port = await deadPort();
    world = await createWorld({
      hqServer,
      storeServer,
      stores: ['S001'],
      connector: 'pg-logical',
      extraConfig: [
        'queries:',
        '  stock: {table: store_stock, product: product_id, store: store_code, columns: [quantity]}',
        'http:',
        `  listen: 127.0.0.1:${port}`,
        '  tokens:',
        '    - name: monitoring',
        `      token: ${TOKEN}`,
      ].join('\n'),
    });
    store = world.stores[0]!.pool;
    agent = new AgentProcess(world.configFile, path.join(dir, 'agent.log'));
  });
  after(async () => {
    await agent?.dispose();
    await world?.dispose();
    await storeServer?.dispose();
    await hqServer?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const skew of [SKEW_S, -SKEW_S]) {
    it(`store ${Math.abs(skew) / 60} minutes ${skew > 0 ? 'ahead of' : 'behind'} HQ: lag in step, with a real lag, and with the agent stopped`, async () => {
      const wanted = `${skew > 0 ? '+' : ''}${skew}s\n`;
      if ((await readFile(skewFile(), 'utf8')) !== wanted) {
        // Restarted: a clock moved back under a running server stalls its timers (a skewed store is skewed from its start).
        await writeFile(skewFile(), wanted);
        await storeServer.restart();
      }
      const offset = await storeOffsetS();
      assert.ok(Math.abs(offset - skew) < 5, `the store's clock is ${offset.toFixed(1)} s off this machine's, expected ${skew}`);

      agent.start();
      await eventually('the agent streaming', async () => sampleValue(await metrics(), METRIC.pipelineState, { ...UP, state: 'streaming' }) === 1, 60_000);

      // In step: a stock change arrives; the lag of its batch is the seconds it took, not the skew.
      const q1 = 100 + (skew > 0 ? 1 : 2);
      await writeStock(q1);
      await eventually('the stock change at HQ', async () => (await hqQuantity()) === `${q1}.000`);
      let s = await metrics();
      const inStep = sampleValue(s, METRIC.lagSeconds, UP);
      assert.ok(inStep >= 0 && inStep < 15, `in step, the last batch's lag is ${inStep} s (the skew is ${skew} s)`);
      assert.equal(sampleValue(s, METRIC.oldestUnappliedSeconds, UP), 0, 'nothing waits');

      // A real lag: HQ's row held by another transaction, the next change waits for it.
      const holder = new pg.Client({ connectionString: world.hq.url });
      await holder.connect();
      let released = false;
      try {
        await holder.query('BEGIN');
        await holder.query(`SELECT * FROM store_stock WHERE store_code = 'S001' AND product_id = $1 FOR UPDATE`, [PRODUCT]);
        const q2 = q1 + 10;
        const writtenAt = await writeStock(q2);
        await new Promise((r) => setTimeout(r, 4_000));
        s = await metrics();
        const waiting = sampleValue(s, METRIC.oldestUnappliedSeconds, UP);
        const truth = (Date.now() - writtenAt) / 1000;
        assert.ok(waiting >= truth - 3 && waiting <= truth + 3, `the change waiting at HQ's lock is ${waiting.toFixed(1)} s old by /metrics, ${truth.toFixed(1)} s by this clock`);
        await holder.query('COMMIT');
        released = true;
        await eventually('the waiting change at HQ', async () => (await hqQuantity()) === `${q2}.000`);
        const lag = sampleValue(await metrics(), METRIC.lagSeconds, UP);
        const appliedAfter = (Date.now() - writtenAt) / 1000;
        assert.ok(lag >= 3 && lag <= appliedAfter + 1, `the batch that waited ${appliedAfter.toFixed(1)} s has a lag of ${lag} s`);

        // The agent stopped: HQ alone says how far behind it is, from the last commit it applied (its time in HQ's clock).
        await agent.stop();
        await writeStock(q2 + 1);
        const status = await runCli(['status', '--config', world.configFile, '--json']);
        assert.equal(status.code, 0, status.stderr);
        const row = (JSON.parse(status.stdout) as { store: string; lagSeconds: number | null; lastSourceCommitAt: string | null }[]).find((r) => r.store === 'S001')!;
        const since = (Date.now() - writtenAt) / 1000;
        assert.ok(row.lagSeconds !== null && row.lagSeconds >= since - 5 && row.lagSeconds <= since + 1, `branchline status says ${row.lagSeconds} s behind; the last change HQ applied was written ${since.toFixed(1)} s ago`);
        assert.ok(Math.abs(Date.parse(row.lastSourceCommitAt!) - writtenAt) < 3_000, `last source commit ${row.lastSourceCommitAt}, written at ${new Date(writtenAt).toISOString()}`);
        // doctor still warns: the store's own times (now() in the ERP, effective_at) are off.
        const doctor = await runCli(['doctor', '--config', world.configFile]);
        const said = doctor.stdout + doctor.stderr;
        assert.match(said, /BL-D010/, said);
        assert.match(said, new RegExp(`the store's clock is (${SKEW_S - 1}|${SKEW_S})\\.\\d+ s ${skew > 0 ? 'ahead of' : 'behind'} HQ`), said);
        const stock = await runCli(['stock', String(PRODUCT), '--config', world.configFile, '--json']);
        assert.equal(stock.code, 0, stock.stderr);
        const answer = JSON.parse(stock.stdout) as { answered_at: string; stores: { store: string; values: { quantity: string }; freshness: { lag_seconds: number | null; as_of: string | null; state: string } }[] };
        const f = answer.stores.find((x) => x.store === 'S001')!;
        assert.equal(f.values.quantity, `${q2}.000`, 'HQ holds what was applied');
        assert.ok(f.freshness.as_of !== null && Math.abs(Date.parse(f.freshness.as_of) - writtenAt) < 3_000, `as_of ${f.freshness.as_of}: HQ holds the store's changes up to the one written at ${new Date(writtenAt).toISOString()}`);
        assert.ok(Date.parse(f.freshness.as_of) <= Date.parse(answer.answered_at), `as_of ${f.freshness.as_of} is not after answered_at ${answer.answered_at}`);
      } finally {
        if (!released) await holder.query('ROLLBACK').catch(() => undefined);
        await holder.end();
        await agent.stop();
      }
    });
  }
});
