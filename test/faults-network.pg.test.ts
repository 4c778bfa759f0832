import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AgentProcess } from './support/agent-process.js';
import {
  appliedCounts,
  assertDownExactlyOnce,
  assertExactlyOnce,
  bothMoveOn,
  createTwoWayWorld,
  faultSeed,
  seededRandom,
  settleTwoWay,
  startBothWriters,
} from './support/faults.js';
import { serversForTests, type TestServer } from './support/pg.js';
import { TcpProxy } from './support/tcp-proxy.js';
import type { World } from './support/world.js';

/**
 * The fault suite's network case: a TCP proxy between the agent and HQ,
 * and one between the agent and each store, with both directions running
 * and both sides writing. The links are cut (reset), stalled (packets
 * swallowed, no reset: the agent must notice by its own deadlines and
 * reconnect) and slowed (latency and bandwidth); after each, both
 * directions must apply again within a bound, and at the end nothing is
 * lost or applied twice.
 *
 * Deadlines here: apply.statement_timeout_ms 5 s (a statement at a target
 * or a change-log read with no answer 15 s later drops its connection,
 * BL-S010), source.silence_timeout_ms 5 s (a replication stream silent
 * that long, BL-S005).
 */

/** Longer than the longest read deadline (15 s): the agent gives up on a connection while the link still swallows its close. */
const STALL_S = 20;
/** After a stall ends: the longest deadline (15 s), a connect timeout (10 s), the retry back-off, and the busy machine. */
const RECOVER_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('faults: cut, stalled and slow links between the agent and the databases', { timeout: 600_000 }, () => {
  const servers = serversForTests();

  it(`cuts, ${STALL_S} s stalls of HQ and of the stores, and slow links: no hang, both directions recover within ${RECOVER_MS / 1000} s, nothing lost or doubled`, async () => {
    const random = seededRandom(faultSeed('network faults'));
    const port = (s: TestServer) => Number(new URL(s.url('postgres')).port);
    const hqProxy = await new TcpProxy(port(servers.hq)).start();
    const storeProxies = new Map<string, TcpProxy>();
    for (const code of ['N001', 'N002']) storeProxies.set(code, await new TcpProxy(port(servers.stores)).start());
    const stores = [...storeProxies.values()];
    let world: World | null = null;
    let agent: AgentProcess | null = null;
    let writers: ReturnType<typeof startBothWriters> | null = null;
    try {
      world = await createTwoWayWorld({
        hqServer: servers.hq,
        storeServer: servers.stores,
        stores: ['N001', 'N002'],
        agentUrl: (role, url) => (role === 'hq' ? hqProxy : storeProxies.get(role)!).url(url),
        extraConfig: 'batch:\n  max_delay_ms: 200\n  max_rows: 2000\n  chunk_rows: 50\napply:\n  statement_timeout_ms: 5000\ndown:\n  poll_ms: 200',
      });
      const w = world;
      agent = new AgentProcess(w.configFile, path.join(w.dir, 'agent.log'));
      agent.start();
      const baseline = await settleTwoWay(w);
      // A steady rate (some 50 transactions a second at each store and at HQ): what a slow link falls behind on must be caught up within the bound.
      writers = startBothWriters(w, random, 20);
      let last = await bothMoveOn(w, await appliedCounts(w), 'writers started', RECOVER_MS);

      // Cuts (a reset), at random moments, each link in turn.
      let cut = 0;
      for (let i = 0; i < 6; i++) {
        await sleep(300 + random() * 1200);
        cut += i % 2 === 0 ? hqProxy.cut() : stores[(i >> 1) % stores.length]!.cut();
      }
      assert.ok(cut >= 6, `only ${cut} connections were open to cut`);
      last = await bothMoveOn(w, last, 'after the cuts', RECOVER_MS);

      // HQ's link stalls: nothing arrives either way, nothing is reset, new connections hang too.
      const hqConnections = hqProxy.connections;
      hqProxy.stall(true);
      await sleep(STALL_S * 1000);
      assert.ok(agent.running, 'the agent survives a stalled HQ link');
      hqProxy.stall(false);
      const stalledAt = Date.now();
      last = await bothMoveOn(w, await appliedCounts(w), 'after HQ\'s link stalled', RECOVER_MS);
      process.stdout.write(`# HQ link stalled ${STALL_S} s: both directions applying again ${Date.now() - stalledAt} ms after it ended\n`);
      assert.ok(hqProxy.connections > hqConnections, 'the agent opened new connections to HQ');

      // The stores' links stall.
      for (const p of stores) p.stall(true);
      await sleep(STALL_S * 1000);
      assert.ok(agent.running, 'the agent survives stalled store links');
      for (const p of stores) p.stall(false);
      const storesStalledAt = Date.now();
      last = await bothMoveOn(w, await appliedCounts(w), 'after the stores\' links stalled', RECOVER_MS);
      process.stdout.write(`# store links stalled ${STALL_S} s: both directions applying again ${Date.now() - storesStalledAt} ms after it ended\n`);

      // Slow links: 150 ms each way and 32 kB/s, HQ's and the stores'; both directions keep applying.
      for (const p of [hqProxy, ...stores]) p.slow({ latencyMs: 150, bytesPerSecond: 32 * 1024 });
      last = await bothMoveOn(w, last, 'over slow links', RECOVER_MS);
      last = await bothMoveOn(w, last, 'over slow links, again', RECOVER_MS);
      for (const p of [hqProxy, ...stores]) p.slow({});

      await writers.stop();
      assert.equal(agent.starts, 1);
      assert.ok(agent.running, 'one agent process rode out every fault');
      await assertExactlyOnce(w, writers.stores.txns, 1, 120_000);
      await assertDownExactlyOnce(w, baseline, writers.hq.txns, 120_000);
      const log = await agent.logText();
      assert.match(log, /"code":"BL-S010"/, 'a hung connection was noticed by its deadline (BL-S010)');
      assert.match(log, /held by this agent's former connection, which hung/, 'the lock a hung session kept was taken over');
    } catch (e) {
      // What the agent did last, for the failure's reader (its log goes with the test's folder).
      const lines = ((await agent?.logText()) ?? '').trim().split('\n');
      process.stdout.write(`# the agent's last ${Math.min(40, lines.length)} log lines:\n${lines.slice(-40).join('\n')}\n`);
      throw e;
    } finally {
      await writers?.stop();
      await agent?.dispose();
      await world?.dispose();
      for (const p of [hqProxy, ...stores]) await p.close();
    }
  });
});
