import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Logger } from '../src/core/logger.js';
import { silentLogger } from '../src/core/logger.js';
import { ClockOffset } from '../src/pipeline/clock-offset.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { TcpProxy } from './support/tcp-proxy.js';

/**
 * A pipeline session starts by reading both databases' clocks (lag in the
 * databases' own time). Found by the network fault suite: a link that
 * stalled, without a reset, between the clock reader's connect and its
 * queries held a store's up pipeline at its start for good. The reading
 * is bounded like every other connection of a session: it gives up, the
 * session goes on with the last offset, and it is tried again later.
 */
describe('clock offset reading over a stalled link', { timeout: 90_000 }, () => {
  let server: TestServer;
  let proxy: TcpProxy;
  let admin: pg.Client;

  before(async () => {
    server = await startTestServer('clock-offset');
    const port = Number(new URL(server.url('postgres')).port);
    proxy = await new TcpProxy(port).start();
    admin = new pg.Client(server.url('postgres'));
    await admin.connect();
  });
  after(async () => {
    await admin?.end();
    await proxy?.close();
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
    let swallowedAt = 0;
    for (let i = 0; i < 250 && swallowedAt === 0; i++) {
      const r = await admin.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'branchline-clock' AND state IS NOT NULL`);
      if (r.rowCount) {
        proxy.swallowClientBytes(true); // from now on nothing the reader sends reaches the server, and nothing is reset
        swallowedAt = Date.now();
      } else await new Promise((res) => setTimeout(res, 20));
    }
    assert.ok(swallowedAt > 0, 'the clock reader connected through the proxy');
    const outcome = await Promise.race([reading.then(() => 'settled'), new Promise((res) => setTimeout(() => res('hung'), 40_000))]);
    assert.equal(outcome, 'settled', 'the reading ends on its own');
    assert.ok(Date.now() - started < 30_000, `the reading ended after ${Date.now() - started} ms`);
    assert.deepEqual(notRead, ['database clock not read'], 'the failure is logged (debug) and not thrown');
    assert.equal(clock.offsetMs, 0, 'no offset made up');
    proxy.swallowClientBytes(false);
  });
});
