import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { Agent } from '../src/agent/agent.js';
import type { Config, ReportsConfig } from '../src/config/load.js';
import { isBranchlineError } from '../src/core/errors.js';
import { silentLogger } from '../src/core/logger.js';
import { runReport } from '../src/reports/report.js';
import { recordReconcile } from '../src/reconcile/record.js';
import { runReconcile } from '../src/reconcile/reconcile.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { createWorld, eventually, type World } from './support/world.js';

/**
 * The synchronization report: figures of the period per store (as
 * differences from the previous report), written to a file and emailed
 * through a real SMTP server started by the test, once per period even when
 * two agents race for it.
 */

interface Received {
  from: string;
  to: string[];
  raw: string;
}

describe('scheduled reports', { timeout: 180_000 }, () => {
  let server: TestServer;
  let world: World;
  let config: Config;
  let folder: string;
  let smtp: SMTPServer;
  let smtpPort = 0;
  const received: Received[] = [];
  let agent: { controller: AbortController; running: Promise<void> } | null = null;
  const upRows = async (code: string) => Number((await world.hqQuery<{ n: string }>(`SELECT rows_applied::text AS n FROM branchline.pipelines WHERE pipeline = $1`, [`up:${code}`]))[0]?.n ?? 0);
  const reports = (): ReportsConfig => ({ schedule: '0 7 * * *', timeZone: 'America/Sao_Paulo', folder, email: { smtpUrl: `smtp://report:secret-pw@127.0.0.1:${smtpPort}`, from: 'branchline@chain.example', to: ['ops@chain.example', 'cfo@chain.example'], subject: 'sync {period}' } });

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), 'branchline-reports-'));
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      onAuth(auth, _session, cb) {
        if (auth.username === 'report' && auth.password === 'secret-pw') cb(null, { user: 'report' });
        else cb(new Error('bad login'));
      },
      onData(stream, session, cb) {
        let raw = '';
        stream.on('data', (d: Buffer) => (raw += d.toString('utf8')));
        stream.on('end', () => {
          received.push({ from: (session.envelope.mailFrom as { address: string }).address, to: session.envelope.rcptTo.map((r) => r.address), raw });
          cb();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', () => resolve()));
    smtpPort = (smtp.server.address() as import('node:net').AddressInfo).port;
    server = await startTestServer('reports');
    world = await createWorld({ hqServer: server, storeServer: server, stores: ['S001', 'S002'] });
    config = await world.config();
    const controller = new AbortController();
    agent = { controller, running: new Agent({ config, logger: silentLogger() }).run(controller.signal) };
  });

  after(async () => {
    agent?.controller.abort();
    await agent?.running;
    await world?.dispose();
    await server?.dispose();
    await new Promise<void>((resolve) => smtp.close(() => resolve()));
    await rm(folder, { recursive: true, force: true });
  });

  it('each report counts its own period, is written and emailed, and is sent once per period', async () => {
    await world.stores[0]!.workload.mixed(20);
    await eventually('S001 at HQ', async () => (await upRows('S001')) > 0);
    await eventually('HQ idle', async () => {
      const a = await upRows('S001');
      await new Promise((r) => setTimeout(r, 700));
      return (await upRows('S001')) === a;
    });
    const first = await upRows('S001');
    const firstS002 = await upRows('S002'); // its customers, from the world's setup
    const end1 = new Date();
    const r1 = await runReport({ config, reports: reports(), periodEnd: end1, logger: silentLogger() });
    assert.ok(r1);
    const line = (text: string, code: string) => text.split('\n').find((l) => l.startsWith(`${code} `))!.trim().split(/\s{2,}/);
    assert.equal(line(r1.text, 'S001')[3], String(first), r1.text);
    assert.equal(line(r1.text, 'S002')[3], String(firstS002));
    assert.match(r1.text, /the first report: since the pipelines began/);
    assert.equal(await readFile(r1.file, 'utf8'), r1.text);
    assert.equal(received.length, 1);
    assert.equal(received[0]!.from, 'branchline@chain.example');
    assert.deepEqual(received[0]!.to, ['ops@chain.example', 'cfo@chain.example']);
    assert.match(received[0]!.raw, /^Subject: sync until \d{4}-\d\d-\d\d \d\d:\d\d \(America\/Sao_Paulo, the first report/m);
    assert.match(received[0]!.raw, /S001 +S001 +streaming/);

    // Two agents with the same schedule: the second finds the period claimed and sends nothing.
    assert.equal(await runReport({ config, reports: reports(), periodEnd: end1, logger: silentLogger() }), null);
    assert.equal(received.length, 1);

    await world.stores[1]!.workload.mixed(10);
    await eventually('S002 at HQ', async () => (await upRows('S002')) > firstS002);
    await new Promise((r) => setTimeout(r, 1_000));
    // A reconciliation of the period: one sale line lost at HQ behind the pipeline's back, found and recorded.
    await world.hqQuery(`DELETE FROM store_sale_line WHERE ctid = (SELECT ctid FROM store_sale_line WHERE store_code = 'S001' LIMIT 1)`);
    const rec = await runReconcile({ config, store: config.stores[0]!, logger: silentLogger(), directions: ['up'], tables: ['sale_line'] });
    assert.equal(rec.differences, 1);
    await recordReconcile(config.hq.url, rec);
    const r2 = await runReport({ config, reports: reports(), periodEnd: new Date(), logger: silentLogger() });
    assert.ok(r2);
    assert.equal(line(r2.text, 'S001')[8], '1', r2.text);
    assert.equal(line(r2.text, 'S002')[8], '-', 'no reconcile of S002 in the period');
    assert.match(r2.text, /- S001: reconcile found 1 difference \(branchline reconcile --store S001 --fix\)/);
    assert.equal(line(r1.text, 'S001')[8], '-');
    assert.equal(line(r2.text, 'S001')[3], String((await upRows('S001')) - first), 'only the second period');
    assert.equal(line(r2.text, 'S002')[3], String((await upRows('S002')) - firstS002));
    assert.doesNotMatch(r2.text, /first report/);
    assert.equal(received.length, 2);
    const runs = await world.hqQuery<{ n: number; files: number }>(`SELECT count(*)::int AS n, count(file)::int AS files FROM branchline.report_runs`);
    assert.deepEqual(runs, [{ n: 2, files: 2 }]);
  });

  it('an SMTP server that refuses: BL-O001, the file is kept, the password never shown', async () => {
    const bad = { ...reports(), email: { ...reports().email!, smtpUrl: `smtp://report:wrong-pw@127.0.0.1:${smtpPort}` } };
    const e = await runReport({ config, reports: bad, periodEnd: new Date(), logger: silentLogger() }).then(
      () => null,
      (err: unknown) => err,
    );
    assert.ok(isBranchlineError(e), String(e));
    assert.equal(e.code, 'BL-O001');
    assert.match(e.message, /was written but could not be emailed/);
    assert.doesNotMatch(e.message, /wrong-pw/);
    const files = await readdir(folder);
    assert.equal(files.length, 3, files.join(', '));
  });
});
