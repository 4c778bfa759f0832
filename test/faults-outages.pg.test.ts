import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AgentProcess } from './support/agent-process.js';
import { assertDownExactlyOnce, assertExactlyOnce, createTwoWayWorld, faultSeed, seededRandom, settleTwoWay, startBothWriters } from './support/faults.js';
import { cannotControl, serversForTests } from './support/pg.js';

/**
 * The fault suite's outage case, one timeline with both directions
 * running and both sides writing whenever they are up:
 *
 *   0 s   HQ stops; the stores sell on                 (HQ down 60 s while stores write)
 *   60 s  the store server stops too                    (both down, 20 s)
 *   80 s  HQ starts; HQ changes prices and products     (a store down while HQ writes, 20 s)
 *   100 s the store server starts
 *
 * The agent keeps running and retrying, logs what is down in a sentence
 * with its code, catches up, and nothing is lost or applied twice.
 */

const HQ_ALONE_S = 60;
const BOTH_S = 20;
const STORES_ALONE_S = 20;

const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

describe('faults: HQ and store servers down while the other side writes', { timeout: 600_000 }, () => {
  const servers = serversForTests();

  it(`HQ down ${HQ_ALONE_S} s while stores write, then both ${BOTH_S} s, then the stores ${STORES_ALONE_S} s while HQ writes: the agent rides it out and catches up exactly`, async (t) => {
    const why = cannotControl(servers.hq) || cannotControl(servers.stores);
    if (why) return t.skip(why);
    const random = seededRandom(faultSeed('outage writers'));
    const world = await createTwoWayWorld({ hqServer: servers.hq, storeServer: servers.stores, stores: ['O001', 'O002'], extraConfig: 'down:\n  poll_ms: 200' });
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    let writers: ReturnType<typeof startBothWriters> | null = null;
    const storeTxns = () => [...writers!.stores.txns.values()].reduce((a, b) => a + b, 0);
    try {
      agent.start();
      const baseline = await settleTwoWay(world);
      writers = startBothWriters(world, random);
      await sleep(2);

      await servers.hq.stop();
      const soldBefore = storeTxns();
      const hqBefore = writers.hq.txns;
      await sleep(HQ_ALONE_S);
      assert.ok(storeTxns() > soldBefore + 100, `the stores kept selling while HQ was down (${storeTxns() - soldBefore} transactions)`);
      assert.equal(writers.hq.txns, hqBefore, 'nothing committed at a stopped HQ');
      assert.ok(agent.running, 'the agent survives HQ going away');

      await servers.stores.stop();
      const soldWhileBoth = storeTxns();
      await sleep(BOTH_S);
      assert.equal(storeTxns(), soldWhileBoth, 'nothing committed at stopped stores');
      assert.ok(agent.running, 'the agent survives both sides going away');

      await servers.hq.restart();
      const hqWhileStoresDown = writers.hq.txns;
      await sleep(STORES_ALONE_S);
      assert.ok(writers.hq.txns > hqWhileStoresDown + 20, `HQ kept writing while the stores were down (${writers.hq.txns - hqWhileStoresDown} transactions)`);
      assert.ok(agent.running);

      await servers.stores.restart();
      await sleep(3);
      await writers.stop();
      await assertExactlyOnce(world, writers.stores.txns, 1, 120_000);
      await assertDownExactlyOnce(world, baseline, writers.hq.txns, 120_000);
      const log = await agent.logText();
      assert.match(log, /"code":"BL-D001"[^\n]*cannot reach the HQ database/, 'HQ away: logged with its code and a sentence');
      assert.match(log, /"code":"BL-D001"[^\n]*cannot reach the store O00\d database/, 'the stores away: logged with their code and a sentence');
      assert.equal(agent.starts, 1, 'one agent process all along');
    } finally {
      await writers?.stop();
      await agent.dispose();
      await world.dispose();
    }
  });
});
