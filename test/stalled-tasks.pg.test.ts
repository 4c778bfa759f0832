import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createLogSql } from '../connectors/pg-trigger/index.js';
import { runCaptureMetrics } from '../src/agent/capture-metrics.js';
import { purgeHqChangeLog } from '../src/agent/purge.js';
import { readStatus } from '../src/agent/status.js';
import { readCatalog } from '../src/agent/prepare.js';
import { storeCapture } from '../src/agent/store-capture.js';
import { BranchlineError } from '../src/core/errors.js';
import { isUnreachableError } from '../src/db/connect.js';
import { collectReport } from '../src/reports/report.js';
import { PgSink } from '../src/apply/pg-sink.js';
import { DownAssociationResolver } from '../src/associate/down-resolver.js';
import { fetchNewestVersion } from '../src/config/central.js';
import type { Config, StoreConfig } from '../src/config/load.js';
import type { Logger } from '../src/core/logger.js';
import { silentLogger } from '../src/core/logger.js';
import type { PipelineMetricsSet } from '../src/metrics/pipeline-metrics.js';
import { poolHqReader } from '../src/queries/hq-reader.js';
import { AuditLog, type AuditEntry } from '../src/settlement/audit.js';
import { migrateLatest } from '../src/state/migrate.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { swallowOnceConnected, within } from './support/stall.js';
import { TcpProxy } from './support/tcp-proxy.js';

/**
 * The connections a running agent opens besides its pipelines' sessions,
 * over a link that stalls (no reset) once a connection opened: each fails
 * within its deadline instead of holding its task for good, and the next
 * attempt works once the link is back. Before, none of them had a read
 * deadline: the down channel's association look-ups at HQ, the capture
 * metrics, the change-log purges, a halted pipeline's report, the central
 * configuration fetch and the HTTP surface's HQ reads (queries) and
 * settlement audit would wait for minutes (TCP retransmissions) or for good.
 *
 * Every case has its own proxy, so they run side by side.
 */
describe('the agent\'s other connections over a stalled link', { timeout: 150_000, concurrency: true }, () => {
  let server: TestServer;
  let admin: pg.Client;
  let hqDb: string;
  let storeDb: string;
  const proxies: TcpProxy[] = [];
  const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'branchline-stall-config-'));
  /** Bounds given to the code under test (ms): each fails within it plus the 10 s grace of the read deadline. */
  const STATEMENT_TIMEOUT_MS = 1_000;

  before(async () => {
    server = await startTestServer('stalled-tasks');
    hqDb = await server.createDatabase('hq');
    storeDb = await server.createDatabase('store');
    await migrateLatest(server.url(hqDb));
    await migrateLatest(server.url(storeDb)); // a store's own branchline state (its down pipeline's), which the report reads
    for (const sql of createLogSql({ notify: false })) await server.query(hqDb, sql);
    for (const sql of createLogSql({ notify: false })) await server.query(storeDb, sql);
    admin = new pg.Client(server.url('postgres'));
    await admin.connect();
  });
  after(async () => {
    await admin?.end();
    for (const p of proxies) await p.close();
    await server?.dispose();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  /** A proxy to the test server, slow enough that a client's first statement comes after its session shows. */
  const slowProxy = async (): Promise<TcpProxy> => {
    const p = await new TcpProxy(Number(new URL(server.url('postgres')).port)).start();
    proxies.push(p);
    p.slow({ latencyMs: 150 });
    return p;
  };
  /** Runs `attempt` through `proxy`, stalls the link once `application`'s session shows, and asserts the attempt fails within `boundMs`; then mends the link. */
  const failsWithin = async <T>(proxy: TcpProxy, application: string, database: string, attempt: () => Promise<T>, boundMs: number): Promise<unknown> => {
    const started = Date.now();
    const p = attempt();
    p.catch(() => undefined);
    assert.ok((await swallowOnceConnected(proxy, admin, application, database)) > 0, `${application} connected through the proxy`);
    assert.equal(await within(p, boundMs + 10_000), 'settled', `${application}: the attempt ends on its own`);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < boundMs, `${application}: the attempt ended after ${elapsed} ms (bound ${boundMs} ms)`);
    const error = await p.then(
      () => assert.fail(`${application}: the attempt succeeded over a stalled link`),
      (e: unknown) => e,
    );
    proxy.swallowClientBytes(false);
    proxy.cut();
    proxy.slow({});
    return error;
  };
  const readTimeout = (e: unknown) => /read timeout/i.test((e as Error).message) || (e as { code?: string }).code === 'BL-S010';
  const store = (url: string, connector: StoreConfig['connector'], code = 'T1'): StoreConfig => ({
    code,
    name: code,
    url,
    connector,
    slot: 'branchline_t1',
    publication: 'branchline_t1',
    enabled: true,
    timeZone: 'UTC',
    readUrl: url,
    settlementTimeoutMs: 5_000,
  });

  it('down channel: an association look-up at HQ fails, and the next one reconnects', async () => {
    const proxy = await slowProxy();
    const resolver = new DownAssociationResolver({ storeCode: 'T1', entities: new Map(), hqUrl: proxy.url(server.url(hqDb)), statementTimeoutMs: STATEMENT_TIMEOUT_MS });
    const waiting = [{ entity: 'customer', code: 'HQ-42' }];
    const error = await failsWithin(proxy, 'branchline-down-T1-associations', hqDb, () => resolver.associatedAny(waiting), 20_000);
    assert.ok(readTimeout(error), `a read timeout, not: ${(error as Error).message}`);
    assert.equal(await resolver.associatedAny(waiting), false, 'HQ answers again: no association yet');
    await server.query(hqDb, `INSERT INTO branchline.associations (store_code, entity, branch_code, hq_key, origin, created_by) VALUES ('T1', 'customer', '7', 'HQ-42', 'manual', 'test')`);
    assert.equal(await resolver.associatedAny(waiting), true, 'and reads what is there');
    await resolver.close();
  });

  it('capture metrics: a stalled store does not stop its own readings, nor delay the other stores\'', async () => {
    const proxy = await slowProxy();
    const seen: (number | null)[] = [];
    let otherStore = 0;
    const notRead: string[] = [];
    const logger = silentLogger();
    logger.child = () => logger;
    logger.debug = ((message: string) => {
      notRead.push(message);
      return logger;
    }) as Logger['debug'];
    const metrics = {
      capture: (code: string, v: { retainedBytes: number | null }) => (code === 'T1' ? seen.push(v.retainedBytes) : otherStore++),
    } as unknown as PipelineMetricsSet;
    const stop = new AbortController();
    // T1 through the proxy; T2 straight to the server (its change table is in the HQ database here, so its sessions are not T1's).
    const stores = [store(proxy.url(server.url(storeDb)), 'pg-trigger'), store(server.url(hqDb), 'pg-trigger', 'T2')];
    const loop = runCaptureMetrics({ stores, metrics, position: () => null, intervalMs: 100, logger }, stop.signal);
    try {
      const started = Date.now();
      assert.ok((await swallowOnceConnected(proxy, admin, 'branchline-metrics', storeDb)) > 0, 'the metrics reader connected through the proxy');
      const before = seen.length;
      const otherBefore = otherStore;
      while (notRead.length === 0 && Date.now() - started < 30_000) await new Promise((r) => setTimeout(r, 100));
      assert.ok(otherStore - otherBefore >= 5, `the other store was read ${otherStore - otherBefore} times while T1 stalled`);
      assert.deepEqual(notRead, ['store capture not read for the metrics this time'], 'the stalled reading gave up (logged at debug)');
      assert.ok(Date.now() - started < 20_000, `the reading gave up after ${Date.now() - started} ms`);
      assert.equal(seen.length, before, 'no reading made up while stalled');
      proxy.swallowClientBytes(false);
      proxy.cut();
      proxy.slow({});
      const mended = Date.now();
      while (seen.length === before && Date.now() - mended < 10_000) await new Promise((r) => setTimeout(r, 50));
      assert.ok(seen.length > before, 'the readings go on once the link is back');
      assert.ok(typeof seen.at(-1) === 'number' && seen.at(-1)! > 0, `the change table's size is read (${seen.at(-1)})`);
    } finally {
      stop.abort();
      await within(loop, 20_000); // bounded, so a failure above reads as itself
    }
  });

  it('purges: HQ\'s change log and a store\'s change table fail the round, and the next round purges', async () => {
    const config = { hq: { url: '' }, down: { retentionHours: 24 }, apply: { statementTimeoutMs: STATEMENT_TIMEOUT_MS } } as unknown as Config;
    const hqProxy = await slowProxy();
    const hqConfig = { ...config, hq: { ...config.hq, url: hqProxy.url(server.url(hqDb)) } } as Config;
    assert.ok(readTimeout(await failsWithin(hqProxy, 'branchline-purge', hqDb, () => purgeHqChangeLog(hqConfig), 20_000)), 'HQ: a read timeout');
    assert.equal((await purgeHqChangeLog(hqConfig)).deleted, 0, 'HQ answers again (nothing to purge)');

    const storeProxy = await slowProxy();
    const capture = storeCapture(store(storeProxy.url(server.url(storeDb)), 'pg-trigger'));
    assert.ok(readTimeout(await failsWithin(storeProxy, 'branchline-purge', storeDb, () => capture.purge(STATEMENT_TIMEOUT_MS), 20_000)), 'store: a read timeout');
    assert.deepEqual(await capture.purge(STATEMENT_TIMEOUT_MS), { deleted: 0, purgedBelow: '0' }, 'the store answers again (HQ applied nothing yet)');
  });

  it('status (and the scheduled report): a stalled store is reported unreachable, not waited for', async () => {
    const proxy = await slowProxy();
    const config = { hq: { url: server.url(hqDb) } } as unknown as Config;
    const stores = [store(proxy.url(server.url(storeDb)), 'pg-trigger')];
    const started = Date.now();
    const reading = readStatus(config, stores);
    reading.catch(() => undefined);
    assert.ok((await swallowOnceConnected(proxy, admin, 'branchline-status', storeDb)) > 0, 'status connected to the store through the proxy');
    assert.equal(await within(reading, 30_000), 'settled', 'status ends on its own');
    const [t1] = await reading;
    assert.ok(Date.now() - started < 20_000, `status ended after ${Date.now() - started} ms`);
    assert.equal(t1!.storeReachable, false, 'the store is reported unreachable');
    proxy.swallowClientBytes(false);
    proxy.cut();
    proxy.slow({});
    const [again] = await readStatus(config, stores);
    assert.equal(again!.storeReachable, true, 'and reachable once the link is back');

    // The report reads the store's down figure on a connection of its own: stalled, the figure is unknown and the report goes on.
    const reportConfig = { ...config, stores } as unknown as Config;
    proxy.slow({ latencyMs: 150 });
    const reportStarted = Date.now();
    const collecting = collectReport(reportConfig, new Date(), null, 'UTC');
    collecting.catch(() => undefined);
    assert.ok((await swallowOnceConnected(proxy, admin, 'branchline-report', storeDb)) > 0, 'the report connected to the store through the proxy');
    assert.equal(await within(collecting, 30_000), 'settled', 'the report ends on its own');
    assert.equal((await collecting).stores[0]!.rowsDown, null, 'no down figure made up');
    assert.ok(Date.now() - reportStarted < 25_000, `the report ended after ${Date.now() - reportStarted} ms`);
    proxy.swallowClientBytes(false);
    proxy.cut();
    proxy.slow({});
    assert.equal((await collectReport(reportConfig, new Date(), null, 'UTC')).stores[0]!.rowsDown, 0, 'read again once the link is back');
  });

  it('a halted pipeline\'s report fails instead of holding the halt', async () => {
    const proxy = await slowProxy();
    const sink = new PgSink({
      url: proxy.url(server.url(hqDb)),
      role: 'HQ',
      pipeline: { name: 'up:T1', storeCode: 'T1', direction: 'up', connector: 'pg-trigger' },
      positionKind: 'xid8',
      catalog: new Map(),
      targetOrder: [],
      statementTimeoutMs: STATEMENT_TIMEOUT_MS,
      logger: silentLogger(),
    });
    await failsWithin(proxy, 'branchline-up:T1', hqDb, () => sink.reportHalted({ code: 'BL-S007', message: 'test' }), 20_000);
    assert.deepEqual(await sink.reportHalted({ code: 'BL-S007', message: 'test' }), { position: null, loading: false }, 'HQ answers again');
    const [status] = await server.query<{ state: string; last_error_code: string }>(hqDb, `SELECT state, last_error_code FROM branchline.pipeline_status WHERE pipeline = 'up:T1'`);
    assert.deepEqual(status, { state: 'halted', last_error_code: 'BL-S007' }, 'and the halt is recorded');
  });

  it('agent start: the catalog read fails with BL-S010, which the start waits out like an unreachable database, and the next one reads', async () => {
    const proxy = await slowProxy();
    const url = proxy.url(server.url(hqDb));
    const tables = [{ schema: 'branchline', table: 'pipelines' }];
    const error = await failsWithin(proxy, 'branchline-catalog', hqDb, () => readCatalog(url, 'HQ', tables), 40_000);
    assert.equal((error as { code?: string }).code, 'BL-S010', `a hung link, named as such, not: ${(error as Error).message}`);
    assert.ok(isUnreachableError(error), 'waited out and retried (agent start, central configuration, initial loads), not a reason to stop');
    assert.ok(!isUnreachableError(new BranchlineError({ code: 'BL-C001', message: 'a broken file' })), 'a broken configuration is not waited out');
    const catalog = await readCatalog(url, 'HQ', tables);
    assert.ok(catalog.tables.has('branchline.pipelines'), 'the next read describes the table');
  });

  it('central configuration: a fetch fails with BL-S010, and the next one reads HQ', async () => {
    const proxy = await slowProxy();
    const hqUrl = proxy.url(server.url(hqDb));
    const error = await failsWithin(proxy, 'branchline-config', hqDb, () => fetchNewestVersion({ hqUrl, cacheDir }), 35_000);
    assert.equal((error as { code?: string }).code, 'BL-S010', `a hung link, named as such, not: ${(error as Error).message}`);
    assert.ok(isUnreachableError(error), 'the central agent waits it out (from its cache), not "cannot run here"');
    await assert.rejects(fetchNewestVersion({ hqUrl, cacheDir }), (e: { code?: string }) => e.code === 'BL-C010', 'HQ answers again: nothing published yet');
  });

  it('HTTP surface: a cross-store query and a settlement audit fail, and the next ones work', async () => {
    const proxy = await slowProxy();
    const reader = poolHqReader(proxy.url(server.url(hqDb)));
    try {
      const error = await failsWithin(proxy, 'branchline-queries', hqDb, () => reader.read((db) => db.query('SELECT 1')), 35_000);
      assert.equal((error as { code?: string }).code, 'BL-S010', `a hung link, named as such, not: ${(error as Error).message}`);
      const r = await reader.read((db) => db.query<{ n: number }>('SELECT 2 AS n'));
      assert.deepEqual(r.rows, [{ n: 2 }], 'the next query gets a fresh connection and its answer');
    } finally {
      await within(reader.close(), 5_000);
    }

    // The audit's own deadline answers the caller at once; what matters is that the stalled clients leave its pool (two at most).
    const auditProxy = await slowProxy();
    const audit = new AuditLog({ url: auditProxy.url(server.url(hqDb)), role: 'HQ', timeoutMs: STATEMENT_TIMEOUT_MS });
    const entry: AuditEntry = { caller: 'test', asked: 'store', store: 'T1', kind: 'receivable', ref: 'R1', amount: '1.00', status: 'released', originAmount: '1.00', reason: null, detail: '', durationMs: 1 };
    try {
      const both = [audit.record([entry]), audit.record([entry])];
      for (const p of both) p.catch(() => undefined);
      assert.ok((await swallowOnceConnected(auditProxy, admin, 'branchline-settlement-audit', hqDb, 2)) > 0, 'both of the pool\'s clients connected');
      const stalled = Date.now();
      for (const p of both) await assert.rejects(p, (e: { code?: string }) => e.code === 'BL-D001', 'no answer without a record');
      auditProxy.swallowClientBytes(false); // the link is back; the two requests it swallowed stay unanswered
      auditProxy.slow({});
      let recorded: string[] = [];
      while (recorded.length === 0 && Date.now() - stalled < 30_000) recorded = (await audit.record([entry]).catch(() => ({ ids: [] as string[] }))).ids;
      assert.equal(recorded.length, 1, 'a check is recorded again');
      assert.ok(Date.now() - stalled < 20_000, `recorded again ${Date.now() - stalled} ms after the stall`);
    } finally {
      // A pool waits for its checked-out clients to come back before it ends: bounded, so a failure above reads as itself.
      await within(audit.close(), 5_000);
    }
  });
});
