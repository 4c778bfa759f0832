import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../src/core/logger.js';
import { runInitialLoad } from '../src/load/initial-load.js';
import { METRIC } from '../src/metrics/metrics.js';
import { startInProcess, type InProcess } from './support/in-process.js';
import { parsePromText, sampleValue, type PromSample } from './support/prom-text.js';
import { deadPort } from './support/dead-port.js';
import { startPrometheus, type PrometheusServer } from './support/prometheus-server.js';
import { eventually } from './support/world.js';

/**
 * /metrics of a running agent with real stores writing: the applied counts
 * are what the stores wrote, a change HQ rejects is counted parked, the lag
 * and last-apply gauges move, a store with nothing written reads zeros (not
 * gaps); and a real Prometheus server scrapes it with a bearer token and
 * answers a query with the count.
 */

const STORE_SQL = `CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL);
  CREATE TABLE price (product_id int PRIMARY KEY, price numeric(12,2) NOT NULL);`;
// HQ refuses one name: that change is parked (BL-A004 in docs/mapping.md), the rest applied.
const HQ_SQL = `CREATE TABLE h_item (store_code text NOT NULL, id int NOT NULL, name text NOT NULL CHECK (name <> 'refused'), PRIMARY KEY (store_code, id));
  CREATE TABLE h_price (store_code text NOT NULL, product_id int NOT NULL, price numeric(12,2) NOT NULL, PRIMARY KEY (store_code, product_id));`;
const ITEM_YML = `source: item
target: h_item
columns:
  store_code: store.code
  id: id
  name: name
`;
const PRICE_DOWN_YML = `direction: down
source: h_price
target: price
key: [product_id]
route: {column: store_code}
columns:
  product_id: product_id
  price: price
`;
const TOKEN = 'metrics-test-token-0123456789abcdef';

describe('metrics at /metrics', { timeout: 180_000 }, () => {
  let env: InProcess;
  let port: number;
  let prometheus: PrometheusServer | null = null;
  const sq = (sql: string) => env.world.stores[0]!.server.query(env.world.stores[0]!.db, sql);
  const hqCount = async () => Number((await env.world.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM h_item`))[0]!.n);
  const scrape = async (): Promise<PromSample[]> => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
    return parsePromText(await res.text());
  };
  const M1 = { store: 'M1', direction: 'up' };
  const M2 = { store: 'M2', direction: 'up' };

  before(async () => {
    port = await deadPort();
    env = await startInProcess({
      name: 'metrics',
      stores: ['M1', 'M2'],
      hqSql: HQ_SQL,
      storeSql: STORE_SQL,
      mappings: { 'item.yml': ITEM_YML, 'price-down.yml': PRICE_DOWN_YML },
      beforeAgent: async (w) => {
        const c = await w.config();
        for (const s of c.stores) await runInitialLoad({ config: c, store: s, logger: silentLogger() });
      },
      extraConfig: `down:\n  poll_ms: 200\nhttp:\n  listen: 127.0.0.1:${port}\n  tokens:\n    - name: prometheus\n      token: ${TOKEN}\n`,
    });
  });

  after(async () => {
    await prometheus?.stop();
    await env?.dispose();
  });

  it('every series is there at zero before anything is written, for both stores and both directions', async () => {
    const s = await scrape();
    for (const store of ['M1', 'M2'])
      for (const direction of ['up', 'down']) {
        const l = { store, direction };
        for (const name of [METRIC.changesCaptured, METRIC.changesApplied, METRIC.transactionsApplied, METRIC.batchesApplied, METRIC.changesParked, METRIC.parkedChanges, METRIC.lagSeconds, METRIC.lastApplyTime, METRIC.oldestUnappliedSeconds])
          assert.equal(sampleValue(s, name, l), 0, `${name}${JSON.stringify(l)}`);
        assert.equal(sampleValue(s, `${METRIC.batchRows}_count`, l), 0);
        assert.equal(sampleValue(s, `${METRIC.applySeconds}_count`, l), 0);
      }
    assert.equal(sampleValue(s, METRIC.pipelineState, { ...M1, state: 'streaming' }), 1);
    assert.equal(sampleValue(s, METRIC.pipelineState, { ...M1, state: 'starting' }), 0);
    assert.equal(sampleValue(s, METRIC.pipelineState, { ...M1, state: 'none' }), 0);
    assert.equal(sampleValue(s, METRIC.pipelineState, { store: 'M2', direction: 'down', state: 'streaming' }), 1);
    assert.equal(sampleValue(s, METRIC.pipelineState, { store: 'M2', direction: 'down', state: 'none' }), 0);
    assert.ok(s.some((x) => x.name === 'branchline_process_cpu_user_seconds_total'), 'default process metrics');
  });

  it('the applied counts are what the store wrote; a change HQ refuses is counted parked; M2 stays at zero', async () => {
    const before = Date.now() / 1000;
    await sq(`INSERT INTO item SELECT g, 'item ' || g FROM generate_series(1, 2) g`);
    await sq(`INSERT INTO item SELECT g, 'item ' || g FROM generate_series(3, 5) g`);
    await sq(`INSERT INTO item SELECT g, 'item ' || g FROM generate_series(6, 10) g`);
    await sq(`INSERT INTO item VALUES (11, 'refused')`);
    await eventually('10 rows at HQ', async () => (await hqCount()) === 10, 30_000);
    let s: PromSample[] = [];
    await eventually('the refused change counted parked', async () => {
      s = await scrape();
      return sampleValue(s, METRIC.parkedChanges, M1) === 1 && sampleValue(s, METRIC.changesApplied, M1) === 11;
    });
    const after = Date.now() / 1000;
    assert.equal(await hqCount(), 10);
    // 11 source changes in 4 transactions reached HQ: 10 rows and 1 parked change.
    assert.equal(sampleValue(s, METRIC.changesApplied, M1), 11);
    assert.equal(sampleValue(s, METRIC.transactionsApplied, M1), 4);
    assert.equal(sampleValue(s, METRIC.changesParked, M1), 1);
    assert.ok(sampleValue(s, METRIC.changesCaptured, M1) >= 11, 'at least what was applied was read (a failed session reads its changes again)');
    // HQ refused the grouped batch once: that session ended in an error, and the batch was redone in order.
    assert.ok(sampleValue(s, METRIC.sessionErrors, M1) >= 1, 'the refused batch ended a session');
    const batches = sampleValue(s, METRIC.batchesApplied, M1);
    assert.ok(batches >= 1 && batches <= 4, `${batches} batches`);
    assert.equal(sampleValue(s, `${METRIC.batchRows}_count`, M1), batches);
    assert.equal(sampleValue(s, `${METRIC.batchRows}_sum`, M1), 11);
    assert.equal(sampleValue(s, `${METRIC.applySeconds}_count`, M1), batches);
    const lag = sampleValue(s, METRIC.lagSeconds, M1);
    assert.ok(lag > 0 && lag < 60, `lag ${lag} s`);
    const last = sampleValue(s, METRIC.lastApplyTime, M1);
    assert.ok(last >= before && last <= after, `last apply ${last} within [${before}, ${after}]`);
    assert.equal(sampleValue(s, METRIC.oldestUnappliedSeconds, M1), 0, 'caught up: nothing waits');
    assert.equal(sampleValue(s, METRIC.pipelineState, { ...M1, state: 'streaming' }), 1);
    for (const name of [METRIC.changesCaptured, METRIC.changesApplied, METRIC.transactionsApplied, METRIC.batchesApplied, METRIC.changesParked, METRIC.lastApplyTime])
      assert.equal(sampleValue(s, name, M2), 0, `${name} of M2`);
  });

  it('the down direction: HQ\'s prices for M2 are counted under M2 down, nothing under M1 down', async () => {
    await env.world.hqQuery(`INSERT INTO h_price SELECT 'M2', g, g * 1.5 FROM generate_series(1, 3) g`);
    const M2down = { store: 'M2', direction: 'down' };
    let s: PromSample[] = [];
    await eventually('3 prices applied at M2, as /metrics says', async () => {
      s = await scrape();
      return sampleValue(s, METRIC.changesApplied, M2down) === 3;
    });
    const m2 = env.world.stores[1]!;
    assert.equal(Number((await m2.server.query<{ n: string }>(m2.db, `SELECT count(*)::text AS n FROM price`))[0]!.n), 3);
    assert.equal(sampleValue(s, METRIC.transactionsApplied, M2down), 1);
    assert.equal(sampleValue(s, METRIC.changesCaptured, M2down), 3);
    assert.ok(sampleValue(s, METRIC.lastApplyTime, M2down) > 0);
    // M1's down pipeline read the same HQ transaction, routed to M2: not counted for M1.
    const M1down = { store: 'M1', direction: 'down' };
    assert.equal(sampleValue(s, METRIC.changesApplied, M1down), 0);
    assert.equal(sampleValue(s, METRIC.changesCaptured, M1down), 0);
    assert.equal(sampleValue(s, METRIC.changesApplied, M2), 0, 'nothing went up from M2');
  });

  it('the slot gauges read the stores every status interval', async () => {
    await eventually('WAL retained by M1 read', async () => sampleValue(await scrape(), METRIC.slotRetainedBytes, { store: 'M1' }) > 0, 20_000);
    const s = await scrape();
    assert.ok(sampleValue(s, METRIC.slotLagBytes, { store: 'M1' }) >= 0);
    assert.ok(sampleValue(s, METRIC.slotRetainedBytes, { store: 'M2' }) >= 0);
  });

  it('a real Prometheus server scrapes the agent with its token and answers a query with the applied count', async () => {
    prometheus = await startPrometheus({ target: `127.0.0.1:${port}`, token: TOKEN });
    const p = prometheus;
    let got: { labels: Record<string, string>; value: number } | null = null;
    await eventually(
      'Prometheus to answer the query with one series',
      async () => {
        got = await p.queryOne(`${METRIC.changesApplied}{store="M1",direction="up"}`);
        return got !== null;
      },
      60_000,
      500,
    );
    const series = got as unknown as { labels: Record<string, string>; value: number };
    assert.equal(series.value, 11);
    assert.equal(series.labels['job'], 'branchline');
    // The scrape itself succeeded (the token was accepted).
    const up = await p.queryOne('up{job="branchline"}');
    assert.equal(up?.value, 1);
  });
});
