import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentProcess } from './support/agent-process.js';
import { deadPort } from './support/dead-port.js';
import { raw } from './support/http-client.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { createWorld, eventually, type World } from './support/world.js';

/**
 * Hostile HTTP against a running agent (a child process of the bundle, its
 * real HTTP surface, `http:` configured): bad tokens of many shapes,
 * injection attempts in paths, query strings and the JSON bodies of the
 * settlement and stock/price routes, and seeded random method, path and
 * header combinations. Every answer is a 4xx with its BL code (never a 500
 * for a caller's input), nothing is written at HQ or the store but the one
 * valid settlement check, and afterwards the agent still replicates and
 * `/health` answers. (test/http-server.test.ts covers the server alone.)
 */
const TOKEN = 'hostile-http-test-token-0123456789abcdef';
const SEED = process.env['BRANCHLINE_FUZZ_SEED'] ? Number(process.env['BRANCHLINE_FUZZ_SEED']) : randomInt(2 ** 31);
const AUTH = { authorization: `Bearer ${TOKEN}` };

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers: http.IncomingHttpHeaders;
}

/** Any method, path and headers node lets a client send (fetch refuses TRACE, CONNECT and some headers). */
function request(port: number, method: string, target: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers: { connection: 'close', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error(`${method} ${target.slice(0, 80)}: no answer in 15 s`)));
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** A refusal: 4xx, JSON {error: {code: BL-..., message}}, the code the caller expects when given. */
function assertRefused(what: string, a: { status: number; body: string }, code?: string | RegExp, status?: number): void {
  assert.ok(a.status >= 400 && a.status < 500, `${what}: status ${a.status} (${a.body.slice(0, 300)})`);
  if (status !== undefined) assert.equal(a.status, status, `${what}: status ${a.status} (${a.body.slice(0, 300)})`);
  const parsed = JSON.parse(a.body) as { error?: { code?: unknown; message?: unknown } };
  assert.match(String(parsed.error?.code), /^BL-[A-Z]\d{3}$/, `${what}: ${a.body.slice(0, 300)}`);
  assert.ok(typeof parsed.error?.message === 'string' && parsed.error.message.length > 0, `${what}: a sentence (${a.body.slice(0, 300)})`);
  assert.doesNotMatch(a.body, /\n\s+at |TypeError|RangeError|ReferenceError|SyntaxError/, `${what}: a stack or an exception's name in ${a.body.slice(0, 300)}`);
  if (code instanceof RegExp) assert.match(String(parsed.error?.code), code, `${what}: ${a.body.slice(0, 300)}`);
  else if (code) assert.equal(parsed.error?.code, code, `${what}: ${a.body.slice(0, 300)}`);
}

describe('hostile HTTP against a running agent', { timeout: 240_000 }, () => {
  let server: TestServer;
  let world: World;
  let agent: AgentProcess;
  let port: number;
  let receivableId: string;
  let counts: () => Promise<Record<string, number>>;
  let before0: Record<string, number>;
  /** Settlement checks that were well formed (recorded at HQ): the only rows the hostile requests may add. */
  let validChecks = 0;

  before(async () => {
    server = await startTestServer('hostile-http');
    port = await deadPort();
    world = await createWorld({
      hqServer: server,
      storeServer: server,
      stores: ['S001'],
      extraConfig: [
        'queries:',
        '  stock: {table: store_stock, product: product_id, store: store_code, columns: [quantity]}',
        '  prices: {table: store_price, product: product_id, store: store_code, columns: [price]}',
        'http:',
        `  listen: 127.0.0.1:${port}`,
        '  max_body_bytes: 65536',
        '  tokens:',
        '    - name: hq-erp',
        `      token: ${TOKEN}`,
      ].join('\n'),
    });
    const store = world.stores[0]!;
    agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    agent.start();
    await eventually('/health answering', async () => (await request(port, 'GET', '/health')).status === 200, 60_000);
    // Something to find: a receivable (settlement checks) and a stock row, both at HQ.
    const [cust] = await store.pool.query<{ id: number }>(`SELECT id FROM customer ORDER BY id LIMIT 1`).then((r) => r.rows);
    receivableId = (
      await store.pool.query<{ id: string }>(
        `INSERT INTO receivable (document_number, customer_id, due_on, amount, cost_center) VALUES ('DOC-1', $1, CURRENT_DATE + 30, 129.90, 'CC-01') RETURNING id::text`,
        [cust!.id],
      )
    ).rows[0]!.id;
    await store.pool.query(`INSERT INTO stock (product_id, quantity) VALUES (1, 12.5)`);
    await eventually('the receivable and the stock at HQ', async () => {
      const r = await world.hqQuery<{ n: number }>(`SELECT (SELECT count(*) FROM store_receivable WHERE store_code = 'S001')::int + (SELECT count(*) FROM store_stock)::int AS n`);
      return r[0]!.n === 2;
    });
    const tableCounts = async (query: (sql: string) => Promise<Record<string, unknown>[]>, prefix: string) => {
      // The ERP's tables, and branchline's records of settlement checks and parked changes (its change log and reader positions move on their own).
      const tables = (await query(
        `SELECT format('%I.%I', schemaname, relname) AS t FROM pg_stat_user_tables
          WHERE schemaname = 'public' OR (schemaname = 'branchline' AND relname IN ('settlement_checks', 'parked')) ORDER BY 1`,
      )) as { t: string }[];
      const rows = (await query(tables.map((t) => `SELECT '${t.t}' AS t, count(*)::int AS n FROM ${t.t}`).join(' UNION ALL '))) as { t: string; n: number }[];
      return Object.fromEntries(rows.map((r) => [`${prefix}${r.t}`, r.n]));
    };
    counts = async () => ({
      ...(await tableCounts((sql) => world.hqQuery(sql), 'hq:')),
      ...(await tableCounts((sql) => server.query(store.db, sql), 'store:')),
    });
    before0 = await counts();
  });
  after(async () => {
    await agent?.dispose();
    await world?.dispose();
    await server?.dispose();
  });

  it('bad tokens of many shapes: 401 BL-H001 on every route, the same answer whatever the path', async () => {
    const routes: [string, string][] = [
      ['GET', '/metrics'],
      ['GET', '/stock/1'],
      ['GET', '/prices/1'],
      ['POST', '/settlement-checks'],
      ['GET', '/no-such-route'],
      ['DELETE', '/stock/1'],
    ];
    const tokens: (string | undefined)[] = [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.toUpperCase()}`,
      `Bearer  ${TOKEN} trailing`,
      `Basic ${Buffer.from(`hq-erp:${TOKEN}`).toString('base64')}`,
      `Token ${TOKEN}`,
      TOKEN,
      `Bearer ${'A'.repeat(8_000)}`,
      "Bearer ' OR 1=1 --",
      'Bearer ../../etc/passwd',
      'Bearer __proto__',
      'Bearer null',
      'Bearer %00',
      `Bearer ${Buffer.from(TOKEN).toString('base64')}`,
    ];
    for (const [method, route] of routes) {
      for (const t of tokens) {
        const headers: Record<string, string> = t === undefined ? {} : { authorization: t };
        const body = method === 'POST' ? JSON.stringify({ store: 'S001', ref: receivableId, amount: '129.90' }) : undefined;
        const a = await request(port, method, route, { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, body);
        assertRefused(`${method} ${route} with authorization ${JSON.stringify(t?.slice(0, 40))}`, a, 'BL-H001', 401);
      }
    }
    // The token in the query string, bytes that are not UTF-8 and two Authorization headers, on the wire.
    assertRefused('token in the query string', await request(port, 'GET', `/metrics?access_token=${TOKEN}&token=${TOKEN}`), 'BL-H001', 401);
    for (const header of [Buffer.from(`Authorization: Bearer \xff\xfe${TOKEN}\r\n`, 'latin1'), Buffer.from(`Authorization: Bearer x\r\nAuthorization: Bearer ${TOKEN}\r\n`)]) {
      const r = await raw(port, [Buffer.concat([Buffer.from('GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'), header, Buffer.from('\r\n')])]);
      assert.ok(r.statuses.length === 1 && r.statuses[0]! >= 400 && r.statuses[0]! < 500, `raw ${JSON.stringify(header.toString('latin1').slice(0, 60))}: ${r.text.slice(0, 200)}`);
    }
  });

  it('injection in paths and query strings of the stock and price routes: 4xx with its code, or an answer that found nothing', async () => {
    const targets = [
      `/stock/1'%3B%20DROP%20TABLE%20store_stock%3B--`,
      `/stock/1%20OR%201%3D1`,
      `/prices/1'%20OR%20'1'%3D'1`,
      `/stock/..%2F..%2F..%2Fetc%2Fpasswd`,
      `/stock/%2e%2e%2f%2e%2e%2fetc%2fpasswd`,
      `/stock/../../etc/passwd`,
      `/stock/%00`,
      `/stock/1%00`,
      `/stock/%zz`,
      `/stock/%`,
      `/stock/%C3%28`,
      `/stock/%ED%A0%80`,
      `/stock/${'9'.repeat(1_000)}`,
      `/stock/99999999999999999999`,
      `/stock/-9223372036854775809`,
      `/stock/1e400`,
      `/stock/NaN`,
      `/stock/Infinity`,
      `/stock/-0`,
      `/stock/0x10`,
      `/stock/__proto__`,
      `/stock/constructor`,
      `/stock/1?store=S001'%20OR%201%3D1--`,
      `/stock/1?store=__proto__`,
      `/stock/1?store=S001&store=constructor`,
      `/stock/1?__proto__[polluted]=1&constructor[prototype][polluted]=1`,
      `/stock/1?store=%00`,
      `/stock/1?store=%FF`,
      `/prices/1?store=${'S'.repeat(10_000)}`,
      `/stock/1/extra`,
      `/stock/`,
      `/stock`,
      `//stock/1`,
      `/STOCK/1`,
    ];
    type StockAnswer = { product: string; stores: { store: string; found: boolean; values: Record<string, string | null> }[] };
    const honest = await request(port, 'GET', '/stock/1', AUTH);
    assert.equal(honest.status, 200, honest.body);
    const found = (JSON.parse(honest.body) as StockAnswer).stores.map(({ store, found, values }) => ({ store, found, values }));
    assert.deepEqual(found, [{ store: 'S001', found: true, values: { quantity: '12.500' } }]);
    let answered = 0;
    for (const t of targets) {
      const a = await request(port, 'GET', t, AUTH);
      if (a.status === 200) {
        answered++;
        // An answer is right when it is product 1's (a query parameter no route reads is ignored), or found nothing for every store.
        const body = JSON.parse(a.body) as StockAnswer;
        const stores = body.stores.map(({ store, found, values }) => ({ store, found, values }));
        if (body.product === '1') assert.deepEqual(stores, found, `${t}: ${a.body.slice(0, 300)}`);
        else assert.ok(stores.every((x) => !x.found), `${t}: found something for product ${JSON.stringify(body.product.slice(0, 40))}: ${a.body.slice(0, 300)}`);
        continue;
      }
      assertRefused(`GET ${t.slice(0, 80)}`, a);
    }
    assert.ok(answered < targets.length / 2, `${answered} of ${targets.length} hostile targets were answered`);
  });

  it('hostile JSON bodies of POST /settlement-checks: 4xx with its code and nothing recorded, or a well-formed check answered as not found and recorded; the valid check released', async (t) => {
    const valid = { store: 'S001', kind: 'receivable', ref: receivableId, amount: '129.90' };
    const bodies: (string | Buffer)[] = [
      ...[
        { ...valid, ref: `${receivableId}' OR 1=1 --` },
        { ...valid, ref: `1; DELETE FROM receivable; --` },
        { ...valid, kind: `receivable'; DROP TABLE store_receivable; --` },
        { ...valid, store: `S001' OR '1'='1` },
        { ...valid, store: '../../etc/passwd' },
        { ...valid, amount: `129.90'; --` },
        { ...valid, amount: 'NaN' },
        { ...valid, amount: 'Infinity' },
        { ...valid, amount: '-Infinity' },
        { ...valid, amount: '1e400' },
        { ...valid, amount: `1${'0'.repeat(1_000)}` },
        { ...valid, amount: -0 },
        { ...valid, amount: 1e308 },
        { ...valid, amount: null },
        { ...valid, amount: [] },
        { ...valid, amount: { $gt: 0 } },
        { ...valid, ref: null },
        { ...valid, ref: 12 },
        { ...valid, ref: { toString: 'x' } },
        { ...valid, ref: 'a\u0000b' },
        { ...valid, ref: 'r'.repeat(10_000) },
        { ...valid, store: null },
        { ...valid, store: '__proto__' },
        { ...valid, store: 'constructor' },
        { ...valid, kind: '__proto__' },
        { ...valid, kind: 'constructor' },
        { ...valid, kind: 'toString' },
        { ...valid, extra: 1 },
        { at: 'somewhere', checks: [valid] },
        { at: '__proto__', checks: [valid] },
        { checks: valid },
        { checks: [valid, 1, 'x', null] },
        { checks: [valid], sneaky: true },
        { checks: Array.from({ length: 1_001 }, () => valid) },
        { constructor: { prototype: { polluted: 1 } }, ...valid },
        [valid],
        'a string',
        12,
        null,
        true,
      ].map((b) => JSON.stringify(b)),
      `{"__proto__": {"polluted": 1}, "store": "S001", "ref": "${receivableId}", "amount": "129.90"}`,
      `{"checks": [{"__proto__": {"ref": "${receivableId}"}, "store": "S001", "amount": "129.90"}]}`,
      `{"store": "S001", "store": "S002", "ref": "${receivableId}", "amount": "129.90", "amount": "1"}`,
      `{"store": "S001", "ref": "${receivableId}", "amount": 1e400}`,
      `{"store": "S001", "ref": "${receivableId}", "amount": 12345678901234567890123456789012345678901234567890}`,
      '[['.repeat(50_000) + ']]'.repeat(50_000),
      '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000),
      '{"store": "S001", "ref": "\\ud800", "amount": "1"}',
      '{"store": "S001", "ref": "x", "amount": "1"',
      '',
      ' ',
      'null',
      '\u0000',
      Buffer.concat([Buffer.from('{"store": "S001", "ref": "'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('", "amount": "1"}')]),
    ];
    const recorded = async () => (await world.hqQuery<{ n: number }>(`SELECT count(*)::int AS n FROM branchline.settlement_checks`))[0]!.n;
    const start = await recorded();
    // A well-formed check whose reference is hostile is a question like any other: answered (it finds nothing), and recorded.
    let asked = 0;
    let refused = 0;
    for (const b of bodies) {
      const what = `body ${JSON.stringify(b.toString().slice(0, 100))}`;
      const a = await request(port, 'POST', '/settlement-checks', { ...AUTH, 'content-type': 'application/json' }, b);
      if (a.status === 200) {
        const answers = (JSON.parse(a.body) as { checks: { ref: string; amount: string; status: string; reason: string | null }[] }).checks;
        for (const c of answers) {
          // The real receivable with another amount differs; any other reference finds nothing.
          const right = c.ref === receivableId ? c.status === 'amount_differs' && c.amount !== '129.90' : c.status === 'unavailable' && c.reason === 'unknown';
          assert.ok(right, `${what}: ${JSON.stringify(c).slice(0, 300)}`);
        }
        asked += answers.length;
        t.diagnostic(`answered (well formed): ${what}: ${answers.map((c) => c.status).join(', ')}`);
        continue;
      }
      refused++;
      assertRefused(what, a, /^BL-(K00[12]|H00[24])$/);
    }
    assert.ok(refused >= bodies.length - 4, `only ${refused} of ${bodies.length} hostile bodies were refused`);
    // A lone surrogate was once answered and recorded as U+FFFD (what PostgreSQL keeps), not the reference asked.
    assertRefused('a lone surrogate in ref', await request(port, 'POST', '/settlement-checks', { ...AUTH, 'content-type': 'application/json' }, '{"store": "S001", "ref": "1\\udc00", "amount": "1"}'), 'BL-K002', 400);
    assert.equal(await recorded(), start + asked, `only the ${asked} well-formed checks were recorded`);
    for (const [ct, b] of [
      ['text/plain', JSON.stringify(valid)],
      ['application/json; charset=latin1', JSON.stringify(valid)],
      ['application/x-www-form-urlencoded', `store=S001&ref=${receivableId}&amount=129.90`],
      ['multipart/form-data; boundary=x', '--x\r\n\r\n--x--'],
    ] as const) {
      assertRefused(`content-type ${ct}`, await request(port, 'POST', '/settlement-checks', { ...AUTH, 'content-type': ct }, b), 'BL-H002', 415);
    }
    assertRefused('a body past max_body_bytes', await request(port, 'POST', '/settlement-checks', { ...AUTH, 'content-type': 'application/json' }, JSON.stringify({ ...valid, ref: 'r'.repeat(70_000) })), 'BL-H004', 413);
    assert.equal(await recorded(), start + asked, 'still nothing more recorded');
    // The honest check is answered and recorded, once.
    const ok = await request(port, 'POST', '/settlement-checks', { ...AUTH, 'content-type': 'application/json' }, JSON.stringify(valid));
    assert.equal(ok.status, 200, ok.body);
    assert.equal((JSON.parse(ok.body) as { checks: { status: string }[] }).checks[0]!.status, 'released', ok.body);
    assert.equal(await recorded(), start + asked + 1);
    validChecks = asked + 1;
  });

  it(`seeded random methods, paths and headers (BRANCHLINE_FUZZ_SEED=${SEED}): never a 5xx, a 2xx only for a real route with a token`, async (t) => {
    t.diagnostic(`BRANCHLINE_FUZZ_SEED=${SEED} (set it to replay this run)`);
    let s = SEED >>> 0;
    const next = () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0), s / 4294967296);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'PROPFIND', 'BREW', 'get'];
    const segments = ['health', 'metrics', 'stock', 'prices', 'settlement-checks', '1', '0042', '..', '.', '%2e%2e', '%2F', '%00', '%zz', '__proto__', 'constructor', "1'--", '%C3%28', 'x'.repeat(300), ''];
    const headerSets: Record<string, string>[] = [
      {},
      AUTH,
      { ...AUTH, 'content-type': 'application/json' },
      { ...AUTH, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      { ...AUTH, 'x-forwarded-for': "127.0.0.1' OR 1=1", 'x-real-ip': '::1' },
      { ...AUTH, host: 'evil.example:80' },
      { ...AUTH, expect: '100-continue', 'content-type': 'application/json' },
      { ...AUTH, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      { ...AUTH, accept: '*/*', 'accept-encoding': 'br, gzip, deflate', range: 'bytes=0-1' },
      { ...AUTH, cookie: '__proto__=1; token=x', 'x-http-method-override': 'DELETE' },
    ];
    const bodies = [undefined, '', '{}', '[]', 'null', '{"store": "S001", "ref": "1", "amount": "1"}', '{"__proto__": {"x": 1}}', 'not json', '\u0000'];
    let twoXx = 0;
    for (let i = 0; i < 250; i++) {
      const method = pick(methods);
      // Half on the real routes' shapes, half anywhere.
      const shape = next() < 0.5 ? pick(['/health', '/metrics', `/stock/${pick(segments)}`, `/prices/${pick(segments)}`, '/settlement-checks']) : `/${Array.from({ length: 1 + Math.floor(next() * 3) }, () => pick(segments)).join('/')}`;
      const target = `${shape}${next() < 0.3 ? `?${pick(['store=S001', 'store=', '__proto__=1', 'a=%zz', 'store=S001&store=S002', 'x'.repeat(1_000)])}` : ''}`;
      const headers = pick(headerSets);
      const body = ['GET', 'HEAD'].includes(method.toUpperCase()) ? undefined : pick(bodies);
      const what = `case ${i}: ${method} ${target.slice(0, 120)} ${JSON.stringify(headers).slice(0, 160)} body ${JSON.stringify(body)}`;
      const a = await request(port, method, target, headers, body);
      assert.ok(a.status < 500, `${what}: ${a.status} ${a.body.slice(0, 300)}`);
      if (a.status < 300) {
        twoXx++;
        // (node's client sends a method in upper case.)
        const m = method.toUpperCase();
        const real = (m === 'GET' || m === 'HEAD') && (/^\/health(\?.*)?$/.test(target) || ('authorization' in headers && /^\/(metrics|(stock|prices)\/[^/?]+)(\?.*)?$/.test(target)));
        const check = m === 'POST' && 'authorization' in headers && /^\/settlement-checks(\?.*)?$/.test(target);
        assert.ok(real || check, `${what}: ${a.status} for a route that should not answer`);
        if (check) validChecks += (JSON.parse(a.body) as { checks: unknown[] }).checks.length;
      } else if (method.toUpperCase() !== 'HEAD') {
        assertRefused(what, a);
      }
    }
    t.diagnostic(`${twoXx} of 250 answered 2xx (real routes)`);
  });

  it('afterwards: the agent runs, /health answers, a sale written now arrives, and nothing else changed at HQ or the store', async () => {
    assert.ok(agent.running, 'the agent process is still running');
    const health = await request(port, 'GET', '/health');
    assert.equal(health.status, 200, health.body);
    const now = await counts();
    // The well-formed settlement checks are the only rows written by all of the above.
    const changed = Object.keys(now).filter((k) => now[k] !== before0[k]);
    assert.deepEqual(changed, ['hq:branchline.settlement_checks'], `tables whose row counts changed: ${changed.map((k) => `${k} ${before0[k]} -> ${now[k]}`).join(', ')}`);
    assert.equal(now['hq:branchline.settlement_checks']! - before0['hq:branchline.settlement_checks']!, validChecks);
    const sale = await world.stores[0]!.workload.sale({ lines: 2 });
    await eventually('the new sale at HQ', async () => (await world.hqQuery(`SELECT 1 FROM store_sale WHERE store_code = 'S001' AND sale_id = $1`, [sale])).length === 1);
    const log = await agent.logText();
    assert.doesNotMatch(log, /"level":"error"/, 'no error logged by the agent');
  });
});
