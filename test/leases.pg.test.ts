import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { checkAndCompile, loadMappings, readCatalog, tablesOf } from '../src/agent/prepare.js';
import { silentLogger } from '../src/core/logger.js';
import { NothingToPickError } from '../src/demo/workload.js';
import { LeaseManager } from '../src/lease/lease-manager.js';
import { migrateLatest } from '../src/state/migrate.js';
import { compareStore, inStep } from '../src/verify/compare.js';
import { AgentProcess, runCli } from './support/agent-process.js';
import { deadPort } from './support/dead-port.js';
import { logCapture } from './support/http-client.js';
import { parsePromText, sampleValue } from './support/prom-text.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { createWorld, eventually, type World } from './support/world.js';

/**
 * Several agents at HQ splitting the stores by lease (docs/deployment.md):
 * three agents as child processes from the bundle over six stores that write
 * throughout; one SIGKILLed mid-stream, one stopped with SIGTERM; HQ must end
 * equal to every store, every sale inserted once. Then self-fencing on its
 * own: an agent whose renewals stop reaching HQ stops its stores' work
 * before their leases expire, and another agent takes them only after.
 */

const STORES = ['L1', 'L2', 'L3', 'L4', 'L5', 'L6'];
const AGENTS = ['lease-a', 'lease-b', 'lease-c'];

/** Counts HQ inserts of every sale (each must be 1 at the end). */
const AUDIT_SQL = `
  CREATE TABLE lease_audit (store_code text NOT NULL, sale_id bigint NOT NULL);
  CREATE FUNCTION lease_audit() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO lease_audit VALUES (NEW.store_code, NEW.sale_id); RETURN NEW; END $$;
  CREATE TRIGGER lease_audit AFTER INSERT ON store_sale FOR EACH ROW EXECUTE FUNCTION lease_audit();`;

interface LeaseRow extends Record<string, unknown> {
  store_code: string;
  holder: string | null;
  live: boolean;
}

/** Sales, coupons and coupon cancellations at every store, one transaction each, until stopped; counts them. */
function writeThroughout(world: World) {
  let stopped = false;
  const txns = new Map(world.stores.map((s) => [s.code, 0]));
  const runs = world.stores.map(async (s) => {
    for (let n = 0; !stopped; n++) {
      try {
        if (n % 5 === 2) await s.workload.coupon();
        else if (n % 15 === 4) await s.workload.cancelCoupon();
        else await s.workload.sale();
        txns.set(s.code, txns.get(s.code)! + 1);
      } catch (e) {
        if (!(e instanceof NothingToPickError)) throw e;
      }
      // About 25 transactions a second per store: six stores and three agents on a small machine.
      await new Promise((r) => setTimeout(r, 40));
    }
  });
  return {
    txns,
    async stop() {
      stopped = true;
      await Promise.all(runs);
    },
  };
}

/** Which stores each agent says it holds now, from its log: taken, minus handed back, lost or released. */
async function heldByLog(agents: ReadonlyMap<string, AgentProcess>): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (const [id, agent] of agents) {
    const held = new Set<string>();
    for (const line of (await agent.logText()).split('\n')) {
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line) as { message?: string; store?: string; stores?: string[]; agent?: string };
      if (e.agent !== id) continue;
      if (e.message === 'lease taken' && e.store) held.add(e.store);
      else if (e.store && (e.message?.startsWith('lease handed back') || e.message?.startsWith('lease lost'))) held.delete(e.store);
      else if (e.message?.startsWith('leases released')) for (const s of e.stores ?? []) held.delete(s);
    }
    out.set(id, held);
  }
  return out;
}

describe('leases: several agents at HQ split the stores', { timeout: 600_000 }, () => {
  let hqServer: TestServer;
  let storeServer: TestServer;

  before(async () => {
    [hqServer, storeServer] = await Promise.all([startTestServer('lease-hq'), startTestServer('lease-stores')]);
  });
  after(async () => {
    await Promise.all([hqServer?.dispose(), storeServer?.dispose()]);
  });

  it('three agents share six writing stores; one SIGKILLed mid-stream and one SIGTERMed: their stores move, and HQ ends equal to every store exactly once', async () => {
    const world = await createWorld({ hqServer, storeServer, stores: STORES, extraConfig: 'batch:\n  max_delay_ms: 100\n  max_rows: 500' });
    await world.hqQuery(AUDIT_SQL);
    const base = await readFile(world.configFile, 'utf8');
    const agents = new Map<string, AgentProcess>();
    const ports = new Map<string, number>();
    const token = 'lease-test-token-0123456789abcdef';
    for (const id of AGENTS) {
      // The defaults: ttl_s 15, renew_s 5. Each agent serves /metrics on its own port.
      const file = path.join(world.dir, `${id}.yml`);
      ports.set(id, await deadPort());
      await writeFile(file, `${base}\nlease:\n  agent_id: ${id}\nhttp:\n  listen: 127.0.0.1:${ports.get(id)}\n  tokens:\n    - {name: test, token: ${token}}\n`);
      agents.set(id, new AgentProcess(file, path.join(world.dir, `${id}.log`)));
    }
    const leases = () => world.hqQuery<LeaseRow>(`SELECT store_code, holder, expires_at > now() AS live FROM branchline.store_leases ORDER BY store_code`);
    /** Per store, the HQ sessions applying its up pipeline (PgSink's application name): never more than one. */
    const upSessions = async () =>
      new Map(
        (
          await world.hqQuery<{ app: string; n: number }>(
            `SELECT application_name AS app, count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'branchline-up:%' GROUP BY 1`,
          )
        ).map((r) => [r.app.slice('branchline-up:'.length), r.n]),
      );
    const applied = async (store: string) =>
      Number((await world.hqQuery<{ n: string }>(`SELECT txns_applied::text AS n FROM branchline.pipelines WHERE pipeline = $1`, [`up:${store}`]))[0]?.n ?? 0);
    const writers = writeThroughout(world);
    try {
      for (const a of agents.values()) a.start();

      // Split: every store held by a live lease, each agent its fair share (2), and each agent's own account agrees.
      await eventually(
        'the six stores split two by two among the three agents',
        async () => {
          const rows = await leases();
          if (rows.length !== STORES.length || !rows.every((r) => r.live && r.holder)) return false;
          return AGENTS.every((id) => rows.filter((r) => r.holder === id).length === 2);
        },
        90_000,
        500,
      );
      const split = await leases();
      const byLog = await heldByLog(agents);
      for (const id of AGENTS)
        assert.deepEqual([...byLog.get(id)!].sort(), split.filter((r) => r.holder === id).map((r) => r.store_code), `${id}'s log disagrees with HQ's lease table`);
      const claimed = [...byLog.values()].flatMap((s) => [...s]);
      assert.equal(new Set(claimed).size, claimed.length, `a store is held by two agents: ${JSON.stringify([...byLog].map(([a, s]) => [a, [...s]]))}`);
      // Each agent's gauge says which stores it holds; `status` shows each store's holder.
      for (const id of AGENTS) {
        const answer = await fetch(`http://127.0.0.1:${ports.get(id)}/metrics`, { headers: { authorization: `Bearer ${token}` } });
        const samples = parsePromText(await answer.text());
        for (const st of STORES)
          assert.equal(sampleValue(samples, 'branchline_store_lease_held', { store: st }), byLog.get(id)!.has(st) ? 1 : 0, `${id}: branchline_store_lease_held{store="${st}"}`);
      }
      const status = await runCli(['status', '--config', world.configFile, '--json']);
      assert.equal(status.code, 0, status.stderr);
      const rows = JSON.parse(status.stdout) as { store: string; lease: { holder: string | null; expiresInS: number | null } | null }[];
      for (const r of split) {
        const row = rows.find((x) => x.store === r.store_code)!;
        assert.equal(row.lease?.holder, r.holder, `status --json: holder of ${r.store_code}`);
        assert.ok(row.lease!.expiresInS! > 0 && row.lease!.expiresInS! <= 15, `${r.store_code} expires in ${row.lease!.expiresInS} s`);
      }
      const text = await runCli(['status', '--config', world.configFile]);
      assert.match(text.stdout.split('\n')[0]!, /HOLDER$/);
      for (const r of split) assert.match(text.stdout, new RegExp(`^${r.store_code} .* ${r.holder} \\(\\d+s left\\)$`, 'm'));
      console.log(`split: ${AGENTS.map((id) => `${id}=${[...byLog.get(id)!].sort().join(',')}`).join(' ')}`);

      // Flowing: every store's sales reach HQ.
      const flowing = async (stores: readonly string[], since: Map<string, number>) => {
        for (const s of stores) if ((await applied(s)) <= (since.get(s) ?? 0)) return false;
        return true;
      };
      await eventually('every store applied at HQ', () => flowing(STORES, new Map()), 90_000, 500);
      const sessions = await upSessions();
      for (const s of STORES) assert.ok((sessions.get(s) ?? 0) <= 1, `${s} has ${sessions.get(s)} applying sessions at HQ`);

      // SIGKILL one agent mid-stream (its pipelines are applying: the writers never stop).
      const victim = 'lease-b';
      const victimStores = split.filter((r) => r.holder === victim).map((r) => r.store_code);
      await new Promise((r) => setTimeout(r, 1_000));
      const atKill = new Map(await Promise.all(STORES.map(async (s) => [s, await applied(s)] as const)));
      const killedAt = performance.now();
      await agents.get(victim)!.kill();
      await eventually(
        `${victimStores.join(', ')} held by the other agents and applying again`,
        async () => {
          const rows = await leases();
          const moved = victimStores.every((s) => {
            const r = rows.find((x) => x.store_code === s);
            return r?.live && r.holder !== victim && r.holder !== null;
          });
          return moved && (await flowing(victimStores, atKill));
        },
        30_000,
        250,
      );
      const killSeconds = (performance.now() - killedAt) / 1000;
      console.log(`after SIGKILL of ${victim}: its stores ${victimStores.join(', ')} held by others and flowing again in ${killSeconds.toFixed(1)} s (ttl_s 15, renew_s 5)`);
      assert.ok(killSeconds < 30, `${killSeconds} s`);
      const afterKill = await leases();
      for (const id of ['lease-a', 'lease-c']) assert.equal(afterKill.filter((r) => r.holder === id).length, 3, `${id} holds its new share (3 of 6)`);

      // SIGTERM another: it releases at once, and the last agent takes its stores without waiting for any expiry.
      const leaving = 'lease-c';
      const leavingStores = afterKill.filter((r) => r.holder === leaving).map((r) => r.store_code);
      const atStop = new Map(await Promise.all(STORES.map(async (s) => [s, await applied(s)] as const)));
      const stoppedAt = performance.now();
      assert.equal(await agents.get(leaving)!.stop(), 0, 'a SIGTERMed agent exits 0');
      const stopSeconds = (performance.now() - stoppedAt) / 1000;
      const released = await leases();
      for (const s of leavingStores) {
        const r = released.find((x) => x.store_code === s)!;
        assert.ok(r.holder === null || r.holder === 'lease-a', `${s} still held by ${r.holder} after its agent stopped`);
      }
      await eventually(
        `${leavingStores.join(', ')} held by lease-a and applying again`,
        async () => {
          const rows = await leases();
          return leavingStores.every((s) => rows.find((x) => x.store_code === s)?.holder === 'lease-a') && (await flowing(leavingStores, atStop));
        },
        15_000,
        100,
      );
      const termSeconds = (performance.now() - stoppedAt) / 1000;
      console.log(`after SIGTERM of ${leaving} (it stopped in ${stopSeconds.toFixed(1)} s): its stores ${leavingStores.join(', ')} held by lease-a and flowing again ${termSeconds.toFixed(1)} s after the signal`);
      // Well under ttl_s (15): nothing waited for an expiry.
      assert.ok(termSeconds < 10, `${termSeconds} s`);

      // The killed agent comes back: lease-a (holding all six) hands three back gracefully, mid-stream, and lease-b takes them.
      const atReturn = new Map(await Promise.all(STORES.map(async (s) => [s, await applied(s)] as const)));
      const handBacks = async () => (await agents.get('lease-a')!.logText()).split('\n').filter((l) => l.includes('"lease handed back')).length;
      const handBacksBefore = await handBacks();
      const returnedAt = performance.now();
      agents.get(victim)!.start();
      await eventually(
        'lease-a to hand three stores back to the returning lease-b, and those to apply again',
        async () => {
          const rows = await leases();
          const back = rows.filter((r) => r.holder === victim && r.live).map((r) => r.store_code);
          return back.length === 3 && rows.filter((r) => r.holder === 'lease-a').length === 3 && (await flowing(back, atReturn));
        },
        30_000,
        250,
      );
      const handBack = (await heldByLog(agents)).get('lease-a')!;
      assert.equal((await handBacks()) - handBacksBefore, 3, 'lease-a logged three hand-backs');
      assert.deepEqual([...handBack].sort(), (await leases()).filter((r) => r.holder === 'lease-a').map((r) => r.store_code));
      console.log(`lease-b restarted: lease-a handed back 3 stores and they flowed again at lease-b ${((performance.now() - returnedAt) / 1000).toFixed(1)} s after its start`);
      for (const [s, n] of await upSessions()) assert.ok(n <= 1, `${s} has ${n} applying sessions at HQ`);

      await writers.stop();
      // Exactly once: every store transaction counted once at HQ, HQ equal to each store through the mappings, no sale inserted twice.
      const config = await world.config();
      const files = await loadMappings(config);
      const mappings = checkAndCompile(files, await readCatalog(world.hq.url, 'HQ', tablesOf(files).targets), null, 'HQ');
      for (const s of world.stores) {
        const expected = writers.txns.get(s.code)! + 1; // + the set-up transaction
        await eventually(`HQ to hold the ${expected} transactions of ${s.code}`, async () => (await applied(s.code)) >= expected, 60_000, 500);
        assert.equal(await applied(s.code), expected, `${s.code}: transactions applied at HQ must equal those committed at the store`);
        const cmp = await compareStore({ storeUrl: s.server.url(s.db), hqUrl: world.hq.url, storeCode: s.code, mappings });
        assert.ok(inStep(cmp), `${s.code}: HQ differs from the store: ${JSON.stringify(cmp.filter((c) => !inStep([c])))}`);
        assert.ok(cmp.find((c) => c.target === 'public.store_sale')!.targetRows > 0);
      }
      assert.deepEqual(await world.hqQuery(`SELECT store_code, sale_id, count(*)::int AS n FROM lease_audit GROUP BY 1, 2 HAVING count(*) > 1`), [], 'a sale was inserted at HQ twice');
      const counts = await world.hqQuery<{ audit: number; sales: number }>(`SELECT (SELECT count(*)::int FROM lease_audit) AS audit, (SELECT count(*)::int FROM store_sale) AS sales`);
      assert.equal(counts[0]!.audit, counts[0]!.sales);
      console.log(`exactly once: ${[...writers.txns.values()].reduce((a, b) => a + b, 0)} store transactions, ${counts[0]!.sales} sales at HQ, each inserted once`);
    } finally {
      await writers.stop();
      for (const a of agents.values()) await a.dispose();
      await world.dispose();
    }
  });

  it('self-fencing: an agent whose renewals stop reaching HQ stops its stores\' work before their leases expire; another takes them only after', async () => {
    const db = await hqServer.createDatabase('fence');
    const url = hqServer.url(db);
    await migrateLatest(url);
    const proxy = await new TcpProxy(Number(new URL(url).port)).start();
    const stores = ['F1', 'F2'];
    /** When each agent's work for a store started and stopped (ms since the epoch, this machine's clock: HQ runs on it too). */
    const events: { agent: string; store: string; start: number; stop: number | null }[] = [];
    const work = (agent: string) => (store: string, signal: AbortSignal) =>
      new Promise<void>((resolve) => {
        const e = { agent, store, start: Date.now(), stop: null as number | null };
        events.push(e);
        signal.addEventListener('abort', () => ((e.stop = Date.now()), resolve()), { once: true });
      });
    const lease = (agentId: string) => ({ agentId, ttlS: 4, renewS: 1 });
    const a = new LeaseManager({ lease: lease('fence-a'), hqUrl: proxy.url(url), stores, logger: silentLogger(), work: work('fence-a') });
    const b = new LeaseManager({ lease: lease('fence-b'), hqUrl: url, stores, logger: silentLogger(), work: work('fence-b') });
    const stopA = new AbortController();
    const stopB = new AbortController();
    const runA = a.run(stopA.signal);
    let runB: Promise<void> | null = null;
    try {
      await eventually('fence-a to hold both stores', async () => a.holding().length === 2, 20_000, 100);
      // The link to HQ hangs (a firewall dropping packets): renewals get no answer, nothing is reset.
      proxy.stall(true);
      const stalledAt = Date.now();
      await eventually('fence-a to stop both stores\' work', async () => events.filter((e) => e.agent === 'fence-a' && e.stop !== null).length === 2, 20_000, 50);
      assert.deepEqual(a.holding(), []);
      const expiry = await hqServer.query<{ store_code: string; holder: string; expires: number }>(
        db,
        `SELECT store_code, holder, (extract(epoch FROM expires_at) * 1000)::float8 AS expires FROM branchline.store_leases ORDER BY store_code`,
      );
      for (const row of expiry) {
        assert.equal(row.holder, 'fence-a', 'the leases are still fence-a\'s at HQ (it could not release them)');
        const e = events.find((x) => x.agent === 'fence-a' && x.store === row.store_code)!;
        assert.ok(e.stop! < row.expires, `${row.store_code}: work stopped at ${e.stop}, after the lease expired at ${row.expires}`);
        console.log(`${row.store_code}: fence-a stopped its work ${((row.expires - e.stop!) / 1000).toFixed(2)} s before the lease expired (${((e.stop! - stalledAt) / 1000).toFixed(2)} s after the link hung; ttl 4 s, renew 1 s)`);
      }
      runB = b.run(stopB.signal);
      await eventually('fence-b to take both stores once expired', async () => b.holding().length === 2, 20_000, 100);
      for (const row of expiry) {
        const taken = events.find((x) => x.agent === 'fence-b' && x.store === row.store_code)!;
        assert.ok(taken.start >= row.expires, `${row.store_code}: fence-b started it at ${taken.start}, before fence-a's lease expired at ${row.expires}`);
      }
      // A second process with fence-b's id while fence-b is live: BL-A005, it takes nothing.
      const twinLog = logCapture();
      const twin = new LeaseManager({ lease: lease('fence-b'), hqUrl: url, stores, logger: twinLog.logger, work: work('fence-b twin') });
      const stopTwin = new AbortController();
      const runTwin = twin.run(stopTwin.signal);
      await eventually('the twin to report BL-A005', async () => twinLog.lines().some((l) => l['code'] === 'BL-A005'), 10_000, 100);
      await new Promise((r) => setTimeout(r, 2_500));
      stopTwin.abort();
      await runTwin;
      assert.deepEqual(twin.holding(), []);
      assert.deepEqual(b.holding(), stores, 'fence-b keeps its stores');
      assert.equal(events.filter((e) => e.agent === 'fence-b twin').length, 0, 'the twin ran no store');
    } finally {
      stopA.abort();
      stopB.abort();
      proxy.stall(false);
      proxy.cut();
      await Promise.all([runA, runB]);
      await proxy.close();
    }
  });
});
