import cliProgress from 'cli-progress';
import { loadConfig, selectStores } from '../../config/load.js';
import { createLogger } from '../../core/logger.js';
import { BranchlineError } from '../../core/errors.js';
import { EXIT } from '../output.js';

const out = (s: string) => process.stdout.write(s);
import type { StoreArgs } from './basic.js';

export interface SnapshotArgs extends StoreArgs {
  readonly tables?: string[];
  readonly without?: string[];
  readonly restart?: boolean;
  readonly progress?: boolean;
}

/**
 * `snapshot --store S`: the initial load of HQ's master tables into a store
 * (see src/load/initial-load.ts), with a progress bar on a terminal.
 */
export async function snapshotCommand(args: SnapshotArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const logger = createLogger({ level: args['log-level'] ?? config.log.level });
  if (!args.store || args.store.length !== 1)
    throw new BranchlineError({
      code: 'BL-U001',
      message: 'snapshot loads one store at a time.',
      hint: 'Name it with --store, e.g. branchline snapshot --store S001.',
    });
  const [store] = selectStores(config, args.store);
  const { runInitialLoad } = await import('../../load/initial-load.js');
  const tty = args.progress ?? process.stderr.isTTY === true;
  const bar = tty
    ? new cliProgress.SingleBar(
        { format: '{table} |{bar}| {value}/{total} rows | {speed} rows/s | ETA {eta_formatted}', stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : null;
  const started = Date.now();
  let lastLine = 0;
  const result = await runInitialLoad({
    config,
    store: store!,
    logger,
    ...(args.tables ? { tables: args.tables } : {}),
    ...(args.without ? { without: args.without } : {}),
    ...(args.restart ? { restart: true } : {}),
    onProgress: (p) => {
      const speed = Math.round(p.allCopied / Math.max(0.001, (Date.now() - started) / 1000));
      if (bar) {
        if (!bar.isActive) bar.start(p.rowsTotal ?? p.allCopied, 0, { table: p.table, speed });
        bar.setTotal(Math.max(p.rowsTotal ?? 0, p.allCopied));
        bar.update(p.allCopied, { table: p.table, speed });
      } else if (Date.now() - lastLine > 2000) {
        lastLine = Date.now();
        const eta = p.rowsTotal && speed > 0 ? ` eta ${Math.max(0, Math.round((p.rowsTotal - p.allCopied) / speed))} s` : '';
        process.stderr.write(`${p.table}: ${p.allCopied}${p.rowsTotal ? `/${p.rowsTotal}` : ''} rows, ${speed} rows/s${eta}\n`);
      }
    },
  });
  bar?.stop();
  const secs = (Date.now() - started) / 1000;
  const rate = Math.round(result.rowsThisRun / Math.max(0.001, secs));
  out(`${result.resumed ? 'resumed and finished' : 'finished'} the initial load of store ${store!.code}: ${result.rows} rows, ${result.rowsThisRun} of them copied by this run in ${secs.toFixed(1)} s (${rate} rows/s)\n`);
  for (const t of result.tables) out(`  ${t.table}: ${t.rows} rows\n`);
  out(`the down channel continues from ${result.position}\n`);
  return EXIT.ok;
}
