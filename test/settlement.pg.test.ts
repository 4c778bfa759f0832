import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent } from '../src/agent/agent.js';
import type { Config } from '../src/config/load.js';
import { isBranchlineError } from '../src/core/errors.js';
import { silentLogger } from '../src/core/logger.js';
import { HttpServer } from '../src/http/server.js';
import { createMetrics, type Metrics } from '../src/metrics/metrics.js';
import { settlementRoute } from '../src/settlement/route.js';
import type { SettlementAnswer } from '../src/settlement/answer.js';
import { SettlementService } from '../src/settlement/service.js';
import { runCli } from './support/agent-process.js';
import { assertNoStack, show } from './support/cli-output.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { deadPort } from './support/dead-port.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { createWorld, eventually, type World } from './support/world.js';

/**
 * Pre-settlement checks against real databases: each of the five answers
 * comes from a store (or HQ) in the state that causes it, a stopped store
 * and a link that hangs answer `unavailable` within the timeout, a batch
 * costs one statement per store, and hostile input changes nothing.
 */

const TIMEOUT_MS = 1_500;

describe('settlement checks', { timeout: 240_000 }, () => {
  let hqServer: TestServer;
  let storeServer: TestServer;
  let world: World;
  /** Between the checks and S002 (its read_url), and between the checks and HQ (hq.read_url). */
  let storeLink: TcpProxy;
  let hqLink: TcpProxy;
  let config: Config;
  let metrics: Metrics;
  let service: SettlementService;
  /** Receivable ids at S001, by what the test does to them. */
  const r: Record<string, string> = {};
  const amounts: Record<string, string> = {};
  const store = (i: number, sql: string, params?: unknown[]) => storeServer.query(world.stores[i]!.db, sql, params);
  const check = (raw: unknown[], at: 'store' | 'hq' = 'store', svc = service) => svc.check('test-erp', raw, at);
  const one = async (ref: string, amount: string, storeCode = 'S001', at: 'store' | 'hq' = 'store') => (await check([{ store: storeCode, ref, amount }], at))[0]!;

  before(async () => {
    hqServer = await startTestServer('settlement-hq');
    storeServer = await startTestServer('settlement-stores', { shared_preload_libraries: 'pg_stat_statements' });
    storeLink = await new TcpProxy(Number(new URL(storeServer.url('x')).port)).start();
    hqLink = await new TcpProxy(Number(new URL(hqServer.url('x')).port)).start();
    world = await createWorld({
      hqServer,
      storeServer,
      stores: ['S001', 'S002'],
      hqConfig: [`read_url: ${hqLink.url(hqServer.url('__HQ__'))}`],
      storeConfig: (code, url) => [`settlement_timeout_ms: ${TIMEOUT_MS}`, ...(code === 'S002' ? [`read_url: ${storeLink.url(url)}`] : [])],
      extraConfig: `settlement:\n  timeout_ms: ${TIMEOUT_MS}\nqueries:\n  stock: {table: store_stock, product: product_id, store: store_code, columns: [quantity]}\n`,
    });
    // The HQ read URL names the world's HQ database (created with a random name).
    const { readFile, writeFile } = await import('node:fs/promises');
    await writeFile(world.configFile, (await readFile(world.configFile, 'utf8')).replace('__HQ__', world.hq.db));
    config = await world.config();
    for (const name of ['open', 'differs', 'settled', 'cancelled', 'deleted', 'cli']) {
      r[name] = await world.stores[0]!.workload.receivable();
      amounts[name] = ((await store(0, `SELECT amount::text AS a FROM receivable WHERE id = $1`, [r[name]]))[0] as { a: string }).a;
    }
    for (let i = 0; i < 40; i++) await world.stores[1]!.workload.receivable();
    // The agent brings them up to HQ, then stops: from here on HQ's copies say "open" whatever the stores do.
    const controller = new AbortController();
    const running = new Agent({ config, logger: silentLogger() }).run(controller.signal);
    await eventually('the receivables at HQ', async () => {
      const n = await world.hqQuery<{ n: number }>(`SELECT count(*)::int AS n FROM store_receivable`);
      return n[0]!.n === 46;
    }, 60_000);
    controller.abort();
    await running;
    await store(0, `UPDATE receivable SET status = 'settled', settled_on = CURRENT_DATE WHERE id = $1`, [r['settled']]);
    await store(0, `UPDATE receivable SET status = 'cancelled' WHERE id = $1`, [r['cancelled']]);
    await store(0, `DELETE FROM receivable WHERE id = $1`, [r['deleted']]);
    metrics = createMetrics(['S001', 'S002'], { processMetrics: false });
    service = new SettlementService({ config, logger: silentLogger(), metrics: metrics.settlement });
  });

  after(async () => {
    await service?.close();
    await storeLink?.close();
    await hqLink?.close();
    await world?.dispose();
    await hqServer?.dispose();
    await storeServer?.dispose();
  });

  it('each answer comes from the state the origin store holds now, not from HQ\'s copy', async () => {
    const answers = await check([
      { store: 'S001', ref: r['open'], amount: amounts['open'] },
      { store: 'S001', kind: 'receivable', ref: r['differs'], amount: '0.01' },
      { store: 'S001', ref: r['settled'], amount: amounts['settled'] },
      { store: 'S001', ref: r['cancelled'], amount: amounts['cancelled'] },
      { store: 'S001', ref: r['deleted'], amount: amounts['deleted'] },
      { store: 'S001', ref: '987654321', amount: '10.00' },
    ]);
    assert.deepEqual(
      answers.map((a) => [a.ref, a.status, a.origin_amount, a.reason]),
      [
        [r['open'], 'released', amounts['open'], null],
        [r['differs'], 'amount_differs', amounts['differs'], null],
        [r['settled'], 'settled', amounts['settled'], null],
        [r['cancelled'], 'deleted', amounts['cancelled'], null],
        [r['deleted'], 'deleted', null, null],
        ['987654321', 'unavailable', null, 'unknown'],
      ],
    );
    assert.equal(answers[1]!.detail, `store S001 holds the record open with ${amounts['differs']}, not 0.01.`);
    assert.match(answers[4]!.detail, /no longer holds the record, which HQ received from it/);
    assert.match(answers[5]!.detail, /holds no record with this reference, and HQ has none from it either/);
    // HQ's copies still say open: the answers were read at the store.
    const copies = await world.hqQuery<{ status: string }>(`SELECT DISTINCT status FROM store_receivable WHERE store_code = 'S001'`);
    assert.deepEqual(copies, [{ status: 'open' }]);
    // Every answer is in HQ's audit before it is returned, with who asked.
    const audit = await world.hqQuery<{ id: string; caller: string; asked: string; ref: string; status: string; amount: string; origin_amount: string | null; reason: string | null }>(
      `SELECT id::text, caller, asked, ref, status, amount::text, origin_amount::text, reason FROM branchline.settlement_checks WHERE id = ANY($1::bigint[]) ORDER BY id`,
      [answers.map((a) => a.check_id)],
    );
    assert.deepEqual(
      audit.map((x) => [x.id, x.caller, x.asked, x.ref, x.status, x.amount, x.origin_amount, x.reason]),
      answers.map((a) => [a.check_id, 'test-erp', 'store', a.ref, a.status, a.amount, a.origin_amount, a.reason]),
    );
    const text = await metrics.registry.getSingleMetricAsString('branchline_settlement_checks_total');
    for (const [answer, n] of [['released', 1], ['amount_differs', 1], ['settled', 1], ['deleted', 2], ['unavailable', 1]] as const)
      assert.match(text, new RegExp(`branchline_settlement_checks_total\\{store="S001",asked="store",answer="${answer}"\\} ${n}\\n`), text);
    assert.match(text, /store="S002",asked="hq",answer="released"\} 0\n/, 'every series starts at zero');
  });

  it('many records in one call: answered in order, one statement per store', async () => {
    for (const i of [0, 1]) {
      await store(i, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`);
      await store(i, `SELECT pg_stat_statements_reset()`);
    }
    const s2 = (await store(1, `SELECT id::text, amount::text FROM receivable ORDER BY id`)) as { id: string; amount: string }[];
    const raw = [
      ...s2.map((x) => ({ store: 'S002', ref: x.id, amount: x.amount })),
      { store: 'S001', ref: r['open'], amount: amounts['open'] },
      { store: 'S001', ref: r['settled'], amount: amounts['settled'] },
    ];
    const answers = await check(raw);
    assert.deepEqual(answers.map((a) => `${a.store}/${a.ref}`), raw.map((x) => `${x.store}/${x.ref}`));
    assert.deepEqual(answers.map((a) => a.status), [...s2.map(() => 'released'), 'released', 'settled']);
    for (const [i, db] of [[0, world.stores[0]!.db], [1, world.stores[1]!.db]] as const) {
      const calls = (await store(
        i,
        `SELECT coalesce(sum(s.calls), 0)::int AS n FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = $1 AND s.query LIKE '%unnest($1::text[]) WITH ORDINALITY%'`,
        [db],
      )) as { n: number }[];
      assert.equal(calls[0]!.n, 1, `statements reading records at ${db}`);
    }
  });

  it('a link that hangs and a stopped store answer unavailable within the timeout; the rest of the call is answered', async () => {
    storeLink.stall(true);
    try {
      const t0 = Date.now();
      const answers = await check([
        { store: 'S002', ref: '1', amount: '1.00' },
        { store: 'S001', ref: r['open'], amount: amounts['open'] },
      ]);
      const ms = Date.now() - t0;
      assert.deepEqual(answers.map((a) => [a.status, a.reason]), [['unavailable', 'unreachable'], ['released', null]]);
      assert.match(answers[0]!.detail, /did not answer within 1500 ms/);
      assert.ok(ms >= TIMEOUT_MS - 50 && ms < TIMEOUT_MS + 2_000, `answered in ${ms} ms`);
    } finally {
      storeLink.stall(false);
    }
    // The hung connection was dropped, not kept: the next check gets through.
    assert.equal((await one(r['open']!, amounts['open']!)).status, 'released');
    assert.equal((await check([{ store: 'S002', ref: '1', amount: '1' }]))[0]!.reason === 'unreachable', false, 'S002 answers again');

    await storeServer.stop();
    try {
      const t0 = Date.now();
      const a = await one(r['open']!, amounts['open']!);
      assert.equal(a.status, 'unavailable');
      assert.equal(a.reason, 'unreachable');
      assert.match(a.detail, /^cannot reach the store S001 database at 127\.0\.0\.1:\d+\/store_s001_\w+: connect ECONNREFUSED/);
      assert.doesNotMatch(a.detail, /password/);
      assert.ok(Date.now() - t0 < TIMEOUT_MS + 2_000);
    } finally {
      await storeServer.restart();
    }
    await eventually('S001 answers again', async () => (await one(r['open']!, amounts['open']!)).status === 'released', 20_000);
  });

  it('SQL injection attempts in every field change nothing and are recorded as written', async () => {
    const count = async () =>
      JSON.stringify([await store(0, `SELECT count(*)::int AS n FROM receivable`), await world.hqQuery(`SELECT count(*)::int AS n FROM store_receivable`)]);
    const before = await count();
    const hostile = [`1; DROP TABLE receivable; --`, `' OR '1'='1`, `${r['open']}) OR (1=1`, `${r['open']}' --`, `$1`, `\\'; DELETE FROM receivable; --`, '{1,2}', 'NULL'];
    const answers = await check(hostile.map((ref) => ({ store: 'S001', ref, amount: '1.00' })));
    assert.deepEqual(answers.map((a) => [a.ref, a.status, a.reason]), hostile.map((ref) => [ref, 'unavailable', 'unknown']));
    const audit = await world.hqQuery<{ ref: string }>(`SELECT ref FROM branchline.settlement_checks WHERE id = ANY($1::bigint[]) ORDER BY id`, [answers.map((a) => a.check_id)]);
    assert.deepEqual(audit.map((a) => a.ref), hostile);
    for (const [raw, code, what] of [
      [{ store: `S001'; DROP TABLE receivable; --`, ref: '1', amount: '1' }, 'BL-K002', /store "S001'; DROP TABLE receivable; --" is not configured/],
      [{ store: 'S001', kind: `receivable" OR 1=1 --`, ref: '1', amount: '1' }, 'BL-K001', /no mapping file declares settlement checks for "receivable" OR 1=1 --"/],
      [{ store: 'S001', ref: '1', amount: `1); DELETE FROM receivable; --` }, 'BL-K002', /"amount" is not a decimal number/],
    ] as const) {
      const e = await check([raw]).then(
        () => null,
        (err: unknown) => err,
      );
      assert.ok(isBranchlineError(e), String(e));
      assert.equal(e.code, code);
      assert.match(e.problem.message, what);
    }
    assert.equal(await count(), before);
  });

  it('a read-only role at the store is enough; one that may not read the table gets "unavailable (error)", with the reason', async () => {
    const s1 = world.stores[0]!;
    await storeServer.query(s1.db, `DROP ROLE IF EXISTS bl_check`).catch(() => undefined);
    await storeServer.query(s1.db, `CREATE ROLE bl_check LOGIN PASSWORD 'check-secret'; GRANT SELECT ON receivable TO bl_check`);
    const url = new URL(storeServer.url(s1.db));
    url.username = 'bl_check';
    url.password = 'check-secret';
    const readOnly = { ...config, stores: config.stores.map((s) => (s.code === 'S001' ? { ...s, readUrl: url.toString() } : s)) };
    const svc = new SettlementService({ config: readOnly, logger: silentLogger() });
    try {
      assert.equal((await check([{ store: 'S001', ref: r['open'], amount: amounts['open'] }], 'store', svc))[0]!.status, 'released');
      await storeServer.query(s1.db, `REVOKE SELECT ON receivable FROM bl_check`);
      const a = (await check([{ store: 'S001', ref: r['differs'], amount: '1' }], 'store', svc))[0]!;
      assert.deepEqual([a.status, a.reason], ['unavailable', 'error']);
      assert.match(a.detail, /refused the read: permission denied for table receivable \(SQLSTATE 42501\)/);
      assert.doesNotMatch(a.detail, /check-secret/);
    } finally {
      await svc.close();
      await storeServer.query(s1.db, `DROP OWNED BY bl_check; DROP ROLE bl_check`).catch(() => undefined);
    }
  });

  it('a store asks HQ about its own record: HQ\'s copy answers; HQ unreachable is "unavailable", recorded at the store', async () => {
    await world.hqQuery(`UPDATE store_receivable SET status = 'settled', settled_on = CURRENT_DATE WHERE store_code = 'S001' AND receivable_id = $1`, [r['differs']]);
    await world.hqQuery(`UPDATE store_receivable SET deleted_at = now() WHERE store_code = 'S001' AND receivable_id = $1`, [r['cli']]);
    const answers = await check(
      [
        { store: 'S001', ref: r['open'], amount: amounts['open'] },
        { store: 'S001', ref: r['open'], amount: '0.50' },
        { store: 'S001', ref: r['differs'], amount: amounts['differs'] },
        { store: 'S001', ref: r['cli'], amount: amounts['cli'] },
        { store: 'S001', ref: '555555', amount: '1' },
      ],
      'hq',
    );
    assert.deepEqual(answers.map((a) => [a.asked, a.status, a.reason]), [
      ['hq', 'released', null],
      ['hq', 'amount_differs', null],
      ['hq', 'settled', null],
      ['hq', 'deleted', null],
      ['hq', 'unavailable', 'unknown'],
    ]);
    hqLink.stall(true);
    let unreachable: SettlementAnswer;
    try {
      const t0 = Date.now();
      unreachable = (await check([{ store: 'S001', ref: r['open'], amount: amounts['open'] }], 'hq'))[0]!;
      assert.ok(Date.now() - t0 < TIMEOUT_MS + 2_000, 'within the timeout');
    } finally {
      hqLink.stall(false);
    }
    assert.deepEqual([unreachable.status, unreachable.reason], ['unavailable', 'unreachable']);
    assert.match(unreachable.detail, /The decision is the ERP's\.$/);
    const audit = (await store(0, `SELECT id::text, asked, status, reason FROM branchline.settlement_checks ORDER BY id`)) as { id: string; asked: string; status: string; reason: string | null }[];
    assert.deepEqual(
      audit.map((x) => [x.id, x.asked, x.status, x.reason]),
      [...answers, unreachable].map((a) => [a.check_id, 'hq', a.status, a.reason]),
    );
    // Asking HQ names one store: the store asking.
    await assert.rejects(check([{ store: 'S001', ref: '1', amount: '1' }, { store: 'S002', ref: '1', amount: '1' }], 'hq'), /BL-K002/);
  });

  it('an agent that never reached HQ: a store asking HQ gets "unavailable", recorded at the store; HQ asking a store gets no answer (nothing could be recorded)', async () => {
    const away = { ...config, hq: { ...config.hq, url: config.hq.url.replace(/:\d+\//, ':1/'), readUrl: config.hq.readUrl.replace(/:\d+\//, ':1/') } };
    const svc = new SettlementService({ config: away, logger: silentLogger() });
    try {
      const [a] = await check([{ store: 'S001', ref: r['open'], amount: amounts['open'] }], 'hq', svc);
      assert.deepEqual([a!.status, a!.reason], ['unavailable', 'unreachable']);
      assert.match(a!.detail, /^cannot reach the HQ database at 127\.0\.0\.1:1\/.*The decision is the ERP's\.$/);
      const [row] = (await store(0, `SELECT asked, status, reason FROM branchline.settlement_checks WHERE id = $1`, [a!.check_id])) as { asked: string; status: string; reason: string }[];
      assert.deepEqual(row, { asked: 'hq', status: 'unavailable', reason: 'unreachable' });
      await assert.rejects(check([{ store: 'S001', ref: r['open'], amount: amounts['open'] }], 'store', svc), /BL-D001/);
    } finally {
      await svc.close();
    }
  });

  it('no answer is given when it cannot be recorded', async () => {
    const broken = { ...config, hq: { ...config.hq, url: config.hq.url.replace(/:\d+\//, ':1/') } };
    const svc = new SettlementService({ config: broken, logger: silentLogger() });
    try {
      await assert.rejects(check([{ store: 'S001', ref: r['open'], amount: amounts['open'] }], 'store', svc), (e: unknown) => {
        assert.ok(isBranchlineError(e));
        assert.equal(e.code, 'BL-D001');
        assert.match(e.message, /could not be recorded; no answer was given/);
        return true;
      });
    } finally {
      await svc.close();
    }
  });

  it('over HTTP: POST /settlement-checks with a token answers and records who asked; without one nothing is asked or recorded', async () => {
    const token = 'tok-0123456789abcdef0123456789';
    const server = new HttpServer({ config: { host: '127.0.0.1', port: 0, tokens: [{ name: 'hq-erp', token }], maxBodyBytes: 65_536 }, routes: [settlementRoute(service)], logger: silentLogger() });
    const { port } = await server.start();
    const audited = async () => (await world.hqQuery<{ n: number }>(`SELECT count(*)::int AS n FROM branchline.settlement_checks`))[0]!.n;
    const post = (body: unknown, auth: string | null = `Bearer ${token}`) =>
      fetch(`http://127.0.0.1:${port}/settlement-checks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    try {
      const before = await audited();
      for (const auth of [null, 'Bearer wrong-token-0123456789abcdef', `Basic ${Buffer.from(`x:${token}`).toString('base64')}`, `Bearer ${token}x`]) {
        const res = await post({ store: 'S001', ref: r['open'], amount: amounts['open'] }, auth);
        assert.equal(res.status, 401, String(auth));
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'BL-H001');
      }
      assert.equal(await audited(), before, 'nothing was asked or recorded without a valid token');

      const res = await post({ at: 'store', checks: [{ store: 'S001', ref: r['open'], amount: amounts['open'] }, { store: 'S001', kind: 'receivable', ref: r['settled'], amount: amounts['settled'] }] });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { checks: SettlementAnswer[]; summary: Record<string, number> };
      assert.deepEqual(body.checks.map((a) => a.status), ['released', 'settled']);
      assert.deepEqual(body.summary, { released: 1, deleted: 0, settled: 1, amount_differs: 0, unavailable: 0 });
      const callers = await world.hqQuery<{ caller: string }>(`SELECT DISTINCT caller FROM branchline.settlement_checks WHERE id = ANY($1::bigint[])`, [body.checks.map((a) => a.check_id)]);
      assert.deepEqual(callers, [{ caller: 'hq-erp' }]);

      const single = (await (await post({ store: 'S001', ref: r['open'], amount: amounts['open'], at: 'hq' })).json()) as { checks: SettlementAnswer[] };
      assert.deepEqual(single.checks.map((a) => [a.asked, a.status]), [['hq', 'released']]);

      const now = await audited();
      for (const [body, code, what] of [
        [{ checks: [{ store: 'S001', ref: `1' OR '1'='1`, amount: '1; DROP TABLE receivable' }] }, 'BL-K002', /"amount" is not a decimal number/],
        [{ checks: [{ store: 'S001', ref: '1', amount: '1', sql: 'DROP TABLE receivable' }] }, 'BL-K002', /unknown field "sql"/],
        [{ checks: 'SELECT 1' }, 'BL-K002', /"checks" is not a list/],
        [{ at: "hq'; --", store: 'S001', ref: '1', amount: '1' }, 'BL-K002', /"at" must be "store"/],
        [{ checks: [], at: 'store' }, 'BL-K002', /no record to check/],
        [{ checks: Array.from({ length: 1001 }, () => ({ store: 'S001', ref: '1', amount: '1' })) }, 'BL-K002', /1001 records in one call, more than settlement\.max_refs \(1000\)/],
        [{ store: 'S001', kind: 'payable', ref: '1', amount: '1' }, 'BL-K001', /no mapping file declares settlement checks for "payable"\./],
        ['{"store": "S001", "ref": ', 'BL-H002', /./],
      ] as const) {
        const res = await post(body);
        assert.equal(res.status, 400, JSON.stringify(body).slice(0, 80));
        const e = ((await res.json()) as { error: { code: string; message: string } }).error;
        assert.equal(e.code, code);
        assert.match(e.message, what);
      }
      assert.equal(await audited(), now, 'a refused request records nothing');
    } finally {
      await server.close();
    }
  });

  it('the running agent serves it: /health, /metrics with the counts, POST /settlement-checks; closed when the agent stops', async () => {
    const port = await deadPort();
    const token = 'agent-token-0123456789abcdef';
    const agentConfig: Config = { ...config, http: { host: '127.0.0.1', port, tokens: [{ name: 'hq-erp', token }], maxBodyBytes: 1_048_576 } };
    const agent = new Agent({ config: agentConfig, logger: silentLogger() });
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    const url = `http://127.0.0.1:${port}`;
    const auth = { authorization: `Bearer ${token}` };
    try {
      await eventually('both up pipelines streaming, as /health says', async () => {
        const res = await fetch(`${url}/health`).catch(() => null);
        if (!res || res.status !== 200) return false;
        const body = (await res.json()) as { status: string; pipelines: Record<string, string> };
        return body.status === 'ok' && body.pipelines['up:S001'] === 'streaming' && body.pipelines['up:S002'] === 'streaming';
      });
      assert.equal((await fetch(`${url}/metrics`)).status, 401);
      const res = await fetch(`${url}/settlement-checks`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ checks: [{ store: 'S001', ref: r['open'], amount: amounts['open'] }, { store: 'S002', ref: '999999', amount: '1' }] }),
      });
      assert.equal(res.status, 200);
      assert.deepEqual(((await res.json()) as { checks: SettlementAnswer[] }).checks.map((a) => a.status), ['released', 'unavailable']);
      const metricsText = await (await fetch(`${url}/metrics`, { headers: auth })).text();
      assert.match(metricsText, /branchline_settlement_checks_total\{store="S001",asked="store",answer="released"\} 1\n/);
      assert.match(metricsText, /branchline_settlement_checks_total\{store="S002",asked="store",answer="unavailable"\} 1\n/);
      assert.match(metricsText, /branchline_settlement_check_duration_seconds_count\{store="S001",asked="store"\} 1\n/);
      assert.match(metricsText, /^branchline_process_cpu_user_seconds_total \d/m, 'process metrics');
      // The cross-store queries are served too (docs/queries.md): every store, none stocks product 1 here.
      const stock = await fetch(`${url}/stock/1`, { headers: auth });
      assert.equal(stock.status, 200);
      const answer = (await stock.json()) as { stores: { store: string; found: boolean }[] };
      assert.deepEqual(answer.stores.map((x) => [x.store, x.found]), [['S001', false], ['S002', false]]);
      assert.equal((await fetch(`${url}/prices/1`, { headers: auth })).status, 404, 'prices is not configured here: BL-Q001');
    } finally {
      controller.abort();
      await running;
    }
    assert.equal(await fetch(`${url}/health`).then(() => 'answered', () => 'refused'), 'refused', 'the server stops with the agent');
  });

  it('the command line: the exit code is the answer, --json prints the audit id', async () => {
    const base = ['settlement-check', '--config', world.configFile, '--store', 'S001'];
    const released = await runCli([...base, '--ref', r['open']!, '--amount', amounts['open']!, '--json', '--by', 'maria']);
    assert.equal(released.code, 0, show(released));
    const body = JSON.parse(released.stdout) as { checks: SettlementAnswer[]; summary: Record<string, number> };
    assert.equal(body.checks[0]!.status, 'released');
    assert.deepEqual(body.summary, { released: 1, deleted: 0, settled: 0, amount_differs: 0, unavailable: 0 });
    const [row] = await world.hqQuery<{ caller: string }>(`SELECT caller FROM branchline.settlement_checks WHERE id = $1`, [body.checks[0]!.check_id]);
    assert.equal(row?.caller, 'cli:maria');
    for (const [ref, amount, code] of [
      [r['differs']!, '0.01', 7],
      [r['settled']!, amounts['settled']!, 6],
      [r['cancelled']!, amounts['cancelled']!, 5],
      ['424242', '1', 8],
    ] as const) {
      const res = await runCli([...base, '--ref', ref, '--amount', amount]);
      assert.equal(res.code, code, show(res));
      assertNoStack(res);
    }
    const many = await runCli([...base, '--ref', r['open']!, '--ref', r['settled']!, '--amount', amounts['open']!, '--amount', amounts['settled']!]);
    assert.equal(many.code, 9, show(many));
    assert.match(many.stdout, /released/);
    assert.match(many.stdout, /settled/);
    const bad = await runCli([...base, '--ref', '1', '--amount', 'abc']);
    assert.equal(bad.code, 2, show(bad));
    assertNoStack(bad);
    assert.match(bad.stderr, /BL-K002 the check: "amount" is not a decimal number\./);
  });
});
