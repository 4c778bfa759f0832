import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BranchlineError } from '../src/core/errors.js';
import { silentLogger } from '../src/core/logger.js';
import { parseCron } from '../src/reports/cron.js';
import { MAX_WAIT_MS, runReportLoop } from '../src/reports/report-loop.js';

/**
 * The scheduled report's loop (what `branchline run` runs with `reports:`),
 * on a clock the test moves: each sleep advances it by what was asked,
 * each run may take time or move the clock, and the test records when each
 * report ran and for which period.
 */
function clock(startIso: string) {
  let t = Date.parse(startIso);
  const sleeps: number[] = [];
  return {
    now: () => t,
    set: (iso: string) => (t = Date.parse(iso)),
    advance: (ms: number) => (t += ms),
    sleeps,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      t += ms;
    },
  };
}

describe('the report loop', () => {
  it('runs at each scheduled time, for that time, waiting in steps of at most an hour', async () => {
    const c = clock('2026-12-02T10:00:30Z');
    const ran: { period: string; at: string }[] = [];
    const stop = new AbortController();
    await runReportLoop(
      {
        schedule: parseCron('0 6 * * *', 'UTC'),
        logger: silentLogger(),
        now: c.now,
        sleep: c.sleep,
        run: async (periodEnd) => {
          ran.push({ period: periodEnd.toISOString(), at: new Date(c.now()).toISOString() });
          c.advance(5_000); // a report takes 5 s
          if (ran.length === 3) stop.abort();
        },
      },
      stop.signal,
    );
    assert.deepEqual(ran, [
      { period: '2026-12-03T06:00:00.000Z', at: '2026-12-03T06:00:00.000Z' },
      { period: '2026-12-04T06:00:00.000Z', at: '2026-12-04T06:00:00.000Z' },
      { period: '2026-12-05T06:00:00.000Z', at: '2026-12-05T06:00:00.000Z' },
    ]);
    assert.ok(Math.max(...c.sleeps) <= MAX_WAIT_MS, `longest wait ${Math.max(...c.sleeps)} ms`);
    assert.ok(c.sleeps.length >= 3 * 20, `a day is waited in hour steps: ${c.sleeps.length} waits`);
  });

  it('in a time zone, at its wall time (São Paulo 08:00 is 11:00 UTC)', async () => {
    const c = clock('2026-12-02T10:00:00Z');
    const ran: string[] = [];
    const stop = new AbortController();
    await runReportLoop(
      { schedule: parseCron('0 8 * * 1-5', 'America/Sao_Paulo'), logger: silentLogger(), now: c.now, sleep: c.sleep, run: async (p) => void (ran.push(p.toISOString()), ran.length === 3 && stop.abort()) },
      stop.signal,
    );
    // Wednesday 2 Dec 2026 08:00 -03:00, Thursday, Friday.
    assert.deepEqual(ran, ['2026-12-02T11:00:00.000Z', '2026-12-03T11:00:00.000Z', '2026-12-04T11:00:00.000Z']);
  });

  it('a report longer than the gap, or a clock set forward, skips the times past; a clock set back never runs a time twice', async () => {
    const c = clock('2026-12-02T10:00:30Z');
    const ran: string[] = [];
    const stop = new AbortController();
    await runReportLoop(
      {
        schedule: parseCron('*/15 * * * *', 'UTC'),
        logger: silentLogger(),
        now: c.now,
        sleep: c.sleep,
        run: async (p) => {
          ran.push(p.toISOString());
          if (ran.length === 1) c.set('2026-12-02T10:47:00Z'); // took 32 minutes: 10:30 and 10:45 are past
          if (ran.length === 2) c.set('2026-12-02T10:20:00Z'); // the clock is set back 40 minutes
          if (ran.length === 3) stop.abort();
        },
      },
      stop.signal,
    );
    assert.deepEqual(ran, ['2026-12-02T10:15:00.000Z', '2026-12-02T11:00:00.000Z', '2026-12-02T11:15:00.000Z']);
  });

  it('a failed report (BranchlineError) is logged and the next one runs; any other error ends the loop', async () => {
    const c = clock('2026-12-02T10:00:30Z');
    const ran: string[] = [];
    const logged: unknown[] = [];
    const logger = Object.assign(Object.create(silentLogger()) as ReturnType<typeof silentLogger>, { error: (msg: string, meta?: unknown) => void logged.push({ msg, meta }) });
    const stop = new AbortController();
    await runReportLoop(
      {
        schedule: parseCron('0 * * * *', 'UTC'),
        logger,
        now: c.now,
        sleep: c.sleep,
        run: async (p) => {
          ran.push(p.toISOString());
          if (ran.length === 1) throw new BranchlineError({ code: 'BL-O001', message: 'the SMTP server refused the login.', hint: 'check reports.email.smtp_url.' });
          stop.abort();
        },
      },
      stop.signal,
    );
    assert.deepEqual(ran, ['2026-12-02T11:00:00.000Z', '2026-12-02T12:00:00.000Z']);
    assert.equal(logged.length, 1);
    const [entry] = logged as [{ msg: string; meta: { code: string; error: string } }];
    assert.equal(entry.msg, 'report not done');
    assert.equal(entry.meta.code, 'BL-O001');
    assert.match(entry.meta.error, /the SMTP server refused the login\. check reports\.email\.smtp_url\./);
    await assert.rejects(
      runReportLoop({ schedule: parseCron('0 * * * *', 'UTC'), logger: silentLogger(), now: c.now, sleep: c.sleep, run: async () => { throw new TypeError('a bug'); } }, new AbortController().signal),
      TypeError,
    );
  });

  it('an abort while waiting ends the loop without running', async () => {
    const stop = new AbortController();
    let runs = 0;
    const waiting = runReportLoop({ schedule: parseCron('0 6 * * *', 'UTC'), logger: silentLogger(), run: async () => void runs++ }, stop.signal);
    setTimeout(() => stop.abort(), 50);
    await waiting;
    assert.equal(runs, 0);
  });
});
