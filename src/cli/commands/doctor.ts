import { loadConfig, selectStores } from '../../config/load.js';
import { runDoctor } from '../../doctor/doctor.js';
import { EXIT } from '../output.js';
import type { StoreArgs } from './basic.js';

export type DoctorArgs = StoreArgs & { json: boolean };

const out = (s: string) => process.stdout.write(s);

/**
 * `doctor`: one line per check (ok / warn / fail / skip), each warning and
 * failure with its code and the fix. Exit 0 when nothing failed (warnings
 * included), 3 when a check failed.
 */
export async function doctorCommand(args: DoctorArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const report = await runDoctor({ config, stores: selectStores(config, args.store) });
  const failed = report.summary.fail > 0;
  if (args.json) {
    out(JSON.stringify(report, null, 2) + '\n');
    return failed ? EXIT.environment : EXIT.ok;
  }
  for (const c of report.checks) {
    const code = c.code ? ` ${c.code}` : '';
    out(`${c.status.padEnd(4)}  ${c.database}  ${c.check}:${code} ${c.message}\n`);
    for (const d of c.details ?? []) out(`        ${d}\n`);
    if (c.fix && c.status !== 'ok') out(`        fix: ${c.fix}\n`);
  }
  const { ok, warn, fail, skip } = report.summary;
  out(`${ok} ok, ${warn} warning${warn === 1 ? '' : 's'}, ${fail} failed${skip ? `, ${skip} not checked` : ''}.\n`);
  return failed ? EXIT.environment : EXIT.ok;
}
