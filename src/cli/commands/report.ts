import { loadConfig } from '../../config/load.js';
import { BranchlineError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { connect } from '../../db/connect.js';
import { collectReport, previousReport, renderText, runReport } from '../../reports/report.js';
import type { GlobalArgs } from './basic.js';
import { out } from './hq-commands.js';

export interface ReportArgs extends GlobalArgs {
  send: boolean;
  json: boolean;
}

/**
 * `report`: the synchronization report for the period since the last one,
 * now. Printed only; with --send it is also written to reports.folder,
 * emailed and recorded at HQ, as the scheduled run does (the next report
 * then starts here).
 */
export async function reportCommand(args: ReportArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const now = new Date();
  if (args.send) {
    if (!config.reports)
      throw new BranchlineError({ code: 'BL-U001', message: `--send needs a reports: section in ${config.file} (where to write, whom to email).`, hint: 'Add reports: {schedule, folder, email} (docs/reports.md), or run without --send to print the report.' });
    const logger = createLogger({ level: args['log-level'] ?? 'warn' });
    const r = await runReport({ config, reports: config.reports, periodEnd: now, logger });
    if (!r) throw new BranchlineError({ code: 'BL-O001', message: 'another agent wrote the report for this very moment; nothing was sent.', hint: 'Run it again.' });
    out(args.json ? `${JSON.stringify({ file: r.file, emailed: r.emailed })}\n` : `${r.text}\nwritten to ${r.file}${r.emailed ? `, emailed to ${config.reports.email!.to.join(', ')}` : ''}\n`);
    return 0;
  }
  const hq = await connect(config.hq.url, { role: 'HQ', applicationName: 'branchline-report' });
  let previous;
  try {
    previous = await previousReport(hq, now);
  } finally {
    await hq.end().catch(() => undefined);
  }
  const data = await collectReport(config, now, previous, config.reports?.timeZone ?? 'UTC');
  out(args.json ? `${JSON.stringify(data, null, 2)}\n` : renderText(data));
  return 0;
}
