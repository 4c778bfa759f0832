import assert from 'node:assert/strict';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { METRIC } from '../src/metrics/names.js';
import { runCli } from './support/agent-process.js';
import { startInProcess, type InProcess } from './support/in-process.js';
import { parsePromText, sampleValue } from './support/prom-text.js';
import { eventually, TEST_UP_CONNECTOR } from './support/world.js';

/**
 * `branchline pause` / `resume` (docs/operations.md, "Pausing a store"):
 * a running agent stops a paused pipeline within moments and leaves it
 * stopped, the store (or HQ) keeps what it writes meanwhile, and on resume
 * everything arrives, each row applied once. A pipeline paused before the
 * agent starts never starts. The CLI says what it did and refuses what it
 * cannot do.
 */

const HQ_SQL = `
  CREATE TABLE store_sale (store_code text NOT NULL, id int NOT NULL, amount numeric(12,2) NOT NULL, PRIMARY KEY (store_code, id));
  CREATE TABLE product (id int PRIMARY KEY, price numeric(12,2) NOT NULL);
  INSERT INTO product SELECT g, g FROM generate_series(1, 20) g;
  -- Every insert at HQ, to prove each sale was applied once.
  CREATE TABLE sale_audit (store_code text NOT NULL, id int NOT NULL);
  CREATE FUNCTION sale_audit() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO sale_audit VALUES (NEW.store_code, NEW.id); RETURN NEW; END $$;
  CREATE TRIGGER sale_audit AFTER INSERT ON store_sale FOR EACH ROW EXECUTE FUNCTION sale_audit();`;

const STORE_SQL = `
  CREATE TABLE sale (id int PRIMARY KEY, amount numeric(12,2) NOT NULL);
  CREATE TABLE product (id int PRIMARY KEY, price numeric(12,2) NOT NULL);`;

const MAPPINGS = {
  'sale.yml': `source: sale
target: store_sale
key: [store_code, id]
columns:
  store_code: store.code
  id: id
  amount: amount
`,
  'product-down.yml': `direction: down
source: product
target: product
columns:
  id: id
  price: price
`,
};

describe('pause and resume', { timeout: 240_000 }, () => {
  let env: InProcess;
  const nextId = new Map<string, number>([
    ['P1', 1],
    ['P2', 1],
  ]);
  const cli = (...args: string[]) => runCli([...args, '--config', env.world.configFile]);
  const storeOf = (code: string) => env.world.stores.find((s) => s.code === code)!;
  const sell = async (code: string, n: number) => {
    const from = nextId.get(code)!;
    nextId.set(code, from + n);
    // One transaction per sale, as a till writes them.
    for (let id = from; id < from + n; id++) await storeOf(code).pool.query('INSERT INTO sale VALUES ($1, $2)', [id, id % 97]);
  };
  const atHq = async (code: string) => Number((await env.world.hqQuery<{ n: string }>('SELECT count(*) AS n FROM store_sale WHERE store_code = $1', [code]))[0]!.n);
  const price = async (code: string, id: number) =>
    (await storeOf(code).pool.query<{ price: string }>('SELECT price FROM product WHERE id = $1', [id])).rows[0]?.price ?? null;
  const state = async (store: string, direction: 'up' | 'down') => {
    const samples = parsePromText(await env.agent.metrics.registry.metrics());
    const on = ['none', 'starting', 'streaming', 'backoff', 'halted', 'stopped', 'paused'].filter((s) => sampleValue(samples, METRIC.pipelineState, { store, direction, state: s }) === 1);
    assert.equal(on.length, 1, `exactly one state of ${direction}:${store} is 1: ${on.join(', ')}`);
    return on[0];
  };
  const slotActive = async (code: string) => {
    const s = storeOf(code);
    const r = await s.pool.query<{ active: boolean }>(`SELECT active FROM pg_replication_slots WHERE database = current_database()`);
    return r.rows[0]?.active ?? null;
  };

  before(async () => {
    env = await startInProcess({ name: 'pause', stores: ['P1', 'P2'], hqSql: HQ_SQL, storeSql: STORE_SQL, mappings: MAPPINGS });
  });
  after(async () => {
    await env?.dispose();
  });

  it('stops a paused up pipeline, keeps its store\'s changes, and applies them once on resume', async () => {
    await sell('P1', 20);
    await sell('P2', 20);
    await eventually('the first sales at HQ', async () => (await atHq('P1')) === 20 && (await atHq('P2')) === 20);

    const paused = await cli('pause', '--store', 'P1', '--direction', 'up', '--reason', 'stock count', '--by', 'ana@hq');
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /^paused up:P1: a running agent stops it within seconds/m);
    assert.match(paused.stdout, /WAL KEPT/);
    await eventually('up:P1 paused', async () => env.agent.snapshot().get('P1')?.state === 'paused', 10_000);
    assert.equal(await state('P1', 'up'), 'paused');
    assert.equal(await state('P2', 'up'), 'streaming');
    assert.equal(await state('P1', 'down'), 'streaming', 'only the direction named is paused');
    if (TEST_UP_CONNECTOR === 'pg-logical') await eventually("P1's slot released", async () => (await slotActive('P1')) === false, 10_000);

    await sell('P1', 30);
    await sell('P2', 30);
    await eventually("P2's new sales at HQ", async () => (await atHq('P2')) === 50);
    // P2 caught up after P1's sales were committed: had P1 been running, they would be there too.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(await atHq('P1'), 20, 'nothing of a paused store reaches HQ');
    if (TEST_UP_CONNECTOR === 'pg-logical') assert.equal(await slotActive('P1'), false, 'the slot stays released');

    const status = await cli('status', '--json');
    assert.equal(status.code, 0, status.stderr);
    const rows = JSON.parse(status.stdout) as { store: string; state: string; paused: { up: { by: string; reason: string } | null; down: unknown } }[];
    const p1 = rows.find((r) => r.store === 'P1')!;
    assert.equal(p1.state, 'paused');
    assert.deepEqual({ by: p1.paused.up?.by, reason: p1.paused.up?.reason, down: p1.paused.down }, { by: 'ana@hq', reason: 'stock count', down: null });
    assert.equal(rows.find((r) => r.store === 'P2')!.paused.up, null);
    const text = await cli('status');
    assert.match(text.stdout, /^P1: up paused since \S+Z by ana@hq: stock count; `branchline resume --store P1` starts it again\.$/m);

    const again = await cli('pause', '--store', 'P1', '--direction', 'up', '--by', 'someone-else');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^up:P1 was already paused, since \S+Z by ana@hq: stock count\.$/m);

    const resumed = await cli('resume', '--store', 'P1', '--direction', 'up');
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /^resumed up:P1: a running agent starts it within seconds/m);
    await eventually("P1's sales of the pause at HQ", async () => (await atHq('P1')) === 50, 20_000);
    assert.equal(env.agent.snapshot().get('P1')?.state, 'streaming');
    const twice = await env.world.hqQuery<{ n: string }>('SELECT count(*) AS n FROM (SELECT 1 FROM sale_audit GROUP BY store_code, id HAVING count(*) > 1) d');
    assert.equal(Number(twice[0]!.n), 0, 'no sale inserted twice');
    assert.equal(Number((await env.world.hqQuery<{ n: string }>('SELECT count(*) AS n FROM sale_audit'))[0]!.n), 100);

    const idle = await cli('resume', '--store', 'P1', '--direction', 'up');
    assert.match(idle.stdout, /^up:P1 was not paused\.$/m);
  });

  it('leaves a pipeline paused before the agent starts stopped, and starts it on resume', async () => {
    await env.stopAgent();
    const paused = await cli('pause', '--store', 'P2', '--direction', 'down');
    assert.equal(paused.code, 0, paused.stderr);
    await env.startAgent({ waitDown: false });
    await eventually('down:P1 streaming', async () => env.agent.downSnapshot().get('P1')?.state === 'streaming');
    await env.world.hqQuery('UPDATE product SET price = 77 WHERE id = 7');
    await eventually('the new price at P1', async () => (await price('P1', 7)) === '77.00');
    await eventually('down:P2 reported paused', async () => (await state('P2', 'down')) === 'paused', 5_000);
    assert.equal(env.agent.downSnapshot().has('P2'), false, 'a pipeline paused at start never starts');
    // /health's list still names it.
    assert.equal(env.agent.pipelineStates()['down:P2'], 'paused');
    assert.equal(env.agent.pipelineStates()['down:P1'], 'streaming');
    assert.notEqual(await price('P2', 7), '77.00', 'nothing reaches a store whose down pipeline is paused');

    const resumed = await cli('resume', '--store', 'P2');
    assert.equal(resumed.code, 0, resumed.stderr);
    // Both directions named: only the paused one was resumed, the other is said to be not paused.
    assert.match(resumed.stdout, /^resumed down:P2: /m);
    assert.match(resumed.stdout, /^up:P2 was not paused\.$/m);
    await eventually('the new price at P2', async () => (await price('P2', 7)) === '77.00', 20_000);
    assert.equal(await state('P2', 'down'), 'streaming');
    assert.equal(env.agent.pipelineStates()['down:P2'], 'streaming');
  });

  it('is obeyed by the agent holding the store\'s lease', async () => {
    await env.stopAgent();
    await appendFile(env.world.configFile, '\nlease:\n  agent_id: pause-lease\n  ttl_s: 6\n  renew_s: 2\n');
    await env.startAgent();
    const holders = await env.world.hqQuery<{ store_code: string; holder: string }>('SELECT store_code, holder FROM branchline.store_leases ORDER BY store_code');
    assert.deepEqual(holders.map((h) => `${h.store_code}:${h.holder}`), ['P1:pause-lease', 'P2:pause-lease']);
    const paused = await cli('pause', '--store', 'P1', '--direction', 'up');
    assert.equal(paused.code, 0, paused.stderr);
    await eventually('up:P1 paused under its lease', async () => (await state('P1', 'up')) === 'paused', 10_000);
    const before = await atHq('P1');
    await sell('P1', 10);
    await sell('P2', 10);
    await eventually("P2's sales at HQ", async () => (await atHq('P2')) === 60);
    assert.equal(await atHq('P1'), before, 'the lease holder applies nothing of a paused store');
    const resumed = await cli('resume', '--store', 'P1', '--direction', 'up');
    assert.equal(resumed.code, 0, resumed.stderr);
    await eventually("P1's sales at HQ after resume", async () => (await atHq('P1')) === before + 10, 20_000);
    assert.equal(Number((await env.world.hqQuery<{ n: string }>('SELECT count(*) AS n FROM (SELECT 1 FROM sale_audit GROUP BY store_code, id HAVING count(*) > 1) d'))[0]!.n), 0, 'no sale inserted twice');
  });

  it('notices a pause written without its notification within the 5 s look', async () => {
    // As if the NOTIFY were lost: the row alone, written by hand.
    await env.world.hqQuery(`INSERT INTO branchline.pipeline_pauses (pipeline, paused_by) VALUES ('up:P2', 'by hand')`);
    const t0 = Date.now();
    await eventually('up:P2 paused by the look', async () => (await state('P2', 'up')) === 'paused', 8_000, 100);
    const took = Date.now() - t0;
    assert.ok(took <= 7_000, `paused after ${took} ms`);
    await env.world.hqQuery(`DELETE FROM branchline.pipeline_pauses WHERE pipeline = 'up:P2'`);
    await eventually('up:P2 streaming again by the look', async () => (await state('P2', 'up')) === 'streaming', 8_000, 100);
  });

  it('pauses every store with --all, and says what is wrong with a request it cannot do', async () => {
    const all = await cli('pause', '--all', '--reason', 'HQ maintenance');
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /^paused down:P1, down:P2, up:P1, up:P2: /m);
    await eventually('every pipeline paused', async () => (await Promise.all([state('P1', 'up'), state('P2', 'up'), state('P1', 'down'), state('P2', 'down')])).every((s) => s === 'paused'), 10_000);
    await sell('P2', 5);
    const resumed = await cli('resume', '--all');
    assert.equal(resumed.code, 0, resumed.stderr);
    await eventually('P2 caught up after resume --all', async () => (await atHq('P2')) === 65, 20_000);

    const none = await cli('pause');
    assert.equal(none.code, 2, none.stdout);
    assert.match(none.stderr, /BL-U001.*Say which stores to pause: --store S01 \(repeatable\), or --all/);
    const both = await cli('resume', '--all', '--store', 'P1');
    assert.equal(both.code, 2);
    assert.match(both.stderr, /BL-U001.*Give either --store or --all, not both\./);
    const unknown = await cli('pause', '--store', 'NOPE');
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /BL-C005.*store "NOPE" is not in/);
    assert.doesNotMatch(unknown.stderr + none.stderr + both.stderr, /\n\s+at /, 'no stack trace for a user mistake');
    const left = await env.world.hqQuery<{ n: string }>('SELECT count(*) AS n FROM branchline.pipeline_pauses');
    assert.equal(Number(left[0]!.n), 0, 'refused requests paused nothing');
  });

  it('removes the pause of a store taken out of the configuration while paused, when named', async () => {
    // P9 was paused by an agent whose configuration had it; this one's has not.
    await env.world.hqQuery(`INSERT INTO branchline.pipeline_pauses (pipeline, paused_by, reason) VALUES ('up:P9', 'ana@hq', 'store closed')`);
    const pauses = async () => (await env.world.hqQuery<{ pipeline: string }>('SELECT pipeline FROM branchline.pipeline_pauses ORDER BY pipeline')).map((r) => r.pipeline);
    // And P2's down pipeline paused, seen through a configuration where P2 is disabled.
    await env.world.hqQuery(`INSERT INTO branchline.pipeline_pauses (pipeline, paused_by) VALUES ('down:P2', 'ana@hq')`);
    const text = await readFile(env.world.configFile, 'utf8');
    assert.ok(text.includes('  - code: P2\n'));
    const disabledFile = env.world.configFile.replace(/\.yml$/, '-p2-disabled.yml');
    await writeFile(disabledFile, text.replace('  - code: P2\n', '  - code: P2\n    enabled: false\n'));
    const disabled = await runCli(['resume', '--all', '--config', disabledFile]);
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.match(disabled.stdout, /^still paused, for stores disabled or not in \S+: down:P2, up:P9; `branchline resume --store P2` removes such a pause\.$/m);
    assert.deepEqual(await pauses(), ['down:P2', 'up:P9'], '--all leaves a disabled store paused');
    const all = await cli('resume', '--all');
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /^resumed down:P2: /m);
    assert.match(all.stdout, /^still paused, for stores disabled or not in \S+: up:P9; `branchline resume --store P9` removes it\.$/m);
    assert.deepEqual(await pauses(), ['up:P9'], '--all resumes the enabled stores only');
    const never = await cli('resume', '--store', 'P8');
    assert.equal(never.code, 2, never.stdout);
    assert.match(never.stderr, /BL-C005.*store "P8" is not in/);
    const named = await cli('resume', '--store', 'P9', '--store', 'P1', '--direction', 'up');
    assert.equal(named.code, 0, named.stderr);
    assert.match(named.stdout, /^removed the pause of up:P9 \(not in \S+: an agent whose configuration has the store starts it within seconds\)\.$/m);
    assert.match(named.stdout, /^up:P1 was not paused\.$/m);
    assert.deepEqual(await pauses(), []);
    const again = await cli('resume', '--store', 'P9');
    assert.equal(again.code, 2, again.stdout);
    assert.match(again.stderr, /BL-C005.*store "P9" is not in/);
    assert.doesNotMatch(never.stderr + again.stderr, /\n\s+at /, 'no stack trace for a user mistake');
  });
});
