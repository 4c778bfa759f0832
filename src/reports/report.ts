import { mkdir, writeFile } from 'node:fs/promises';
import type pg from 'pg';
import os from 'node:os';
import path from 'node:path';
import { readStatus } from '../agent/status.js';
import { storeRole } from '../agent/prepare.js';
import type { Config, ReportsConfig } from '../config/load.js';
import { BranchlineError, isBranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { redact } from '../core/logger.js';
import { bounded, connect, endClient, isConnectionError } from '../db/connect.js';
import { table } from '../cli/output.js';
import { SETTLEMENT_ANSWERS } from '../metrics/metrics.js';

/** One store's line in a report. */
export interface StoreReport {
  readonly store: string;
  readonly name: string;
  readonly state: string;
  /** Rows HQ applied from the store in the period (null: unknown). */
  readonly rowsUp: number | null;
  /** Rows the store applied from HQ in the period (null: unknown, e.g. the store was unreachable). */
  readonly rowsDown: number | null;
  readonly lagSeconds: number | null;
  readonly parked: number;
  readonly lastApplyAt: string | null;
  /** Settlement checks of the period by answer. */
  readonly settlementChecks: Readonly<Record<string, number>>;
  /** The period's last `branchline reconcile` of the store (null: none ran). */
  readonly reconcile: { readonly differences: number; readonly fixed: boolean; readonly at: string } | null;
}

export interface ReportData {
  /** null: the first report, which counts since the pipelines began. */
  readonly periodStart: Date | null;
  readonly periodEnd: Date;
  readonly timeZone: string;
  readonly stores: readonly StoreReport[];
  /** Rows applied per pipeline at the period's end (the next report's base). */
  readonly counters: Readonly<Record<string, number>>;
}

/** How long a report waits for HQ's answers (plus the read deadline's grace, on a link that stalls): the scheduled report must not hold its loop for good. */
const REPORT_HQ_TIMEOUT_MS = 60_000;

/**
 * What the period did, per store: rows up (HQ's `branchline.pipelines`) and
 * down (each store's), as differences from the previous report's counters;
 * lag, state and parked changes now; settlement checks of the period. A
 * store that does not answer has no down figure; nothing waits long.
 */
export async function collectReport(config: Config, periodEnd: Date, previous: PreviousReport | null, timeZone: string): Promise<ReportData> {
  const status = await readStatus(config, config.stores);
  const down = await Promise.all(config.stores.map((s) => downRowsApplied(s.code, s.url, storeRole(s), s.connector)));
  const hq = await connect(config.hq.url, { role: 'HQ', applicationName: 'branchline-report', connectTimeoutMs: 5_000, ...bounded(REPORT_HQ_TIMEOUT_MS) });
  let checks: { store_code: string; status: string; n: number }[];
  let reconciled: { store_code: string; differences: number; fixed: boolean; run_at: Date }[];
  try {
    reconciled = (
      await hq.query<{ store_code: string; differences: number; fixed: boolean; run_at: Date }>(
        `SELECT DISTINCT ON (store_code) store_code, differences, fixed, run_at FROM branchline.reconcile_runs
          WHERE run_at <= $2 AND ($1::timestamptz IS NULL OR run_at > $1) ORDER BY store_code, run_at DESC`,
        [previous?.periodEnd ?? null, periodEnd],
      )
    ).rows;
    checks = (
      await hq.query<{ store_code: string; status: string; n: number }>(
        `SELECT store_code, status, count(*)::int AS n FROM branchline.settlement_checks
          WHERE checked_at <= $2 AND ($1::timestamptz IS NULL OR checked_at > $1) GROUP BY 1, 2`,
        [previous?.periodEnd ?? null, periodEnd],
      )
    ).rows;
  } finally {
    await endClient(hq);
  }
  const counters: Record<string, number> = {};
  const stores = config.stores.map((s, i): StoreReport => {
    const st = status[i]!;
    const up = st.rowsApplied;
    counters[`up:${s.code}`] = up;
    const d = down[i]!;
    if (d !== null) counters[`down:${s.code}`] = d;
    const since = (k: string, now: number | null) => (now === null ? null : now - (previous?.counters[k] ?? 0));
    const byAnswer = Object.fromEntries(SETTLEMENT_ANSWERS.map((a) => [a, 0])) as Record<string, number>;
    for (const c of checks) if (c.store_code === s.code) byAnswer[c.status] = c.n;
    const rec = reconciled.find((x) => x.store_code === s.code);
    return {
      store: s.code,
      name: s.name,
      state: st.state,
      rowsUp: since(`up:${s.code}`, up),
      rowsDown: since(`down:${s.code}`, d),
      lagSeconds: st.lagSeconds,
      parked: st.parked,
      lastApplyAt: st.lastApplyAt,
      settlementChecks: byAnswer,
      reconcile: rec ? { differences: rec.differences, fixed: rec.fixed, at: rec.run_at.toISOString() } : null,
    };
  });
  return { periodStart: previous?.periodEnd ?? null, periodEnd, timeZone, stores, counters };
}

/** Rows the store's down pipeline applied (its own `branchline.pipelines`), or null when it cannot be read. */
async function downRowsApplied(code: string, url: string, role: string, connector: string): Promise<number | null> {
  if (connector === 'mssql-trigger') return null;
  try {
    const db = await connect(url, { role, applicationName: 'branchline-report', connectTimeoutMs: 3_000, ...bounded(5_000) });
    try {
      const r = await db.query<{ n: string | null }>(
        `SELECT (SELECT rows_applied FROM branchline.pipelines WHERE pipeline = $1)::text AS n WHERE to_regclass('branchline.pipelines') IS NOT NULL`,
        [`down:${code}`],
      );
      return r.rows[0]?.n ? Number(r.rows[0].n) : 0;
    } finally {
      await endClient(db);
    }
  } catch (e) {
    // Unreachable, refused, or lost (or stalled) mid-reading: no figure.
    if (isBranchlineError(e) || isConnectionError(e) || (e as { code?: string }).code) return null;
    throw e;
  }
}

/** A time as the report prints it: in its zone, to the minute. */
export function formatInZone(d: Date, timeZone: string): string {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' })
      .formatToParts(d)
      .map((x) => [x.type, x.value]),
  );
  return `${p['year']}-${p['month']}-${p['day']} ${p['hour']}:${p['minute']}`;
}

export function periodText(r: ReportData): string {
  const end = formatInZone(r.periodEnd, r.timeZone);
  return r.periodStart ? `${formatInZone(r.periodStart, r.timeZone)} to ${end} (${r.timeZone})` : `until ${end} (${r.timeZone}, the first report: since the pipelines began)`;
}

const n = (v: number | null) => (v === null ? '-' : String(v));

/** The report as plain text: a table per store, then what needs a person. */
export function renderText(r: ReportData): string {
  const rows = r.stores.map((s) => [
    s.store,
    s.name,
    s.state,
    n(s.rowsUp),
    n(s.rowsDown),
    s.lagSeconds === null ? '-' : `${s.lagSeconds.toFixed(1)}s`,
    String(s.parked),
    SETTLEMENT_ANSWERS.map((a) => s.settlementChecks[a] ?? 0).join('/'),
    s.reconcile ? `${s.reconcile.differences}${s.reconcile.differences && s.reconcile.fixed ? ' (fixed)' : ''}` : '-',
    s.lastApplyAt ? formatInZone(new Date(s.lastApplyAt), r.timeZone) : '-',
  ]);
  const attention = r.stores.flatMap((s) => [
    ...(s.parked > 0 ? [`${s.store}: ${s.parked} change${s.parked === 1 ? '' : 's'} parked (branchline parked --store ${s.store})`] : []),
    ...(s.state !== 'streaming' ? [`${s.store}: up pipeline ${s.state}`] : []),
    ...(s.lagSeconds !== null && s.lagSeconds > 300 ? [`${s.store}: ${Math.round(s.lagSeconds)} s behind`] : []),
    ...(s.reconcile && s.reconcile.differences > 0 && !s.reconcile.fixed
      ? [`${s.store}: reconcile found ${s.reconcile.differences} difference${s.reconcile.differences === 1 ? '' : 's'} (branchline reconcile --store ${s.store} --fix)`]
      : []),
  ]);
  return [
    `branchline synchronization report`,
    `period: ${periodText(r)}`,
    '',
    table(['STORE', 'NAME', 'STATE', 'ROWS UP', 'ROWS DOWN', 'LAG', 'PARKED', `CHECKS ${SETTLEMENT_ANSWERS.join('/')}`, 'RECONCILE', 'LAST APPLY'], rows).trimEnd(),
    '',
    attention.length ? `needs attention:\n${attention.map((a) => `- ${a}`).join('\n')}` : 'nothing needs attention.',
    '',
  ].join('\n');
}

export type PreviousReport = { periodEnd: Date; counters: Record<string, number> };

/** The last report recorded at HQ before `before`: where the next period starts, and its counters. */
export async function previousReport(hq: pg.Client, before: Date): Promise<PreviousReport | null> {
  const r = await hq.query<{ period_end: Date; counters: Record<string, number> }>(
    `SELECT period_end, counters FROM branchline.report_runs WHERE period_end < $1 ORDER BY period_end DESC LIMIT 1`,
    [before],
  );
  return r.rows[0] ? { periodEnd: r.rows[0].period_end, counters: r.rows[0].counters } : null;
}

/** Writes the report, records it at HQ (once per period end: the claim) and emails it; returns the file. */
export async function runReport(options: { config: Config; reports: ReportsConfig; periodEnd: Date; logger: Logger }): Promise<{ file: string; text: string; emailed: boolean } | null> {
  const { config, reports, periodEnd, logger } = options;
  const hq = await connect(config.hq.url, { role: 'HQ', applicationName: 'branchline-report', connectTimeoutMs: 5_000, ...bounded(REPORT_HQ_TIMEOUT_MS) });
  let claimed: string | null;
  let previous: PreviousReport | null;
  try {
    previous = await previousReport(hq, periodEnd);
    // The claim: a second agent with the same schedule finds the row and sends nothing.
    const claim = await hq.query<{ id: string }>(
      `INSERT INTO branchline.report_runs (period_start, period_end, counters, agent) VALUES ($1, $2, '{}', $3)
       ON CONFLICT (period_end) DO NOTHING RETURNING id::text`,
      [previous?.periodEnd ?? null, periodEnd, `${os.hostname()}:${process.pid}`],
    );
    claimed = claim.rows[0]?.id ?? null;
  } finally {
    await endClient(hq);
  }
  if (!claimed) {
    logger.info('report already written by another agent', { period_end: periodEnd.toISOString() });
    return null;
  }
  let file = '';
  let written = false;
  let emailed = false;
  let error: string | null = null;
  let data: ReportData | null = null;
  let text = '';
  try {
    data = await collectReport(config, periodEnd, previous, reports.timeZone);
    text = renderText(data);
    await mkdir(reports.folder, { recursive: true });
    file = path.join(reports.folder, `branchline-report-${periodEnd.toISOString().replace(/:/g, '-')}.txt`);
    await writeFile(file, text);
    written = true;
    if (reports.email) {
      await sendReport(reports.email, `${reports.email.subject.replace('{period}', periodText(data))}`, text);
      emailed = true;
    }
  } catch (e) {
    error = redact((e as Error).message);
    throw e instanceof BranchlineError
      ? e
      : new BranchlineError(
          {
            code: 'BL-O001',
            message: written ? `the report ${file} was written but could not be emailed: ${error}.` : `the report for ${periodEnd.toISOString()} could not be written: ${error}.`,
            hint: written
              ? 'Check reports.email (the SMTP server, its user and password); the file is kept, and the next report covers the next period.'
              : 'Check reports.folder (the agent must be able to create and write it); the next run covers this period too.',
          },
          { cause: e },
        );
  } finally {
    const db = await connect(config.hq.url, { role: 'HQ', applicationName: 'branchline-report', connectTimeoutMs: 5_000, ...bounded(REPORT_HQ_TIMEOUT_MS) }).catch(() => null);
    if (db) {
      // A report that failed before it was written gives its period back, so the next run covers it.
      await (!written || data === null
        ? db.query(`DELETE FROM branchline.report_runs WHERE id = $1`, [claimed])
        : db.query(`UPDATE branchline.report_runs SET counters = $2, file = $3, emailed_to = $4, error = $5 WHERE id = $1`, [
            claimed,
            JSON.stringify(data!.counters),
            file || null,
            emailed ? reports.email!.to : null,
            error,
          ])
      ).catch(() => undefined);
      await endClient(db);
    }
  }
  logger.info('report written', { file, emailed, period_end: periodEnd.toISOString() });
  return { file, text, emailed };
}

async function sendReport(email: NonNullable<ReportsConfig['email']>, subject: string, text: string): Promise<void> {
  const { default: nodemailer } = await import('nodemailer');
  const url = new URL(email.smtpUrl);
  const transport = nodemailer.createTransport({
    host: url.hostname,
    port: Number(url.port || (url.protocol === 'smtps:' ? 465 : 587)),
    secure: url.protocol === 'smtps:',
    ...(url.username ? { auth: { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } } : {}),
    connectionTimeout: 15_000,
    socketTimeout: 30_000,
  });
  try {
    await transport.sendMail({ from: email.from, to: [...email.to], subject, text, html: `<pre style="font-family: monospace">${escapeHtml(text)}</pre>` });
  } finally {
    transport.close();
  }
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
