import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Lsn } from '../src/core/lsn.js';
import { AgentProcess } from './support/agent-process.js';
import { assertExactlyOnce, AUDIT_SQL, faultSeed, killAtRandomMoments, seededRandom, startWriters } from './support/faults.js';
import { cannotControl, serversForTests } from './support/pg.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { createWorld, eventually, TEST_UP_CONNECTOR } from './support/world.js';

/**
 * Exactly once through crashes and outages, with the agent as a separate
 * process: HQ must end up equal to every store, every sale inserted at HQ
 * exactly once (an audit trigger counts inserts), and the pipeline's
 * transaction counter equal to the number of store transactions.
 */

describe('faults: exactly once through crashes and outages', { timeout: 600_000 }, () => {
  const servers = serversForTests();

  it('SIGKILL of the agent at random moments, 22 times, while two stores write', async () => {
    const world = await createWorld({ hqServer: servers.hq, storeServer: servers.stores, stores: ['S001', 'S002'], extraConfig: 'batch:\n  max_delay_ms: 50\n  max_rows: 300\n  chunk_rows: 100' });
    await world.hqQuery(AUDIT_SQL);
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    const writers = startWriters(world);
    try {
      const { moments, progress } = await killAtRandomMoments(agent, {
        kills: 22,
        random: seededRandom(faultSeed('SIGKILL moments, up only')),
        fromStart: [300, 3000],
        applied: async () => ({ up: Number((await world.hqQuery<{ n: string }>(`SELECT coalesce(sum(txns_applied), 0)::text AS n FROM branchline.pipelines`))[0]!.n) }),
      });
      process.stdout.write(`# killed 22 times, after ${moments.join(', ')} ms; applied between kills ${progress.up} times\n`);
      await writers.stop();
      assert.equal(agent.starts, 22, 'a start before each kill');
      agent.start();
      await assertExactlyOnce(world, writers.txns);
    } finally {
      await writers.stop();
      await agent.dispose();
      await world.dispose();
    }
  });

  const slotOnly =
    TEST_UP_CONNECTOR === 'pg-trigger'
      ? 'pg-logical only: a pg-trigger store has no slot to acknowledge; its reader records its position on the connection it reads with, so it cannot lose one while reads go on (restarts are the SIGKILL case)'
      : false;
  it('acknowledgements lost on the way to the store: it redelivers what HQ holds, and nothing is applied twice', { skip: slotOnly }, async () => {
    const storeProxy = await new TcpProxy(Number(new URL(servers.stores.url('postgres')).port)).start();
    const world = await createWorld({
      hqServer: servers.hq,
      storeServer: servers.stores,
      stores: ['S051'],
      agentUrl: (role, url) => (role === 'hq' ? url : storeProxy.url(url)),
      extraConfig: 'batch:\n  max_delay_ms: 50\n  max_rows: 200',
    });
    await world.hqQuery(AUDIT_SQL);
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    const writers = startWriters(world);
    const store = world.stores[0]!;
    const slotPosition = async () =>
      (await store.server.query<{ lsn: string }>(store.db, `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'branchline_s051'`))[0]!.lsn;
    try {
      agent.start();
      await eventually('first rows at HQ', async () => (await world.hqQuery(`SELECT 1 FROM store_sale LIMIT 1`)).length > 0);
      storeProxy.swallowClientBytes(true);
      const before = await world.hqQuery<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines`);
      await eventually(
        'HQ to apply more while the store hears no acknowledgement',
        async () => Number((await world.hqQuery<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines`))[0]!.n) > Number(before[0]!.n) + 50,
      );
      await agent.kill();
      storeProxy.cut();
      storeProxy.swallowClientBytes(false);
      const hqPosition = (await world.hqQuery<{ position: string }>(`SELECT position FROM branchline.pipelines`))[0]!.position;
      const slot = await slotPosition();
      assert.ok(Lsn.parse(slot).isBefore(Lsn.parse(hqPosition)), `the slot (${slot}) must be behind HQ (${hqPosition}) for this test to mean anything`);
      agent.start();
      await new Promise((r) => setTimeout(r, 1500));
      await writers.stop();
      await assertExactlyOnce(world, writers.txns);
    } finally {
      await writers.stop();
      await agent.dispose();
      await world.dispose();
      await storeProxy.close();
    }
  });

  it('HQ stopped while stores write, then started: everything arrives once', async (t) => {
    const why = cannotControl(servers.hq);
    if (why) return t.skip(why);
    const world = await createWorld({ hqServer: servers.hq, storeServer: servers.stores, stores: ['S101'] });
    await world.hqQuery(AUDIT_SQL);
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    const writers = startWriters(world);
    try {
      agent.start();
      await eventually('first rows at HQ', async () => (await world.hqQuery(`SELECT 1 FROM store_sale LIMIT 1`)).length > 0);
      await servers.hq.stop();
      const writtenWhileDown = writers.txns.get('S101')!;
      await new Promise((r) => setTimeout(r, 4000));
      assert.ok(writers.txns.get('S101')! > writtenWhileDown, 'the store kept selling while HQ was down');
      assert.ok(agent.running, 'the agent survives HQ going away');
      await servers.hq.restart();
      await new Promise((r) => setTimeout(r, 1500));
      await writers.stop();
      await assertExactlyOnce(world, writers.txns);
      assert.match(await agent.logText(), /BL-D001/, 'the outage was logged with its code');
    } finally {
      await writers.stop();
      await agent.dispose();
      await world.dispose();
    }
  });

  it('store stopped and started while the agent runs: it reconnects and catches up', async (t) => {
    const why = cannotControl(servers.stores);
    if (why) return t.skip(why);
    const world = await createWorld({ hqServer: servers.hq, storeServer: servers.stores, stores: ['S201'] });
    await world.hqQuery(AUDIT_SQL);
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    let writers = startWriters(world);
    const total = new Map([['S201', 0]]);
    try {
      agent.start();
      await eventually('first rows at HQ', async () => (await world.hqQuery(`SELECT 1 FROM store_sale LIMIT 1`)).length > 0);
      await writers.stop();
      total.set('S201', writers.txns.get('S201')!);
      await servers.stores.stop();
      await new Promise((r) => setTimeout(r, 2500));
      assert.ok(agent.running, 'the agent survives the store going away');
      await servers.stores.restart();
      writers = startWriters(world);
      await new Promise((r) => setTimeout(r, 2000));
      await writers.stop();
      total.set('S201', total.get('S201')! + writers.txns.get('S201')!);
      await assertExactlyOnce(world, total);
    } finally {
      await writers.stop();
      await agent.dispose();
      await world.dispose();
    }
  });

  it('TCP connections to HQ and the store cut mid-batch, 8 times: nothing lost or doubled', async () => {
    const hqProxy = await new TcpProxy(Number(new URL(servers.hq.url('postgres')).port)).start();
    const storeProxy = await new TcpProxy(Number(new URL(servers.stores.url('postgres')).port)).start();
    const world = await createWorld({
      hqServer: servers.hq,
      storeServer: servers.stores,
      stores: ['S301', 'S302'],
      agentUrl: (role, url) => (role === 'hq' ? hqProxy.url(url) : storeProxy.url(url)),
      extraConfig: 'batch:\n  max_delay_ms: 300\n  max_rows: 2000\n  chunk_rows: 50',
    });
    await world.hqQuery(AUDIT_SQL);
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    const writers = startWriters(world);
    try {
      agent.start();
      await eventually('first rows at HQ', async () => (await world.hqQuery(`SELECT 1 FROM store_sale LIMIT 1`)).length > 0);
      let cut = 0;
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 500 + Math.random() * 1000));
        cut += i % 2 === 0 ? hqProxy.cut() : storeProxy.cut();
      }
      assert.ok(cut >= 8, `only ${cut} connections were open to cut`);
      await writers.stop();
      assert.ok(agent.running, 'the agent survives connection cuts');
      await assertExactlyOnce(world, writers.txns);
      assert.ok(hqProxy.connections > 2 && storeProxy.connections > 2, 'the agent reconnected through the proxies');
    } finally {
      await writers.stop();
      await agent.dispose();
      await world.dispose();
      await hqProxy.close();
      await storeProxy.close();
    }
  });
});
