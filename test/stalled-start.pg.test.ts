import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Logger } from '../src/core/logger.js';
import { silentLogger } from '../src/core/logger.js';
import { ClockOffset } from '../src/pipeline/clock-offset.js';
import { PgLogicalSource } from '../connectors/pg-logical/pg-logical-source.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { swallowOnceConnected as swallowAt, within } from './support/stall.js';
import { TcpProxy } from './support/tcp-proxy.js';

/**
 * What a pipeline session does before it streams, over a link that stalls
 * (no reset) once a connection opened. Found by the network fault suite: a
 * store's up pipeline waited at its session's start for good. Each step is
 * bounded like the rest of a session:
 * - the databases' clocks (lag in their own time): the reading gives up,
 *   the session goes on with the last offset, and it is tried again later;
 * - pg-logical's check of the slot: the session fails (and is retried).
 */
describe('a session start over a stalled link', { timeout: 120_000 }, () => {
  let server: TestServer;
  let proxy: TcpProxy;
  let admin: pg.Client;

  before(async () => {
    server = await startTestServer('clock-offset');
    const port = Number(new URL(server.url('postgres')).port);
    proxy = await new TcpProxy(port).start();
    admin = new pg.Client(server.url('postgres'));
    await admin.connect();
    await admin.query(`CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION stall_pub FOR TABLE t`);
    await admin.query(`SELECT pg_create_logical_replication_slot('stall_slot', 'pgoutput')`);
  });

  const swallowOnceConnected = (application: string) => swallowAt(proxy, admin, application);
  after(async () => {
    await admin?.query(`SELECT pg_drop_replication_slot('stall_slot')`).catch(() => undefined);
    await admin?.end();
    await proxy?.close();
    await server?.dispose();
  });

  it('gives up within its deadline when the link stops answering after the connection opened', async () => {
    const notRead: string[] = [];
    const logger = silentLogger();
    logger.debug = ((message: string) => {
      notRead.push(message);
      return logger;
    }) as Logger['debug'];
    const clock = new ClockOffset({ url: proxy.url(server.url('postgres')), role: 'store T1', logger });
    // Slow enough that the queries are still to come once the session shows at the server.
    proxy.slow({ latencyMs: 150 });
    const started = Date.now();
    const reading = clock.refresh();
    assert.ok((await swallowOnceConnected('branchline-clock')) > 0, 'the clock reader connected through the proxy');
    const outcome = await within(reading, 40_000);
    assert.equal(outcome, 'settled', 'the reading ends on its own');
    assert.ok(Date.now() - started < 30_000, `the reading ended after ${Date.now() - started} ms`);
    assert.deepEqual(notRead, ['database clock not read'], 'the failure is logged (debug) and not thrown');
    assert.equal(clock.offsetMs, 0, 'no offset made up');
    proxy.swallowClientBytes(false);
    proxy.cut();
  });

  it('pg-logical: the slot check fails within its deadline, and the session with it', async () => {
    const source = new PgLogicalSource({ url: proxy.url(server.url('postgres')), role: 'store T1', slot: 'stall_slot', publication: 'stall_pub', logger: silentLogger() });
    proxy.slow({ latencyMs: 150 });
    const started = Date.now();
    const opening = source.open(null);
    opening.catch(() => undefined);
    assert.ok((await swallowOnceConnected('branchline-check')) > 0, 'the slot check connected through the proxy');
    assert.equal(await within(opening, 45_000), 'settled', 'the open ends on its own');
    await assert.rejects(opening, (e: Error & { code?: string }) => e.code === 'BL-S010', 'a hung link, named as such');
    assert.ok(Date.now() - started < 40_000, `the open ended after ${Date.now() - started} ms`);
    proxy.swallowClientBytes(false);
    proxy.cut();
  });
});
