import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { BranchlineError, ERROR_CODES, type ErrorCode } from '../src/core/errors.js';
import type { HttpConfig } from '../src/config/load.js';
import type { Route, RouteRequest, RouteResponse } from '../src/http/route.js';
import { HttpServer, type HttpTimeouts } from '../src/http/server.js';
import { healthRoute } from '../src/http/health-route.js';
import { metricsRoute } from '../src/http/metrics-route.js';
import { statusFor } from '../src/http/status.js';
import { jsonErrorAt } from '../src/http/json-error.js';
import { BearerTokens } from '../src/http/bearer-tokens.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { logCapture, raw } from './support/http-client.js';

const TOKEN = 'tok-erp-0123456789abcdef0123456789abcdef';
const OTHER = 'tok-pos-fedcba9876543210fedcba9876543210';
const LIMIT = 2048;

/** A route that records what it was given and answers what `answer` says. */
function recording(method: 'GET' | 'POST', path: string, answer?: (req: RouteRequest) => Promise<RouteResponse>): Route & { seen: RouteRequest[] } {
  const seen: RouteRequest[] = [];
  return {
    method,
    path,
    seen,
    async handle(req) {
      seen.push(req);
      return answer ? answer(req) : { status: 200, json: { ok: true, params: req.params, query: [...req.query], body: req.body ?? null, caller: req.caller } };
    },
  };
}

interface World {
  readonly base: string;
  readonly port: number;
  readonly server: HttpServer;
  readonly log: ReturnType<typeof logCapture>;
  readonly stock: ReturnType<typeof recording>;
  readonly checks: ReturnType<typeof recording>;
  readonly fails: ReturnType<typeof recording>;
}

const servers: HttpServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function world(options: { routes?: Route[]; timeouts?: Partial<HttpTimeouts>; port?: number } = {}): Promise<World> {
  const log = logCapture();
  const stock = recording('GET', '/stock/:product');
  const checks = recording('POST', '/settlement-checks');
  const fails = recording('GET', '/fails/:how', async (req) => {
    const how = req.params['how'];
    if (how === 'plain') throw new Error('database password is hunter2 at /srv/secret.ts:12');
    throw new BranchlineError({ code: how as ErrorCode, message: `failed with ${how}.`, hint: 'do the thing.' });
  });
  const config: HttpConfig = {
    host: '127.0.0.1',
    port: options.port ?? 0,
    tokens: [
      { name: 'hq-erp', token: TOKEN },
      { name: 'pos', token: OTHER },
    ],
    maxBodyBytes: LIMIT,
  };
  const server = new HttpServer({
    config,
    routes: options.routes ?? [healthRoute(), stock, checks, fails],
    logger: log.logger,
    timeouts: { headersMs: 400, requestMs: 800, keepAliveMs: 5_000, checkEveryMs: 100, closeGraceMs: 500, ...options.timeouts },
  });
  servers.push(server);
  const { port } = await server.start();
  return { base: `http://127.0.0.1:${port}`, port, server, log, stock, checks, fails };
}

const auth = (token = TOKEN): Record<string, string> => ({ authorization: `Bearer ${token}` });

async function errorOf(res: Response): Promise<{ code: string | null; message: string; hint: string | null; requestId?: string }> {
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = (await res.json()) as { error: { code: string | null; message: string; hint: string | null; requestId?: string } };
  return body.error;
}

describe('http server: authentication', () => {
  test('a configured token reaches the route, named by its caller; every answer carries the safety headers and a request id', async () => {
    const w = await world();
    const res = await fetch(`${w.base}/stock/42`, { headers: auth() });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.deepEqual(await res.json(), { ok: true, params: { product: '42' }, query: [], body: null, caller: 'hq-erp' });
    const second = await fetch(`${w.base}/stock/42`, { headers: { authorization: `bearer   ${OTHER}` } });
    assert.equal(((await second.json()) as { caller: string }).caller, 'pos');
    assert.notEqual(second.headers.get('x-request-id'), res.headers.get('x-request-id'));
    assert.equal(w.stock.seen.length, 2);
  });

  const refused: [string, Record<string, string>][] = [
    ['no Authorization header', {}],
    ['another scheme (Basic)', { authorization: `Basic ${Buffer.from(`hq-erp:${TOKEN}`).toString('base64')}` }],
    ['the scheme without a token', { authorization: 'Bearer' }],
    ['a wrong token of the same length', { authorization: `Bearer ${TOKEN.slice(0, -1)}x` }],
    ['a token of another length', { authorization: `Bearer ${TOKEN}${TOKEN}` }],
    ['a prefix of the right token', { authorization: `Bearer ${TOKEN.slice(0, 24)}` }],
    ['the right token with one character more', { authorization: `Bearer ${TOKEN}0` }],
    ['the token without the scheme', { authorization: TOKEN }],
  ];
  for (const [what, headers] of refused)
    test(`${what}: 401 BL-H001 with WWW-Authenticate, and the route is not called`, async () => {
      const w = await world();
      const res = await fetch(`${w.base}/stock/42`, { headers });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="branchline"');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const error = await errorOf(res);
      assert.equal(error.code, 'BL-H001');
      assert.ok(error.hint?.includes('Bearer'), error.hint ?? '');
      assert.equal(w.stock.seen.length, 0);
    });

  test('every check compares 32-byte digests with timingSafeEqual against every caller, whichever matches and whatever the length sent', () => {
    const tokens = new BearerTokens({ tokens: [{ name: 'a', token: TOKEN }, { name: 'b', token: OTHER }, { name: 'c', token: `${TOKEN}-c` }] });
    const original = crypto.timingSafeEqual;
    const calls: [number, number][] = [];
    crypto.timingSafeEqual = (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView): boolean => (calls.push([a.byteLength, b.byteLength]), original(a, b));
    syncBuiltinESMExports();
    try {
      for (const [sent, caller] of [[TOKEN, 'a'], [OTHER, 'b'], [`${TOKEN}-c`, 'c'], ['short', null], ['x'.repeat(5000), null]] as const) {
        calls.length = 0;
        const result = tokens.check(`Bearer ${sent}`);
        assert.deepEqual(result, caller ? { ok: true, caller } : { ok: false, reason: 'token' });
        assert.deepEqual(calls, [[32, 32], [32, 32], [32, 32]], `${sent.slice(0, 10)}: ${JSON.stringify(calls)}`);
      }
    } finally {
      crypto.timingSafeEqual = original;
      syncBuiltinESMExports();
    }
  });

  test('/health needs no token and says ok; a check adds to it', async () => {
    const w = await world({ routes: [healthRoute({ check: () => ({ pipelines: { 'up:S001': 'running' } }) })] });
    const res = await fetch(`${w.base}/health`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { pipelines: { 'up:S001': 'running' }, status: 'ok' });
    const plain = await world();
    assert.deepEqual(await (await fetch(`${plain.base}/health`)).json(), { status: 'ok' });
  });

  test('without a token, routes are not revealed: an unknown path, a known one and a wrong method all answer 401; with a token, 404 and 405', async () => {
    const w = await world();
    for (const [method, path] of [['GET', '/nothing-here'], ['GET', '/stock/1'], ['GET', '/settlement-checks'], ['POST', '/health']] as const) {
      const res = await fetch(`${w.base}${path}`, { method });
      assert.equal(res.status, 401, `${method} ${path}`);
      assert.equal((await errorOf(res)).code, 'BL-H001');
    }
    const missing = await fetch(`${w.base}/nothing-here`, { headers: auth() });
    assert.equal(missing.status, 404);
    assert.equal((await errorOf(missing)).code, 'BL-H003');
    const wrong = await fetch(`${w.base}/settlement-checks`, { headers: auth() });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'POST');
    assert.equal((await errorOf(wrong)).code, 'BL-H003');
    const healthPost = await fetch(`${w.base}/health`, { method: 'POST', headers: auth() });
    assert.equal(healthPost.status, 405);
    assert.equal(healthPost.headers.get('allow'), 'GET');
    // A trailing slash is another path (documented): no route has it.
    const slash = await fetch(`${w.base}/stock/1/`, { headers: auth() });
    assert.equal(slash.status, 404);
    assert.equal(w.checks.seen.length + w.stock.seen.length, 0);
  });
});

describe('http server: request bodies', () => {
  test('a GET\'s body is not read, and its connection is not kept to drain it', async () => {
    const w = await world();
    const r = await raw(w.port, [`GET /stock/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`]);
    assert.deepEqual(r.statuses, [200], r.text);
    assert.match(r.text, /\r\nConnection: close\r\n/i);
    assert.ok(r.closed);
    assert.equal(w.stock.seen[0]!.body, undefined);
  });

  test('a JSON body reaches the route parsed', async () => {
    const w = await world();
    const body = { store: 'S001', refs: [{ kind: 'sale', ref: 'V-1', amount: '129.90' }] };
    const res = await fetch(`${w.base}/settlement-checks`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(body) });
    assert.equal(res.status, 200);
    assert.deepEqual(w.checks.seen[0]?.body, body);
  });

  test('415 BL-H002 without Content-Type: application/json (or with another charset, or compressed)', async () => {
    const w = await world();
    const refused: Record<string, string>[] = [{ 'content-type': 'text/plain' }, { 'content-type': 'application/json; charset=latin1' }, { 'content-type': 'application/json', 'content-encoding': 'gzip' }, {}];
    for (const headers of refused) {
      const res = await fetch(`${w.base}/settlement-checks`, { method: 'POST', headers: { ...auth(), ...headers }, body: '{"store":"S001"}' });
      assert.equal(res.status, 415, JSON.stringify(headers));
      assert.equal((await errorOf(res)).code, 'BL-H002');
    }
    assert.equal(w.checks.seen.length, 0);
  });

  test('invalid JSON: 400 BL-H002 naming where it goes wrong, without echoing the body', async () => {
    const w = await world();
    const filler = 'CONFIDENTIAL-'.repeat(40);
    const res = await fetch(`${w.base}/settlement-checks`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: `{"note": "${filler}",\n "x": tru }` });
    assert.equal(res.status, 400);
    const error = await errorOf(res);
    assert.equal(error.code, 'BL-H002');
    assert.match(error.message, /line 2, column 10 \(character 542\)/);
    assert.ok(!JSON.stringify(error).includes('CONFIDENTIAL'), JSON.stringify(error));
    for (const [body, message] of [['', /empty/], [Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), /not UTF-8/]] as const) {
      const r = await fetch(`${w.base}/settlement-checks`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body });
      assert.equal(r.status, 400);
      assert.match((await errorOf(r)).message, message);
    }
    assert.equal(w.checks.seen.length, 0);
  });

  test('the error position agrees with V8 wherever V8 names one', () => {
    const cases = ['{"a":1,}', '[1,2', '{"a" 1}', '{"a":"b\u0001"}', '[1] x', '{"a":[1,{"b":nul}]}', '"\\q"', '-', '01', '{"a":1}}', '{,}', '[1.]', '\n\n  {"a": 1e}'];
    let compared = 0;
    for (const text of cases) {
      let v8: string | null = null;
      try {
        JSON.parse(text);
      } catch (e) {
        v8 = (e as Error).message;
      }
      assert.ok(v8 !== null, `${text} is not JSON`);
      const at = jsonErrorAt(text);
      assert.ok(at, `a position for ${JSON.stringify(text)}`);
      const named = /at position (\d+)/.exec(v8);
      if (named) {
        compared++;
        assert.equal(at.position, Number(named[1]), `${JSON.stringify(text)}: ${v8}`);
      }
      assert.ok(at.position <= text.length);
    }
    assert.ok(compared >= 5, `V8 named a position in ${compared} cases`);
    assert.equal(jsonErrorAt('{"a": [1, 2, {"b": null}], "c": "\\u00e9"}'), null);
    assert.deepEqual(jsonErrorAt('{\n  "a": 1,\n  "b": x\n}'), { position: 19, line: 3, column: 8 });
  });

  test('413 BL-H004 from a Content-Length over the limit, before a byte of the body is sent (also with Expect: 100-continue)', async () => {
    const w = await world();
    for (const expect of ['', 'Expect: 100-continue\r\n']) {
      const r = await raw(w.port, [
        `POST /settlement-checks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${LIMIT + 1}\r\n${expect}\r\n`,
      ]);
      assert.deepEqual(r.statuses, [413], r.text);
      assert.equal((r.bodies[0] as { error: { code: string } }).error.code, 'BL-H004');
      assert.ok(r.closed, 'the server closed the connection');
    }
    assert.equal(w.checks.seen.length, 0);
  });

  test('413 BL-H004 from a chunked body that grows past the limit: the server stops reading and closes the connection', async () => {
    const w = await world();
    const chunk = `{"pad":"${'x'.repeat(1000)}`;
    const steps: (string | number)[] = [`POST /settlement-checks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`];
    // 40 chunks of ~1 KB (20 times the limit), sent one by one: the answer comes after the third.
    for (let i = 0; i < 40; i++) steps.push(`${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`, 10);
    const r = await raw(w.port, steps);
    assert.deepEqual(r.statuses, [413], r.text.slice(0, 300));
    assert.equal((r.bodies[0] as { error: { code: string } }).error.code, 'BL-H004');
    assert.ok(r.closed, 'the server closed the connection');
    assert.equal(w.checks.seen.length, 0);
  });

  test('a lying Content-Length: the route gets only the bytes declared, the rest is no body of it and is refused as HTTP', async () => {
    const w = await world();
    const declared = '{"store":"S001"}';
    const r = await raw(w.port, [
      `POST /settlement-checks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${declared.length}\r\n\r\n${declared}${'y'.repeat(5000)}`,
    ]);
    assert.equal(w.checks.seen.length, 1);
    assert.deepEqual(w.checks.seen[0]!.body, { store: 'S001' });
    // The parser refuses the extra bytes at once, while the route still works on the first request: its 200 may never be written.
    assert.equal(r.statuses.at(-1), 400, r.text.slice(0, 600));
    assert.ok(r.statuses.every((s) => s === 200 || s === 400) && r.statuses.length <= 2, r.text.slice(0, 600));
    assert.equal((r.bodies.at(-1) as { error: { code: string } }).error.code, 'BL-H002');
    assert.ok(r.closed);
  });

  test('Content-Length with Transfer-Encoding (request smuggling) is refused before any route', async () => {
    const w = await world();
    const r = await raw(w.port, [
      `POST /settlement-checks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    ]);
    assert.deepEqual(r.statuses, [400], r.text);
    assert.ok(r.closed);
    assert.equal(w.checks.seen.length, 0);
  });
});

describe('http server: paths and queries', () => {
  test('a malformed percent escape, bytes that are not UTF-8, or a NUL: 400 BL-H002 (path or query), not a crash', async () => {
    const w = await world();
    for (const path of ['/stock/%zz', '/stock/%E0%A4%A', '/stock/%C3%28', '/stock/a%00b', '/stock/1?stores=%', '/stock/1?x%2=1', '/stock/1?s=%00']) {
      const res = await fetch(`${w.base}${path}`, { headers: auth() });
      assert.equal(res.status, 400, path);
      assert.equal((await errorOf(res)).code, 'BL-H002', path);
    }
    assert.equal(w.stock.seen.length, 0);
    assert.equal((await fetch(`${w.base}/health`)).status, 200, 'still serving');
  });

  test('SQL-looking path parameters and query values reach the route verbatim; %2F stays inside its segment', async () => {
    const w = await world();
    const product = `1'; DROP TABLE stock; --`;
    const store = `S001' OR '1'='1`;
    const res = await fetch(`${w.base}/stock/${encodeURIComponent(product)}?stores=${encodeURIComponent(store)}&stores=S002&q=a+b%2Bc`, { headers: auth() });
    assert.equal(res.status, 200);
    const seen = w.stock.seen[0]!;
    assert.deepEqual(seen.params, { product });
    assert.deepEqual(seen.query.getAll('stores'), [store, 'S002']);
    assert.equal(seen.query.get('q'), 'a b+c');
    await fetch(`${w.base}/stock/a%2Fb`, { headers: auth() });
    assert.deepEqual(w.stock.seen[1]!.params, { product: 'a/b' });
    await fetch(`${w.base}/stock/%C3%A9%20%22x%22`, { headers: auth() });
    assert.deepEqual(w.stock.seen[2]!.params, { product: 'é "x"' });
  });

  test('a literal segment wins over a parameter', async () => {
    const param = recording('GET', '/stock/:product');
    const literal = recording('GET', '/stock/summary');
    const w = await world({ routes: [param, literal] });
    await fetch(`${w.base}/stock/summary`, { headers: auth() });
    await fetch(`${w.base}/stock/other`, { headers: auth() });
    assert.equal(literal.seen.length, 1);
    assert.deepEqual(param.seen.map((r) => r.params), [{ product: 'other' }]);
  });
});

describe('http server: errors of routes', () => {
  test('a route throwing a BranchlineError: its code, message and hint, with the status statusFor gives', async () => {
    const w = await world();
    for (const [code, status] of [['BL-K002', 400], ['BL-K001', 400], ['BL-Q001', 404], ['BL-Q002', 500], ['BL-D001', 503], ['BL-C003', 500]] as const) {
      assert.equal(statusFor(code), status, code);
      const res = await fetch(`${w.base}/fails/${code}`, { headers: auth() });
      assert.equal(res.status, status, code);
      assert.deepEqual(await res.json(), { error: { code, message: `failed with ${code}.`, hint: 'do the thing.' } });
    }
  });

  test('docs/http.md lists the status of every code the server answers with, as statusFor gives it', async () => {
    const doc = await readFile(new URL('../docs/http.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\| (BL-[A-Z]\d{3}) \| (\d{3})/gm)].map((m) => [m[1] as ErrorCode, Number(m[2])] as const);
    assert.ok(rows.length >= 10, `${rows.length} rows`);
    for (const [code, status] of rows) {
      assert.ok(code in ERROR_CODES, `${code} is a code`);
      assert.equal(statusFor(code), status, code);
    }
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[])
      if (/^BL-[HKQ]/.test(code)) assert.ok(rows.some(([c]) => c === code), `${code} in docs/http.md`);
  });

  test('a route throwing anything else: 500 with a request id, no message or stack for the caller, the stack in the log', async () => {
    const w = await world();
    const res = await fetch(`${w.base}/fails/plain`, { headers: auth() });
    assert.equal(res.status, 500);
    const text = await res.text();
    assert.ok(!/hunter2|secret\.ts|at /.test(text), text);
    const error = (JSON.parse(text) as { error: { code: null; requestId: string } }).error;
    assert.equal(error.code, null);
    assert.equal(error.requestId, res.headers.get('x-request-id'));
    const logged = w.log.lines().find((l) => l['message'] === 'http handler failed');
    assert.ok(logged, w.log.text());
    assert.equal(logged['requestId'], error.requestId);
    assert.match(String(logged['stack']), /http-server\.test\.ts/);
  });

  test('a route answering what HTTP cannot carry (status 1000, a content type with a line break) is a bug: 500, and the server goes on', async () => {
    const badStatus = recording('GET', '/bad/status', async () => ({ status: 1000, json: {} }));
    const badType = recording('GET', '/bad/type', async () => ({ status: 200, text: 'x', contentType: 'text/plain\r\nSet-Cookie: a=b' }));
    const w = await world({ routes: [healthRoute(), badStatus, badType] });
    for (const path of ['/bad/status', '/bad/type']) {
      const res = await fetch(`${w.base}${path}`, { headers: auth() });
      assert.equal(res.status, 500, path);
      assert.equal(res.headers.get('set-cookie'), null);
      assert.equal((await errorOf(res)).code, null);
    }
    assert.equal((await fetch(`${w.base}/health`)).status, 200);
    assert.equal(w.log.lines().filter((l) => l['message'] === 'http handler failed').length, 2);
  });
});

describe('http server: the log', () => {
  test('one line per request (method, route, status, ms, caller); never a token, the Authorization header or a body', async () => {
    const w = await world();
    await fetch(`${w.base}/stock/7`, { headers: auth() });
    await fetch(`${w.base}/stock/7`, { headers: auth(`${TOKEN}-almost`) });
    await fetch(`${w.base}/settlement-checks`, { method: 'POST', headers: { ...auth(OTHER), 'content-type': 'application/json' }, body: '{"ref":"BODY-MARKER"}' });
    await fetch(`${w.base}/settlement-checks`, { method: 'POST', headers: { ...auth(OTHER), 'content-type': 'application/json' }, body: '{"ref":"BODY-MARKER"' });
    // The parser's refusal of huge headers carries the raw packet, the token in it: it must not reach the log.
    await raw(w.port, [`GET /stock/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nX-Pad: ${'p'.repeat(20_000)}\r\n\r\n`]);
    await new Promise((r) => setTimeout(r, 50));
    const text = w.log.text();
    for (const secret of [TOKEN, OTHER, TOKEN.slice(4, 28), 'Bearer', 'BODY-MARKER', 'ppppppppp']) assert.ok(!text.includes(secret), `log holds ${secret}:\n${text}`);
    const requests = w.log.lines().filter((l) => l['message'] === 'http request');
    assert.deepEqual(
      requests.map((l) => [l['method'], l['route'], l['status'], l['caller']]),
      [
        ['GET', '/stock/:product', 200, 'hq-erp'],
        ['GET', null, 401, 'anonymous'],
        ['POST', '/settlement-checks', 200, 'pos'],
        ['POST', '/settlement-checks', 400, 'pos'],
      ],
    );
    for (const l of requests) assert.ok(typeof l['ms'] === 'number' && l['ms'] >= 0 && typeof l['requestId'] === 'string', JSON.stringify(l));
    const refused = w.log.lines().filter((l) => l['message'] === 'http request refused');
    assert.deepEqual(refused.map((l) => [l['status'], l['reason']]), [[431, 'HPE_HEADER_OVERFLOW']]);
  });
});

describe('http server: slow clients, stopping, the port', () => {
  test('headers sent too slowly (slowloris): 408 and the connection closed', async () => {
    const w = await world();
    const r = await raw(w.port, ['GET /health HTTP/1.1\r\n', 'Host: x\r\n', 300, 'X-A: 1\r\n', 300, 'X-B: 2\r\n', 300, 'X-C: 3\r\n'], 3_000);
    assert.deepEqual(r.statuses, [408], r.text);
    assert.ok(r.closed);
  });

  test('a body sent too slowly: 408, the route not called', async () => {
    const w = await world();
    const r = await raw(w.port, [`POST /settlement-checks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{"a":`], 3_000);
    assert.deepEqual(r.statuses, [408], r.text);
    assert.ok(r.closed);
    assert.equal(w.checks.seen.length, 0);
  });

  test('a caller that goes away aborts its handler\'s signal', async () => {
    let aborted: (v: unknown) => void = () => undefined;
    const gone = new Promise((r) => (aborted = r));
    const slow = recording('GET', '/slow', (req) => new Promise((_, reject) => req.signal.addEventListener('abort', () => (aborted(req.signal.reason), reject(req.signal.reason)))));
    const w = await world({ routes: [slow] });
    await raw(w.port, [`GET /slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`], 200);
    const reason = await gone;
    assert.match(String(reason), /closed the connection/);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(w.log.lines().find((l) => l['message'] === 'http request')?.['status'], 499);
    assert.equal(w.log.lines().filter((l) => l['level'] === 'error').length, 0, 'a caller leaving is no bug');
  });

  test('close() aborts an in-flight handler (503 BL-H006 to its caller) and ends with a keep-alive connection open', async () => {
    const slow = recording('GET', '/slow', (req) => new Promise((_, reject) => req.signal.addEventListener('abort', () => reject(req.signal.reason))));
    const w = await world({ routes: [healthRoute(), slow], timeouts: { closeGraceMs: 60_000 } });
    const agent = new http.Agent({ keepAlive: true });
    const get = (path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; socketClosed: Promise<void> }> =>
      new Promise((resolve, reject) => {
        const req = http.get(`${w.base}${path}`, { agent, headers }, (res) => {
          let body = '';
          const socketClosed = new Promise<void>((r) => req.socket!.once('close', () => r()));
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body, socketClosed }));
        });
        req.on('error', reject);
      });
    const idle = await get('/health');
    assert.equal(idle.status, 200);
    assert.equal(Object.values(agent.freeSockets).flat().length, 1, 'one idle keep-alive connection');
    const inFlight = get('/slow', auth());
    while (slow.seen.length === 0) await new Promise((r) => setTimeout(r, 5));
    // closeGraceMs is a minute: close() must end because the idle connection is closed and the handler aborted, not by the cut.
    const closing = w.server.close();
    const answer = await inFlight;
    assert.equal(answer.status, 503);
    assert.equal((JSON.parse(answer.body) as { error: { code: string } }).error.code, 'BL-H006');
    assert.ok(slow.seen[0]!.signal.aborted);
    let ended = false;
    await Promise.race([closing.then(() => (ended = true)), new Promise((r) => setTimeout(r, 5_000))]);
    assert.ok(ended, 'close() ended');
    await idle.socketClosed;
    await assert.rejects(fetch(`${w.base}/health`), 'no longer accepting');
    agent.destroy();
  });

  test('close() ends even when a handler ignores its signal: connections are cut after closeGraceMs', async () => {
    let started = false;
    const stuck = recording('GET', '/stuck', () => ((started = true), new Promise<never>(() => undefined)));
    const w = await world({ routes: [stuck], timeouts: { closeGraceMs: 300 } });
    const pending = fetch(`${w.base}/stuck`, { headers: auth() }).then(
      (r) => r.status,
      (e: Error) => e.name,
    );
    while (!started) await new Promise((r) => setTimeout(r, 5));
    let ended = false;
    await Promise.race([w.server.close().then(() => (ended = true)), new Promise((r) => setTimeout(r, 5_000))]);
    assert.ok(ended, 'close() ended');
    assert.equal(await pending, 'TypeError', 'the caller saw the connection cut');
    assert.ok(stuck.seen[0]!.signal.aborted);
  });

  test('a port in use, or an address not of this machine: BL-H005 naming host:port', async () => {
    const first = await world();
    const log = logCapture();
    const second = new HttpServer({ config: { host: '127.0.0.1', port: first.port, tokens: [{ name: 'a', token: TOKEN }], maxBodyBytes: LIMIT }, routes: [], logger: log.logger });
    await assert.rejects(second.start(), (e: unknown) => {
      assert.ok(e instanceof BranchlineError);
      assert.equal(e.code, 'BL-H005');
      assert.ok(e.message.includes(`127.0.0.1:${first.port}`), e.message);
      assert.match(e.message, /in use/);
      return true;
    });
    assert.equal((await fetch(`${first.base}/health`)).status, 200, 'the first still serves');
    // An address that is not this machine's (TEST-NET-1): the same code, another reason.
    const elsewhere = new HttpServer({ config: { host: '192.0.2.1', port: 8787, tokens: [{ name: 'a', token: TOKEN }], maxBodyBytes: LIMIT }, routes: [], logger: log.logger });
    await assert.rejects(elsewhere.start(), (e: unknown) => {
      assert.ok(e instanceof BranchlineError);
      assert.equal(e.code, 'BL-H005');
      assert.match(e.message, /192\.0\.2\.1:8787: that address is not one of this machine's/);
      return true;
    });
  });
});

describe('http server: metrics', () => {
  test('GET /metrics: the registry in Prometheus text format, with a token only', async () => {
    const metrics = createMetrics(['S001'], { processMetrics: false });
    metrics.settlement.answered('S001', 'store', 'settled', 3);
    const w = await world({ routes: [healthRoute(), metricsRoute(metrics.registry)] });
    assert.equal((await fetch(`${w.base}/metrics`)).status, 401);
    const res = await fetch(`${w.base}/metrics`, { headers: auth() });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), metrics.registry.contentType);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const text = await res.text();
    assert.match(text, /^branchline_settlement_checks_total\{store="S001",asked="store",answer="settled"\} 3$/m);
    assert.match(text, /^branchline_settlement_checks_total\{store="S001",asked="hq",answer="released"\} 0$/m);
    assert.match(text, /^# TYPE branchline_settlement_check_duration_seconds histogram$/m);
  });
});
