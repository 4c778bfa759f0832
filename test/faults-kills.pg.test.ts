import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AgentProcess } from './support/agent-process.js';
import { appliedCounts, assertDownExactlyOnce, assertExactlyOnce, createTwoWayWorld, faultSeed, killAtRandomMoments, seededRandom, settleTwoWay, startBothWriters } from './support/faults.js';
import { serversForTests } from './support/pg.js';

/**
 * The fault suite's crash case (`npm run test:faults`): the agent, a
 * separate process running both directions for two stores, SIGKILLed 50
 * times at seeded random moments while the stores sell and HQ changes
 * prices and products. Afterwards every table equals its source in both
 * directions, the daily totals are exact, no sale was inserted twice, and
 * each pipeline applied exactly the transactions its source committed.
 */

const KILLS = 50;

describe('faults: SIGKILL with both directions running', { timeout: 600_000 }, () => {
  const servers = serversForTests();

  it(`SIGKILL of the agent at ${KILLS} random moments while two stores and HQ write: every table equals its source, totals exact, nothing twice`, async () => {
    const random = seededRandom(faultSeed('SIGKILL moments'));
    const world = await createTwoWayWorld({
      hqServer: servers.hq,
      storeServer: servers.stores,
      stores: ['K001', 'K002'],
      extraConfig: 'batch:\n  max_delay_ms: 50\n  max_rows: 300\n  chunk_rows: 100\ndown:\n  poll_ms: 100',
    });
    const agent = new AgentProcess(world.configFile, path.join(world.dir, 'agent.log'));
    let writers: ReturnType<typeof startBothWriters> | null = null;
    try {
      agent.start();
      const baseline = await settleTwoWay(world);
      await agent.kill();
      writers = startBothWriters(world, random);
      const { moments, progress } = await killAtRandomMoments(agent, { kills: KILLS, random, fromStart: [200, 2500], applied: () => appliedCounts(world) });
      process.stdout.write(`# killed ${KILLS} times, after ${moments.join(', ')} ms; applied between kills: up ${progress.up}, down ${progress.down} times\n`);
      assert.equal(agent.starts, KILLS + 1, 'a start before each kill');
      await writers.stop();
      assert.ok(writers.hq.txns > 50, `HQ wrote only ${writers.hq.txns} transactions`);
      agent.start();
      await assertExactlyOnce(world, writers.stores.txns, 1, 120_000);
      await assertDownExactlyOnce(world, baseline, writers.hq.txns, 120_000);
    } finally {
      await writers?.stop();
      await agent.dispose();
      await world.dispose();
    }
  });
});
