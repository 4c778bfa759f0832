import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { install } from '../src/agent/install.js';
import { loadConfig } from '../src/config/load.js';
import { silentLogger } from '../src/core/logger.js';
import { hqSchemaSql, RETAIL_EXAMPLE_DIR, storeSchemaSql } from '../src/demo/retail-example.js';
import type { CheckResult } from '../src/doctor/check.js';
import { clockSkew, skewBeyond } from '../src/doctor/clock.js';
import { runDoctor, type DoctorReport } from '../src/doctor/doctor.js';
import { tlsVerdict } from '../src/doctor/tls.js';
import { runCli } from './support/agent-process.js';
import { assertNoStack, show } from './support/cli-output.js';
import { deadPort } from './support/dead-port.js';
import { swallowOnceConnected, within } from './support/stall.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { makeCertificates } from './support/tls.js';
import { createWorld, type World } from './support/world.js';

/**
 * `branchline doctor` against real PostgreSQL servers put in the states
 * each check is about: one server with wal_level=logical (HQ and the
 * pg-logical stores), one with wal_level=replica (a pg-logical store that
 * cannot work there, a pg-trigger store that can).
 */

let logical: TestServer;
let replica: TestServer | null = null;
let world: World;
const temps: string[] = [];

interface StoreEntry {
  readonly code: string;
  readonly url: string;
  readonly connector?: 'pg-logical' | 'pg-trigger';
}

/** A configuration file of its own (HQ, the stores, the mapping folder). */
async function writeConfig(options: { hqUrl?: string; stores: readonly StoreEntry[]; mappingsDir?: string }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-doctor-'));
  temps.push(dir);
  const file = path.join(dir, 'branchline.yml');
  await writeFile(
    file,
    [
      'hq:',
      `  url: ${options.hqUrl ?? world.hq.url}`,
      options.stores.length ? 'stores:' : 'stores: []',
      ...options.stores.flatMap((s) => [`  - code: ${s.code}`, `    url: ${s.url}`, ...(s.connector ? [`    connector: ${s.connector}`] : [])]),
      `mappings: ${options.mappingsDir ?? RETAIL_EXAMPLE_DIR}`,
      '',
    ].join('\n'),
  );
  return file;
}

async function doctor(file: string): Promise<DoctorReport> {
  const config = await loadConfig(file);
  return runDoctor({ config, stores: config.stores, connectTimeoutMs: 3_000 });
}

function find(r: DoctorReport, database: string, check: string): CheckResult {
  const c = r.checks.find((x) => x.database === database && x.check === check);
  assert.ok(c, `no ${check} check of ${database} in:\n${r.checks.map((x) => `${x.database} ${x.check}`).join('\n')}`);
  return c;
}

const lines = (r: DoctorReport) => r.checks.map((c) => `${c.status} ${c.database} ${c.check}: ${c.code ?? ''} ${c.message}`).join('\n');

let ca = '';

before(async () => {
  const certs = await makeCertificates('doctor');
  temps.push(certs.dir);
  ca = certs.ca;
  logical = await startTestServer('doctor-logical', certs.settings);
  if (logical.controllable) replica = await startTestServer('doctor-replica', { wal_level: 'replica' });
  world = await createWorld({ hqServer: logical, storeServer: logical, stores: ['S001'], connector: 'pg-logical', setup: false });
});

after(async () => {
  // Leave a shared server (BRANCHLINE_TEST_PG_URL) as it was.
  await logical?.query('postgres', `ALTER SYSTEM RESET max_slot_wal_keep_size`).catch(() => undefined);
  await logical?.query('postgres', `SELECT pg_reload_conf()`).catch(() => undefined);
  await world?.dispose();
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
  await replica?.dispose();
  await logical?.dispose();
  // (A shared server keeps running: its databases are dropped, so the role can go too.)
  if (logical && !logical.controllable) await logical.query('postgres', `DROP ROLE IF EXISTS doctor_plain`).catch(() => undefined);
});

describe('branchline doctor', () => {
  it('a prepared pg-logical store: every check passes but the unbounded max_slot_wal_keep_size, a warning with the setting to change (BL-D009)', async () => {
    await logical.query('postgres', `ALTER SYSTEM RESET max_slot_wal_keep_size`);
    await logical.query('postgres', `SELECT pg_reload_conf()`);
    const r = await doctor(world.configFile);
    const notOk = r.checks.filter((c) => c.status !== 'ok');
    assert.deepEqual(notOk.map((c) => [c.database, c.check, c.status, c.code]), [['store S001', 'max_slot_wal_keep_size', 'warn', 'BL-D009']], lines(r));
    assert.match(notOk[0]!.fix!, /ALTER SYSTEM SET max_slot_wal_keep_size = '20GB'; SELECT pg_reload_conf\(\);/);
    for (const check of ['reachable', 'tls', 'branchline schema', 'change table', 'mappings']) assert.equal(find(r, 'HQ', check).status, 'ok');
    for (const check of ['reachable', 'wal_level', 'replication', 'replication origin', 'publication', 'slot', 'replica identity', 'clock', 'mappings'])
      assert.equal(find(r, 'store S001', check).status, 'ok', check);
    // The same server's clock, read twice: the skew is within the round trips.
    const clock = find(r, 'store S001', 'clock').message;
    const [, skew, plusMinus] = /clock is ([\d.]+) s .* \(± ([\d.]+) s\)/.exec(clock) ?? [];
    assert.ok(Number(skew) <= Number(plusMinus) + 0.05, clock);
    assert.deepEqual(r.summary, { ok: r.checks.length - 1, warn: 1, fail: 0, skip: 0 });

    // The command line: one line per check, the fix under the warning; warnings alone exit 0.
    const cli = await runCli(['doctor', '--config', world.configFile]);
    assertNoStack(cli);
    assert.equal(cli.code, 0, show(cli));
    assert.match(cli.stdout, /^warn  store S001  max_slot_wal_keep_size: BL-D009 max_slot_wal_keep_size is -1: .*\n {8}fix: Bound it, e\.g\. ALTER SYSTEM SET max_slot_wal_keep_size = '20GB';/m);
    assert.match(cli.stdout, /^ok    store S001  slot: the replication slot "branchline_s001" exists/m);
    assert.match(cli.stdout, new RegExp(`^${r.checks.length - 1} ok, 1 warning, 0 failed\\.$`, 'm'));
  });

  it('max_slot_wal_keep_size bounded: ok, naming the bound', async () => {
    await logical.query('postgres', `ALTER SYSTEM SET max_slot_wal_keep_size = '1GB'`);
    await logical.query('postgres', `SELECT pg_reload_conf()`);
    const r = await doctor(world.configFile);
    const c = find(r, 'store S001', 'max_slot_wal_keep_size');
    assert.equal(c.status, 'ok', lines(r));
    assert.match(c.message, /^max_slot_wal_keep_size is 1GB: /);
    assert.equal(r.summary.fail + r.summary.warn, 0, lines(r));
    const json = await runCli(['doctor', '--config', world.configFile, '--json']);
    assert.equal(json.code, 0, show(json));
    assert.deepEqual(JSON.parse(json.stdout).summary, { ok: r.checks.length, warn: 0, fail: 0, skip: 0 });
  });

  it('a user without REPLICATION fails the replication check with the ALTER ROLE to run; after it, the check passes', async () => {
    await logical.query(world.stores[0]!.db, `DROP ROLE IF EXISTS doctor_plain`);
    await logical.query(world.stores[0]!.db, `CREATE ROLE doctor_plain LOGIN PASSWORD 'plain' NOREPLICATION`);
    await logical.query(world.stores[0]!.db, `GRANT SELECT ON ALL TABLES IN SCHEMA public TO doctor_plain`);
    const u = new URL(world.stores[0]!.url);
    u.username = 'doctor_plain';
    u.password = 'plain';
    const file = await writeConfig({ stores: [{ code: 'S001', url: u.toString() }] });
    const r = await doctor(file);
    const c = find(r, 'store S001', 'replication');
    assert.deepEqual([c.status, c.code], ['fail', 'BL-D004'], lines(r));
    assert.equal(c.message, 'user doctor_plain lacks the REPLICATION attribute, so it cannot read the slot.');
    assert.equal(c.fix, 'As a superuser, run ALTER ROLE "doctor_plain" REPLICATION;');
    // The password never reaches the report.
    assert.doesNotMatch(JSON.stringify(r), /plain@/);
    // The down channel's replication origin: not granted either.
    const origin = find(r, 'store S001', 'replication origin');
    assert.deepEqual([origin.status, origin.code], ['fail', 'BL-D004'], lines(r));
    assert.equal(origin.fix, 'As a superuser, run GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text) TO "doctor_plain";');
    for (const fixed of [c, origin]) await logical.query(world.stores[0]!.db, fixed.fix!.replace(/^As a superuser, run /, ''));
    const again = await doctor(file);
    assert.equal(find(again, 'store S001', 'replication').status, 'ok');
    assert.equal(find(again, 'store S001', 'replication origin').status, 'ok');
    const cli = await runCli(['doctor', '--config', file]);
    assert.equal(cli.code, 0, show(cli));
  });

  it('a dropped slot, then a dropped publication, each fail with the command that recreates them; install brings both back', async () => {
    const store = world.stores[0]!;
    await logical.query(store.db, `SELECT pg_drop_replication_slot('branchline_s001')`);
    let r = await doctor(world.configFile);
    let c = find(r, 'store S001', 'slot');
    assert.deepEqual([c.status, c.code, c.message], ['fail', 'BL-S001', 'the replication slot "branchline_s001" does not exist.'], lines(r));
    assert.match(c.fix!, /^Run `branchline install --store S001`; .*`branchline snapshot --store S001 --direction up`\.$/);
    assert.equal(find(r, 'store S001', 'publication').status, 'ok');

    await logical.query(store.db, `DROP PUBLICATION branchline`);
    r = await doctor(world.configFile);
    c = find(r, 'store S001', 'publication');
    assert.deepEqual([c.status, c.code, c.message], ['fail', 'BL-S004', 'the publication "branchline" does not exist.'], lines(r));

    // A publication that lacks a mapped table fails too, naming it.
    await logical.query(store.db, `CREATE PUBLICATION branchline FOR TABLE sale`);
    c = find(await doctor(world.configFile), 'store S001', 'publication');
    assert.equal(c.status, 'fail');
    assert.match(c.message, /lacks mapped tables .*public\.sale_line.*: their changes never reach HQ\./);
    assert.doesNotMatch(c.message, /public\.sale,/);

    await install(await world.config(), (await world.config()).stores, silentLogger());
    r = await doctor(world.configFile);
    assert.equal(find(r, 'store S001', 'slot').status, 'ok', lines(r));
    assert.equal(find(r, 'store S001', 'publication').status, 'ok', lines(r));
    const cli = await runCli(['doctor', '--config', world.configFile]);
    assert.equal(cli.code, 0, show(cli));
  });

  it("HQ's change log for the down channel: a down source table without its capture trigger fails (BL-D005); install brings it back", async () => {
    assert.equal(find(await doctor(world.configFile), 'HQ', 'change table').status, 'ok');
    await world.hqQuery(`DROP TRIGGER branchline_capture ON product`);
    const r = await doctor(world.configFile);
    const c = find(r, 'HQ', 'change table');
    assert.deepEqual([c.status, c.code, c.message], ['fail', 'BL-D005', 'mapped table public.product has no capture trigger: its changes never reach the stores.'], lines(r));
    assert.match(c.fix!, /^Run `branchline install`/);
    await install(await world.config(), (await world.config()).stores, silentLogger());
    assert.equal(find(await doctor(world.configFile), 'HQ', 'change table').status, 'ok');
  });

  it('REPLICA IDENTITY NOTHING on a mapped table, and an aggregate source without FULL, fail the replica identity check with the ALTER TABLE to run', async () => {
    const store = world.stores[0]!;
    await logical.query(store.db, `ALTER TABLE sale_line REPLICA IDENTITY NOTHING`);
    let r = await doctor(world.configFile);
    let c = find(r, 'store S001', 'replica identity');
    assert.deepEqual([c.status, c.code], ['fail', 'BL-M013'], lines(r));
    assert.match(c.message, /public\.sale_line has REPLICA IDENTITY NOTHING/);
    assert.match(c.fix!, /ALTER TABLE public\.sale_line REPLICA IDENTITY DEFAULT/);
    // Reported once, not again among the mapping problems.
    assert.equal(find(r, 'store S001', 'mappings').status, 'ok', lines(r));
    const cli = await runCli(['doctor', '--config', world.configFile]);
    assertNoStack(cli);
    assert.equal(cli.code, 3, show(cli));
    assert.match(cli.stdout, /^fail  store S001  replica identity: BL-M013 /m);

    await logical.query(store.db, `ALTER TABLE sale_line REPLICA IDENTITY DEFAULT`);
    await logical.query(store.db, `ALTER TABLE fiscal_coupon_item REPLICA IDENTITY DEFAULT`);
    r = await doctor(world.configFile);
    c = find(r, 'store S001', 'replica identity');
    assert.deepEqual([c.status, c.code], ['fail', 'BL-M019'], lines(r));
    assert.match(c.message, /public\.fiscal_coupon_item feeds an aggregate/);
    assert.match(c.fix!, /ALTER TABLE public\.fiscal_coupon_item REPLICA IDENTITY FULL/);
    await logical.query(store.db, `ALTER TABLE fiscal_coupon_item REPLICA IDENTITY FULL`);
    assert.equal(find(await doctor(world.configFile), 'store S001', 'replica identity').status, 'ok');
  });

  it('an unreachable store is one failed check (BL-D001), not a crash; the other stores are still checked', async () => {
    const port = await deadPort();
    const file = await writeConfig({
      stores: [
        { code: 'S001', url: world.stores[0]!.url },
        { code: 'S002', url: `postgres://branchline:secret-pw@127.0.0.1:${port}/store` },
      ],
    });
    const r = await doctor(file);
    const s2 = r.checks.filter((c) => c.database === 'store S002');
    assert.deepEqual(s2.map((c) => [c.check, c.status, c.code]), [['reachable', 'fail', 'BL-D001']], lines(r));
    assert.match(s2[0]!.message, new RegExp(`cannot reach the store S002 database at 127\\.0\\.0\\.1:${port}/store`));
    assert.equal(find(r, 'store S001', 'slot').status, 'ok');
    const cli = await runCli(['doctor', '--config', file]);
    assertNoStack(cli);
    assert.equal(cli.code, 3, show(cli));
    assert.doesNotMatch(cli.stdout + cli.stderr, /secret-pw/);
    assert.match(cli.stdout, /^fail  store S002  reachable: BL-D001 /m);
    // --store narrows the checks to that store (and HQ).
    const one = await runCli(['doctor', '--config', file, '--store', 'S001']);
    assert.equal(one.code, 0, show(one));
    assert.doesNotMatch(one.stdout, /S002/);
  });

  it('a store whose link stalls once connected (no reset): one failed check (BL-S010) within its deadline, not a hang; the other store is still checked', async () => {
    // S002 through a proxy to a database of its own (so the sessions the proxy waits for are S002's alone).
    const db = await logical.createDatabase('doctor_stall');
    const proxy = await new TcpProxy(Number(new URL(logical.url(db)).port)).start();
    const admin = new pg.Client(logical.url('postgres'));
    await admin.connect();
    try {
      proxy.slow({ latencyMs: 150 });
      const file = await writeConfig({ stores: [{ code: 'S001', url: world.stores[0]!.url }, { code: 'S002', url: proxy.url(logical.url(db)) }] });
      const started = Date.now();
      const report = doctor(file);
      report.catch(() => undefined);
      assert.ok((await swallowOnceConnected(proxy, admin, 'branchline-doctor', db)) > 0, 'doctor connected to S002 through the proxy');
      assert.equal(await within(report, 40_000), 'settled', 'doctor ends on its own');
      const r = await report;
      assert.ok(Date.now() - started < 30_000, `doctor ended after ${Date.now() - started} ms`);
      const s2 = r.checks.filter((c) => c.database === 'store S002');
      assert.deepEqual(s2.map((c) => [c.check, c.status, c.code]), [['reachable', 'ok', null], ['checks', 'fail', 'BL-S010']], lines(r));
      assert.match(s2[1]!.message, /stopped answering/);
      assert.equal(find(r, 'store S001', 'slot').status, 'ok', 'S001 is checked as ever');
    } finally {
      proxy.swallowClientBytes(false);
      await admin.end();
      await proxy.close();
    }
  });

  it('HQ unreachable: HQ fails its check, the stores are still checked, and what needs HQ says it was not checked', async () => {
    const port = await deadPort();
    const file = await writeConfig({ hqUrl: `postgres://branchline:pw@127.0.0.1:${port}/hq`, stores: [{ code: 'S001', url: world.stores[0]!.url }] });
    const r = await doctor(file);
    const hq = find(r, 'HQ', 'reachable');
    assert.deepEqual([hq.status, hq.code], ['fail', 'BL-D001'], lines(r));
    assert.match(hq.fix!, /A store agent needs HQ reachable from its machine/);
    assert.equal(find(r, 'store S001', 'slot').status, 'ok');
    assert.equal(find(r, 'store S001', 'clock').status, 'skip');
    assert.equal(find(r, 'store S001', 'mappings').status, 'skip');
  });

  it("an HQ without branchline's schema fails with `branchline install` as the fix (BL-D005)", async () => {
    const db = await logical.createDatabase('hq_bare');
    await logical.query(db, await hqSchemaSql());
    const file = await writeConfig({ hqUrl: logical.url(db), stores: [{ code: 'S001', url: world.stores[0]!.url }] });
    const r = await doctor(file);
    const c = find(r, 'HQ', 'branchline schema');
    assert.deepEqual([c.status, c.code, c.fix], ['fail', 'BL-D005', 'Run `branchline install`.'], lines(r));
    // Its tables are there: the mappings still fit it.
    assert.equal(find(r, 'HQ', 'mappings').status, 'ok', lines(r));
  });

  it('a broken mapping file fails the mappings check, each problem with its file:line:column', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-doctor-maps-'));
    temps.push(dir);
    await cp(RETAIL_EXAMPLE_DIR, dir, { recursive: true });
    await writeFile(path.join(dir, 'sale.yml'), 'source: sale\ntarget: sale\ncolumns:\n  id: [unclosed\n');
    const file = await writeConfig({ stores: [{ code: 'S001', url: world.stores[0]!.url }], mappingsDir: dir });
    const r = await doctor(file);
    const c = find(r, 'HQ', 'mappings');
    assert.deepEqual([c.status, c.code], ['fail', 'BL-M001'], lines(r));
    assert.equal(c.details?.length, 1, lines(r));
    assert.match(c.details![0]!, new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/sale\\.yml:\\d+:\\d+: BL-M001 `));
    // The store's side adds nothing new: the broken file is not reported twice.
    assert.equal(find(r, 'store S001', 'mappings').status, 'ok', lines(r));
    const cli = await runCli(['doctor', '--config', file]);
    assertNoStack(cli);
    assert.equal(cli.code, 3, show(cli));
    assert.match(cli.stdout, /^ {8}\S+sale\.yml:\d+:\d+: BL-M001 /m);
  });

  it('HQ over TLS with sslmode=verify-full: the tls check says encrypted; an address the certificate does not name fails to connect, with the reason', async (t) => {
    if (!logical.controllable) {
      t.skip('needs its own server with ssl=on and a test certificate, not the shared BRANCHLINE_TEST_PG_URL server');
      process.stdout.write('# skipped: needs its own server with a test certificate (BRANCHLINE_TEST_PG_URL is set)\n');
      return;
    }
    const plain = find(await doctor(world.configFile), 'HQ', 'tls');
    assert.equal(plain.status, 'ok');
    assert.match(plain.message, /^not encrypted, but the database is on this machine/);
    const u = new URL(world.hq.url);
    u.hostname = 'localhost';
    u.search = `?sslmode=verify-full&sslrootcert=${ca}`;
    const file = await writeConfig({ hqUrl: u.toString(), stores: [{ code: 'S001', url: world.stores[0]!.url }] });
    const r = await doctor(file);
    const tls = find(r, 'HQ', 'tls');
    assert.equal(tls.status, 'ok', lines(r));
    assert.match(tls.message, /^the link is encrypted \(TLSv1\.[23]\) and the server's certificate and host name are checked\.$/);
    // The same server by its IP address: the certificate names localhost only, so verify-full refuses.
    u.hostname = '127.0.0.1';
    const wrong = await doctor(await writeConfig({ hqUrl: u.toString(), stores: [{ code: 'S001', url: world.stores[0]!.url }] }));
    const c = find(wrong, 'HQ', 'reachable');
    assert.deepEqual([c.status, c.code], ['fail', 'BL-D001'], lines(wrong));
    assert.match(c.message, /IP: 127\.0\.0\.1 is not in the cert's list/);
  });

  it('wal_level=replica: a pg-logical store fails with the ALTER SYSTEM to run (BL-D003); a pg-trigger store there passes and needs neither slot nor publication', async (t) => {
    if (!replica) {
      t.skip('needs its own server with wal_level=replica, which it cannot start with BRANCHLINE_TEST_PG_URL');
      process.stdout.write('# skipped: needs its own server with wal_level=replica (BRANCHLINE_TEST_PG_URL is set)\n');
      return;
    }
    const logicalDb = await replica.createDatabase('store_s010');
    const triggerDb = await replica.createDatabase('store_s011');
    for (const db of [logicalDb, triggerDb]) await replica.query(db, await storeSchemaSql());
    for (const code of ['S010', 'S011']) await world.hqQuery(`INSERT INTO store (code, name, city) VALUES ($1, $1, 'Test')`, [code]);
    const file = await writeConfig({
      stores: [
        { code: 'S010', url: replica.url(logicalDb) },
        { code: 'S011', url: replica.url(triggerDb), connector: 'pg-trigger' },
      ],
    });
    const config = await loadConfig(file);
    await install(config, config.stores.filter((s) => s.code === 'S011'), silentLogger());
    const r = await doctor(file);
    const wal = find(r, 'store S010', 'wal_level');
    assert.deepEqual([wal.status, wal.code, wal.message], ['fail', 'BL-D003', 'wal_level is replica; the pg-logical connector needs logical.'], lines(r));
    assert.match(wal.fix!, /^Run ALTER SYSTEM SET wal_level = 'logical'; and restart PostgreSQL/);
    assert.equal(find(r, 'store S010', 'slot').code, 'BL-S001');

    const trigger = r.checks.filter((c) => c.database === 'store S011');
    assert.deepEqual(trigger.filter((c) => c.status !== 'ok').map((c) => c.check), [], lines(r));
    assert.match(find(r, 'store S011', 'wal_level').message, /^not needed: connector pg-trigger/);
    assert.match(find(r, 'store S011', 'change table').message, /branchline\.change_log exists and the \d+ mapped tables have their capture triggers/);
    assert.ok(!trigger.some((c) => c.check === 'slot' || c.check === 'publication' || c.check === 'max_slot_wal_keep_size'));

    await replica.query(triggerDb, `DROP TRIGGER branchline_capture ON sale_line`);
    const c = find(await doctor(file), 'store S011', 'change table');
    assert.deepEqual([c.status, c.code], ['fail', 'BL-D005']);
    assert.equal(c.message, 'mapped table public.sale_line has no capture trigger: its changes never reach HQ.');
    assert.equal(c.fix, 'Run `branchline install --store S011` (it creates the change table and the capture triggers).');
  });
});

describe('tls verdict', () => {
  it('warns (BL-D011) for a plain link over the network and for sslmode=no-verify; a link on this machine is ok', () => {
    const plain = tlsVerdict('HQ', { ssl: false, version: null, host: 'hq.example.com', sslmode: null });
    assert.deepEqual([plain.status, plain.code, plain.message], ['warn', 'BL-D011', 'the link to hq.example.com is not encrypted: passwords and rows cross the network in plain text.']);
    assert.match(plain.fix!, /sslmode=verify-full&sslrootcert=/);
    const unchecked = tlsVerdict('HQ', { ssl: true, version: 'TLSv1.3', host: 'hq.example.com', sslmode: 'no-verify' });
    assert.deepEqual([unchecked.status, unchecked.code], ['warn', 'BL-D011']);
    for (const host of ['localhost', '127.0.0.1', '127.1.2.3', '[::1]', '/var/run/postgresql', ''])
      assert.equal(tlsVerdict('HQ', { ssl: false, version: null, host, sslmode: null }).status, 'ok', host);
    assert.equal(tlsVerdict('HQ', { ssl: false, version: null, host: '10.0.0.7', sslmode: 'disable' }).status, 'warn');
  });
});

describe('clock skew estimate', () => {
  it('takes each server at the middle of its round trip and the half round trips as the uncertainty', () => {
    // The store answers 7 s ahead of our clock over a 200 ms round trip; HQ 1 s behind over 40 ms.
    const s = clockSkew({ sentAt: 1_000, receivedAt: 1_200, serverAt: 8_100 }, { sentAt: 2_000, receivedAt: 2_040, serverAt: 1_020 });
    assert.deepEqual(s, { skewMs: 8_000, uncertaintyMs: 120 });
    assert.equal(skewBeyond(s, 5_000), true);
    // 5.1 s apart, but with 200 ms of uncertainty it may be within 5 s: no warning.
    assert.equal(skewBeyond({ skewMs: -5_100, uncertaintyMs: 200 }, 5_000), false);
    assert.equal(skewBeyond({ skewMs: -5_300, uncertaintyMs: 200 }, 5_000), true);
  });
});
