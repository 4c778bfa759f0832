import cliProgress from 'cli-progress';
import { selectStores } from '../../config/load.js';
import { commandConfig } from '../central-args.js';
import { createLogger } from '../../core/logger.js';
import { BranchlineError } from '../../core/errors.js';
import { differencesOf, type Direction, type ReconcileResult, type TableReconciliation } from '../../reconcile/reconcile.js';
import { EXIT, table } from '../output.js';
import type { CentralStoreArgs } from './basic.js';

const out = (s: string) => process.stdout.write(s);

export interface ReconcileArgs extends CentralStoreArgs {
  readonly tables?: string[];
  readonly direction?: 'up' | 'down' | 'both';
  readonly fix?: boolean;
  readonly json?: boolean;
  readonly progress?: boolean;
}

/** Keys listed per kind and table in the summary (all of them are in --json). */
const SHOWN_KEYS = 10;

/**
 * `reconcile --store S`: compares the store's tables with HQ through the
 * mappings (src/reconcile/reconcile.ts), prints a summary table (or JSON)
 * and, with --fix, repairs what differs. Exit code 10 when differences
 * remain (found without --fix), 0 when equal or fixed.
 */
export async function reconcileCommand(args: ReconcileArgs): Promise<number> {
  const { config } = await commandConfig('reconcile', args);
  const logger = createLogger({ level: args['log-level'] ?? config.log.level });
  if (!args.store || args.store.length !== 1)
    throw new BranchlineError({
      code: 'BL-U001',
      message: 'reconcile compares one store at a time.',
      hint: 'Name it with --store, e.g. branchline reconcile --store S001.',
    });
  const [store] = selectStores(config, args.store);
  const { runReconcile } = await import('../../reconcile/reconcile.js');
  const directions: Direction[] = args.direction === 'up' ? ['up'] : args.direction === 'down' ? ['down'] : ['up', 'down'];
  const tty = !args.json && (args.progress ?? process.stderr.isTTY === true);
  const bar = tty
    ? new cliProgress.SingleBar({ format: '{mapping} |{bar}| {value}/{total} rows | ETA {eta_formatted}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
    : null;
  const started = Date.now();
  const result = await runReconcile({
    config,
    store: store!,
    logger,
    directions,
    ...(args.tables ? { tables: args.tables } : {}),
    ...(args.fix ? { fix: true } : {}),
    onProgress: (p) => {
      if (!bar) return;
      if (!bar.isActive) bar.start(p.rowsTotal ?? p.rowsRead, 0, { mapping: p.mapping });
      bar.setTotal(Math.max(p.rowsTotal ?? 0, p.rowsRead));
      bar.update(p.rowsRead, { mapping: p.mapping });
    },
  });
  bar?.stop();
  const seconds = (Date.now() - started) / 1000;
  // For the scheduled report (docs/reports.md); the comparison itself is done, so a failure here only warns.
  await (await import('../../reconcile/record.js')).recordReconcile(config.hq.url, result).catch((e: Error) => logger.warn('reconciliation not recorded at HQ', { error: e.message }));
  if (args.json) out(JSON.stringify({ ...result, seconds }, null, 2) + '\n');
  else out(summary(result, seconds));
  return result.differences > 0 && (!result.fixed || unfixed(result) > 0) ? EXIT.differences : EXIT.ok;
}

/** Differences --fix left as they are (aggregate totals). */
function unfixed(r: ReconcileResult): number {
  return r.tables.reduce((n, t) => n + (t.notFixed ? differencesOf(t) : 0), 0);
}

function summary(r: ReconcileResult, seconds: number): string {
  const rows = r.tables.map((t) => [
    t.direction,
    t.mapping,
    t.target,
    t.skipped ? '-' : String(t.sourceRows),
    t.skipped ? '-' : String(t.targetRows),
    t.skipped ? '-' : String(t.missing.length + t.unassociated),
    t.skipped ? '-' : String(t.different.length),
    t.skipped ? '-' : t.extraUnknown ? '?' : String(t.extra.length),
    t.method === 'hashed' ? `hashed (${t.bucketsDiffering}/${t.buckets} buckets)` : (t.method ?? '-'),
    t.skipped
      ? `skipped: ${t.skipped}`
      : t.notFixed && differencesOf(t) > 0
        ? 'differs (not fixed)'
        : r.fixed && differencesOf(t) > 0
          ? `fixed: ${t.resent} re-sent, ${t.removed} removed`
          : differencesOf(t) > 0
            ? 'differs'
            : 'equal',
  ]);
  let text = table(['dir', 'mapping', 'target', 'source rows', 'target rows', 'missing', 'different', 'extra', 'compared', 'result'], rows);
  for (const t of r.tables) text += keyLines(t);
  if (r.tables.some((t) => t.isolation === 'read committed'))
    text += `store ${r.store} was read in READ COMMITTED (its SQL Server database does not allow snapshot isolation): rows written during the run may show as differences; a second run settles them\n`;
  const verdict =
    r.differences === 0
      ? `store ${r.store} and HQ are equal`
      : r.fixed && unfixed(r) > 0
        ? `store ${r.store}: ${r.differences - unfixed(r)} differences repaired, ${unfixed(r)} left as they are (see above)`
        : r.fixed
        ? `store ${r.store}: ${r.differences} differences repaired (run reconcile again to check)`
        : `store ${r.store}: ${r.differences} differences (repair them with --fix)`;
  return `${text}${verdict} (${seconds.toFixed(1)} s)\n`;
}

function keyLines(t: TableReconciliation): string {
  let s = '';
  const list = (kind: string, keys: readonly (readonly string[])[]) => {
    if (keys.length === 0) return;
    const shown = keys.slice(0, SHOWN_KEYS).map((k) => `(${k.join(', ')})`).join(' ');
    s += `  ${t.target} ${kind}: ${shown}${keys.length > SHOWN_KEYS ? ` and ${keys.length - SHOWN_KEYS} more` : ''}\n`;
  };
  list('missing', t.missing);
  list('different', t.different);
  list('extra', t.extra);
  if (t.unassociated > 0)
    s += t.direction === 'up' ? `  ${t.target}: ${t.unassociated} store rows wait for an association\n` : `  ${t.target}: ${t.unassociated} HQ rows have no code at this store yet\n`;
  if (t.held > 0) s += `  ${t.target}: ${t.held} rows take effect later (effective_at), not compared\n`;
  if (t.notFixed && differencesOf(t) > 0) s += `  ${t.target}: ${t.notFixed}; see docs/cli.md#reconcile\n`;
  return s;
}
