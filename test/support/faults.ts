import assert from 'node:assert/strict';
import pg from 'pg';
import { checkAndCompile, loadMappings, readCatalog, tablesOf } from '../../src/agent/prepare.js';
import { silentLogger } from '../../src/core/logger.js';
import { NothingToPickError, RetailWorkload } from '../../src/demo/workload.js';
import { differencesOf, runReconcile } from '../../src/reconcile/reconcile.js';
import { compareStore, inStep } from '../../src/verify/compare.js';
import type { AgentProcess } from './agent-process.js';
import { createWorld, eventually, type World, type WorldOptions } from './world.js';

/**
 * What the fault tests share (test/faults*.pg.test.ts): writers at the
 * stores and at HQ that count their transactions, and the checks that
 * every table equals its source afterwards, in both directions, with
 * nothing applied twice.
 */

/** An HQ trigger that records every insert of a sale: each must happen once. */
export const AUDIT_SQL = `
  CREATE TABLE audit_sale_insert (store_code text NOT NULL, sale_id bigint NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
  CREATE FUNCTION audit_sale_insert() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO audit_sale_insert (store_code, sale_id) VALUES (NEW.store_code, NEW.sale_id); RETURN NEW; END $$;
  CREATE TRIGGER audit_sale_insert AFTER INSERT ON store_sale FOR EACH ROW EXECUTE FUNCTION audit_sale_insert();`;

/** A seeded PRNG (mulberry32) for fault moments a failing run can repeat: [0, 1). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of a fault test: BRANCHLINE_FAULT_SEED to repeat a run, else a new one; printed either way. */
export function faultSeed(what: string): number {
  const given = process.env['BRANCHLINE_FAULT_SEED'];
  const seed = given ? Number(given) : Math.floor(Math.random() * 2 ** 31);
  process.stdout.write(`# ${what}: seed ${seed} (repeat with BRANCHLINE_FAULT_SEED=${seed})\n`);
  return seed;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A loop of counted transactions that goes on through outages (a failed one is not counted and is retried later). */
interface Writer {
  readonly errors: unknown[];
  stop(): Promise<void>;
}

/** `paceMs`: a pause after every transaction (a steady rate instead of as fast as the database goes). */
function writerLoop(step: (n: number) => Promise<boolean>, pauseEvery: number, paceMs = 0): Writer & { done: Promise<void>; stopped: () => boolean } {
  let stopped = false;
  const errors: unknown[] = [];
  const done = (async () => {
    let n = 0;
    while (!stopped) {
      try {
        if (!(await step(n))) await pause(20);
      } catch (e) {
        // The database may be down on purpose: wait and go on.
        errors.push(e);
        await pause(200);
      }
      n++;
      if (paceMs > 0) await pause(paceMs);
      else if (n % pauseEvery === 0) await pause(5);
    }
  })();
  return {
    errors,
    done,
    stopped: () => stopped,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

/**
 * Writes at every store until stopped, one transaction each: sales,
 * confirmations, fiscal coupons and cancellations of final coupons (which
 * take their items back out of HQ's daily totals). Counts the transactions.
 */
export function startWriters(world: World, paceMs = 0) {
  const txns = new Map(world.stores.map((s) => [s.code, 0]));
  const loops = world.stores.map((s) =>
    writerLoop(async (n) => {
      const k = n % 6;
      try {
        if (k === 3) await s.workload.confirmSale();
        else if (k === 4) await s.workload.coupon();
        else if (k === 5 && n % 24 === 5) await s.workload.cancelCoupon();
        else if (k === 5) await s.workload.coupon();
        else await s.workload.sale();
      } catch (e) {
        if (e instanceof NothingToPickError) return false;
        throw e;
      }
      txns.set(s.code, txns.get(s.code)! + 1);
      return true;
    }, 20, paceMs),
  );
  return {
    txns,
    get errors() {
      return loops.flatMap((l) => l.errors);
    },
    async stop() {
      await Promise.all(loops.map((l) => l.stop()));
    },
  };
}

/**
 * Writes HQ's master data until stopped, one transaction each, every one
 * changing a product's price (so every store's down pipeline applies each
 * of them exactly once); some also add a product, or set a store's own
 * price. Counts the committed transactions.
 */
export function startHqWriter(world: World, random: () => number, paceMs = 0) {
  const pool = new pg.Pool({ connectionString: world.hq.server.url(world.hq.db), max: 1, connectionTimeoutMillis: 2_000 });
  pool.on('error', () => undefined);
  pool.on('connect', (c) => c.on('error', () => undefined));
  let txns = 0;
  let products = 100;
  const codes = world.stores.map((s) => s.code);
  const loop = writerLoop(async (n) => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`UPDATE product SET price = price + 0.01, updated_at = now() WHERE id = $1`, [1 + Math.floor(random() * products)]);
      const added = n % 10 === 9 ? products + 1 : null;
      if (added !== null)
        await c.query(`INSERT INTO product (id, sku, description, unit, price) VALUES ($1, 'F' || $1, 'fault test product ' || $1, 'UN', 9.99)`, [added]);
      if (n % 4 === 1)
        await c.query(
          `INSERT INTO store_price (store_code, product_id, price) VALUES ($1, $2, $3)
             ON CONFLICT (store_code, product_id) DO UPDATE SET price = EXCLUDED.price, updated_at = now()`,
          [codes[(n >> 2) % codes.length], 1 + Math.floor(random() * 100), (1 + random() * 50).toFixed(2)],
        );
      await c.query('COMMIT');
      if (added !== null) products = added;
      txns++;
      return true;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release(true);
    }
  }, 5, paceMs);
  return {
    get txns() {
      return txns;
    },
    errors: loop.errors,
    async stop() {
      await loop.stop();
      await pool.end().catch(() => undefined);
    },
  };
}

/**
 * A world for both directions: HQ owns the catalogue (100 products), the
 * stores start without one (the agent's first start loads it,
 * `down.initial_load: auto`) and with 5 customers each.
 */
export async function createTwoWayWorld(options: WorldOptions): Promise<World> {
  const world = await createWorld({ ...options, setup: false });
  await world.hqQuery(AUDIT_SQL);
  const hqPool = new pg.Pool({ connectionString: world.hq.server.url(world.hq.db), max: 1 });
  try {
    await new RetailWorkload({ db: hqPool, storeCode: 'HQ' }).catalogue(100);
  } finally {
    await hqPool.end();
  }
  await Promise.all(world.stores.map((s) => s.workload.setup({ products: 0, customers: 5 })));
  return world;
}

/** Transactions applied so far: up, at HQ for every store; down, at the first store. */
export async function appliedCounts(world: World): Promise<{ up: number; down: number }> {
  const s = world.stores[0]!;
  return {
    up: Number((await world.hqQuery<{ n: string }>(`SELECT coalesce(sum(txns_applied), 0)::text AS n FROM branchline.pipelines WHERE direction = 'up'`))[0]!.n),
    down: Number((await s.server.query<{ n: string }>(s.db, `SELECT coalesce(sum(txns_applied), 0)::text AS n FROM branchline.pipelines WHERE direction = 'down'`))[0]!.n),
  };
}

/**
 * Starts and SIGKILLs `agent` `kills` times at seeded moments. Every other
 * kill lands within 500 ms of the agent being seen applying again (every
 * count of `applied` above its value at the last kill): mid-stream,
 * mid-batch, mid-commit. The others land `fromStart` ms (a random point of
 * [min, max)) after the process' start: start-up, connecting, catching up,
 * however long start-up takes on a busy machine. Returns the moments and,
 * per count, after how many kills it had moved; the agent is left stopped.
 */
export async function killAtRandomMoments<K extends string>(
  agent: AgentProcess,
  options: { readonly kills: number; readonly random: () => number; readonly fromStart: readonly [number, number]; readonly applied: () => Promise<Record<K, number>> },
): Promise<{ moments: string[]; progress: Record<K, number> }> {
  const { kills, random, applied } = options;
  const [min, max] = options.fromStart;
  let last = await applied();
  const keys = Object.keys(last) as K[];
  const progress = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
  const moments: string[] = [];
  for (let i = 0; i < kills; i++) {
    agent.start();
    const streaming = i % 2 === 1;
    if (streaming) {
      const since = last;
      const counts = keys.map((k) => `${k} ${since[k]}`).join(', ');
      await eventually(`kill ${i + 1}: the agent applying again (since ${counts})`, async () => {
        const now = await applied();
        return keys.every((k) => now[k] > since[k]);
      }, 60_000, 100);
    }
    const ms = Math.round(streaming ? random() * 500 : min + random() * (max - min));
    moments.push(`${streaming ? 'streaming+' : ''}${ms}`);
    await new Promise((r) => setTimeout(r, ms));
    await agent.kill();
    const now = await applied();
    for (const k of keys) if (now[k] > last[k]) progress[k]++;
    last = now;
  }
  return { moments, progress };
}

/** Waits until both directions applied more than `since` (an agent that hangs never does). */
export async function bothMoveOn(world: World, since: { up: number; down: number }, what: string, ms: number): Promise<{ up: number; down: number }> {
  let now = since;
  await eventually(`${what}: both directions applying again (since up ${since.up}, down ${since.down})`, async () => {
    now = await appliedCounts(world);
    return now.up > since.up && now.down > since.down;
  }, ms, 100);
  return now;
}

/** The down transactions each store applied (its `down:S` pipeline at the store). */
async function downTxns(world: World): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const s of world.stores) {
    const r = await s.server.query<{ n: string }>(s.db, `SELECT coalesce(sum(txns_applied), 0)::text AS n FROM branchline.pipelines WHERE pipeline = $1`, [`down:${s.code}`]);
    out.set(s.code, Number(r[0]!.n));
  }
  return out;
}

/**
 * Waits for the agent's first start to settle (every store loaded with
 * HQ's catalogue, every store's setup at HQ, the customers handed to the
 * other stores), and returns the down transactions applied so far.
 */
export async function settleTwoWay(world: World, ms = 60_000): Promise<Map<string, number>> {
  for (const s of world.stores) {
    await eventually(`${s.code}: HQ's catalogue loaded`, async () => (await s.pool.query(`SELECT 1 FROM product WHERE id = 100`)).rowCount === 1, ms);
    await eventually(`${s.code}: its setup at HQ`, async () => (await world.hqQuery(`SELECT 1 FROM branchline.pipelines WHERE pipeline = $1 AND txns_applied >= 1`, [`up:${s.code}`])).length === 1, ms);
  }
  await eventually(
    'every store read all of HQ\'s change log',
    async () => {
      const r = await world.hqQuery<{ n: number }>(
        `SELECT count(*)::int AS n FROM branchline.change_log_readers
          WHERE reader = ANY($1::text[]) AND position >= (SELECT coalesce(max(xid), '0'::xid8) FROM branchline.change_log)`,
        [world.stores.map((s) => `down:${s.code}`)],
      );
      return r[0]!.n === world.stores.length;
    },
    ms,
  );
  return downTxns(world);
}

/**
 * Up, exactly once: HQ equals every store through the mappings (daily
 * totals equal the store's coupon items summed), every sale was inserted
 * at HQ once, and the pipeline applied exactly the transactions the store
 * committed (`storeTxns`, plus the setup's `extra`).
 */
export async function assertExactlyOnce(world: World, storeTxns: ReadonlyMap<string, number>, extra = 1, ms = 60_000): Promise<void> {
  const config = await world.config();
  const files = await loadMappings(config);
  const hq = await readCatalog(world.hq.url, 'HQ', tablesOf(files).targets);
  const mappings = checkAndCompile(files, hq, null, 'HQ');
  for (const s of world.stores) {
    const expected = storeTxns.get(s.code)! + extra;
    const applied = async () => Number((await world.hqQuery<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines WHERE pipeline = $1`, [`up:${s.code}`]))[0]?.n ?? 0);
    await eventually(`HQ to hold every transaction of ${s.code} (${expected})`, async () => (await applied()) >= expected, ms);
    assert.equal(await applied(), expected, `${s.code}: transactions applied at HQ must equal transactions committed at the store`);
    const cmp = await compareStore({ storeUrl: s.server.url(s.db), hqUrl: world.hq.server.url(world.hq.db), storeCode: s.code, mappings });
    assert.ok(inStep(cmp), `${s.code}: HQ differs from the store: ${JSON.stringify(cmp.filter((c) => c.missing || c.extra))}`);
    assert.ok(cmp.find((c) => c.target === 'public.store_sale')!.targetRows > 0);
    // The daily totals equal the store's items summed (compareStore above), and cancellations happened.
    const items = await s.server.query<{ n: string }>(s.db, `SELECT count(*)::text AS n FROM fiscal_coupon_item WHERE NOT cancelled`);
    assert.ok(cmp.find((c) => c.target === 'public.daily_product_sales')!.targetRows > 0, `${s.code}: no daily totals at HQ (${items[0]!.n} coupon items that count at the store)`);
    const cancelled = await s.server.query<{ n: string }>(s.db, `SELECT count(*)::text AS n FROM fiscal_coupon_item WHERE cancelled`);
    assert.ok(Number(cancelled[0]!.n) > 0, `${s.code}: no coupon was cancelled, so no total was ever taken back out`);
  }
  const dups = await world.hqQuery(`SELECT store_code, sale_id, count(*) FROM audit_sale_insert GROUP BY 1, 2 HAVING count(*) > 1`);
  assert.deepEqual(dups, [], 'a sale was inserted at HQ more than once');
  const inserted = await world.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM audit_sale_insert`);
  const sales = await world.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM store_sale`);
  assert.equal(inserted[0]!.n, sales[0]!.n);
}

/**
 * Down, exactly once: every store applied each HQ transaction written
 * since `baseline` once (its down counter), and holds what HQ hands it,
 * row for row through the down mappings (`branchline reconcile`'s
 * comparison: products, its own prices and customers).
 */
export async function assertDownExactlyOnce(world: World, baseline: ReadonlyMap<string, number>, hqTxns: number, ms = 60_000): Promise<void> {
  const config = await world.config();
  for (const s of world.stores) {
    const expected = baseline.get(s.code)! + hqTxns;
    await eventually(`${s.code} to apply every HQ transaction (${expected})`, async () => (await downTxns(world)).get(s.code)! >= expected, ms);
    assert.equal((await downTxns(world)).get(s.code), expected, `${s.code}: down transactions applied must equal HQ's transactions (${hqTxns} written during the test)`);
    const r = await runReconcile({ config, store: config.stores.find((x) => x.code === s.code)!, logger: silentLogger(), directions: ['down'] });
    const differing = r.tables.filter((t) => differencesOf(t) > 0 || t.skipped !== null);
    assert.deepEqual(differing.map((t) => `${t.mapping}: ${differencesOf(t)} ${t.skipped ?? ''}`), [], `${s.code}: the store differs from HQ`);
    assert.ok(r.tables.some((t) => t.target === 'public.local_price' && t.targetRows > 0), `${s.code}: no own prices came down`);
  }
}

/** Both directions' writers, for the tests that run the two at once; `paceMs` as in writerLoop. */
export function startBothWriters(world: World, random: () => number, paceMs = 0) {
  const stores = startWriters(world, paceMs);
  const hq = startHqWriter(world, random, paceMs);
  return {
    stores,
    hq,
    async stop() {
      await Promise.all([stores.stop(), hq.stop()]);
    },
  };
}
