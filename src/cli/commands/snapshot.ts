import cliProgress from 'cli-progress';
import { selectStores } from '../../config/load.js';
import { commandConfig } from '../central-args.js';
import { createLogger } from '../../core/logger.js';
import { BranchlineError } from '../../core/errors.js';
import { EXIT } from '../output.js';
import type { CentralStoreArgs } from './basic.js';

const out = (s: string) => process.stdout.write(s);

export interface SnapshotArgs extends CentralStoreArgs {
  readonly tables?: string[];
  readonly without?: string[];
  readonly restart?: boolean;
  readonly progress?: boolean;
  readonly direction?: 'down' | 'up';
}

/**
 * `snapshot --store S`: the initial load of HQ's master tables into a store
 * (see src/load/initial-load.ts), or with `--direction up` of the store's
 * tables into HQ (src/load/initial-load-up.ts), with a progress bar on a
 * terminal.
 */
export async function snapshotCommand(args: SnapshotArgs): Promise<number> {
  const { config } = await commandConfig('snapshot', args);
  const logger = createLogger({ level: args['log-level'] ?? config.log.level });
  if (!args.store || args.store.length !== 1)
    throw new BranchlineError({
      code: 'BL-U001',
      message: 'snapshot loads one store at a time.',
      hint: 'Name it with --store, e.g. branchline snapshot --store S001.',
    });
  const [store] = selectStores(config, args.store);
  const up = args.direction === 'up';
  const runInitialLoad = up ? (await import('../../load/initial-load-up.js')).runInitialLoadUp : (await import('../../load/initial-load.js')).runInitialLoad;
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
  out(
    `${result.resumed ? 'resumed and finished' : 'finished'} the initial load of store ${store!.code}${up ? ' into HQ' : ''}: ${result.rows} rows, ${result.rowsThisRun} of them copied by this run in ${secs.toFixed(1)} s (${rate} rows/s)\n`,
  );
  for (const t of result.tables) out(`  ${t.table}: ${t.rows} rows\n`);
  out(`the ${up ? 'up pipeline' : 'down channel'} continues from ${result.position}\n`);
  return EXIT.ok;
}
