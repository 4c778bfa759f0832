import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { balance, fairShare, storesToHandBack } from '../src/lease/balance.js';

/**
 * The balance rule of agents sharing stores by lease, without a database:
 * the rule itself, then rounds of several agents over one lease table (as
 * LeaseManager runs it: renew, count the live, hand back over the share,
 * take free leases up to it) until nothing moves.
 */

describe('lease balance rule', () => {
  test('the fair share is ceil(stores / live agents), never 0 for a store to serve', () => {
    assert.equal(fairShare(6, 3), 2);
    assert.equal(fairShare(7, 3), 3);
    assert.equal(fairShare(6, 4), 2);
    assert.equal(fairShare(1, 5), 1);
    assert.equal(fairShare(6, 0), 6, 'an agent that does not see itself counts as one');
    assert.equal(fairShare(0, 3), 0);
  });

  test('under the share: take the difference; over it: hand back the extras; at it: nothing', () => {
    assert.deepEqual(balance({ stores: 6, liveAgents: 3, held: 0 }), { take: 2, handBack: 0 });
    assert.deepEqual(balance({ stores: 6, liveAgents: 3, held: 2 }), { take: 0, handBack: 0 });
    assert.deepEqual(balance({ stores: 6, liveAgents: 2, held: 6 }), { take: 0, handBack: 3 });
    assert.deepEqual(balance({ stores: 6, liveAgents: 2, held: 1 }), { take: 2, handBack: 0 });
  });

  test('the stores handed back are the last in code order, whatever order they were taken in', () => {
    assert.deepEqual(storesToHandBack(['S3', 'S1', 'S6', 'S2'], 2), ['S6', 'S3']);
    assert.deepEqual(storesToHandBack(['S1'], 0), []);
  });

  /** One round of every live agent, in turn, over one lease table (store -> holder). */
  function rounds(table: Map<string, string | null>, agents: readonly string[], times: number): void {
    for (let i = 0; i < times; i++)
      for (const a of agents) {
        const held = [...table].filter(([, h]) => h === a).map(([s]) => s);
        const plan = balance({ stores: table.size, liveAgents: agents.length, held: held.length });
        for (const s of storesToHandBack(held, plan.handBack)) table.set(s, null);
        const free = [...table].filter(([, h]) => h === null || !agents.includes(h)).map(([s]) => s).sort();
        for (const s of free.slice(0, plan.take)) table.set(s, a);
      }
  }

  function assertSplit(table: Map<string, string | null>, agents: readonly string[]): void {
    const share = fairShare(table.size, agents.length);
    for (const [store, holder] of table) assert.ok(holder !== null && agents.includes(holder), `${store} is held by ${holder}, not by a live agent`);
    for (const a of agents) {
      const n = [...table.values()].filter((h) => h === a).length;
      assert.ok(n <= share && n >= 1, `${a} holds ${n} (share ${share})`);
    }
  }

  test('agents joining one by one end with every store held once and each at most its share; a dead agent\'s stores go to the others', () => {
    for (const stores of [6, 7, 10, 3]) {
      const table = new Map(Array.from({ length: stores }, (_, i) => [`S${String(i + 1).padStart(2, '0')}`, null as string | null]));
      rounds(table, ['A'], 1);
      assert.equal([...table.values()].filter((h) => h === 'A').length, stores, 'one agent alone takes every store');
      rounds(table, ['A', 'B'], 2);
      assertSplit(table, ['A', 'B']);
      rounds(table, ['A', 'B', 'C'], 2);
      assertSplit(table, ['A', 'B', 'C']);
      const before = new Map(table);
      rounds(table, ['A', 'B', 'C'], 3);
      assert.deepEqual(table, before, 'balanced: further rounds move nothing');
      // B dies: its leases expire (here: its holder is no longer live) and A and C take them.
      rounds(table, ['A', 'C'], 2);
      assertSplit(table, ['A', 'C']);
    }
  });
});
