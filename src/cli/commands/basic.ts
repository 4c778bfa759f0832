import { cp, mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent } from '../../agent/agent.js';
import { loadMappings, mappingProblems, readCatalog, requireReadable, storeRole, tablesOf, type Catalog } from '../../agent/prepare.js';
import { readStatus, type PauseReport, type StoreStatus } from '../../agent/status.js';
import { loadConfig, selectStores } from '../../config/load.js';
import { BranchlineError, isBranchlineError, ProblemsError, type Problem } from '../../core/errors.js';
import { createLogger, type Logger } from '../../core/logger.js';
import { describeUrl, isUnreachableError } from '../../db/connect.js';
import { centralArgs, commandConfig } from '../central-args.js';
import { RETAIL_EXAMPLE_DIR } from '../../demo/retail-example.js';
import { EXIT, formatAgo, formatBytes, table } from '../output.js';
import { formatTime } from './hq-commands.js';

export interface GlobalArgs {
  config: string;
  /** True when --config was written on the command line (set by main's middleware). */
  configGiven?: boolean;
  'log-level'?: string;
}

export interface StoreArgs extends GlobalArgs {
  store?: string[];
}

/** `run`, `install` and `snapshot` also work from HQ's central configuration (src/cli/central-args.ts). */
export interface CentralStoreArgs extends StoreArgs {
  'store-url'?: string;
  'hq-url'?: string;
  'cache-dir'?: string;
}

export type InitArgs = GlobalArgs & { mappings: string; force: boolean };
export type UninstallArgs = StoreArgs & { hq: boolean; force: boolean };
export type StatusArgs = StoreArgs & { json: boolean };

const out = (s: string) => process.stdout.write(s);

/** `init`: writes a starter configuration and copies the example mappings. */
export async function initCommand(args: InitArgs): Promise<number> {
  const file = path.resolve(args.config);
  const exists = await stat(file).then(
    () => true,
    () => false,
  );
  if (exists && !args.force)
    throw new BranchlineError({
      code: 'BL-U001',
      message: `${args.config} already exists.`,
      hint: 'Pass --force to overwrite it, or --config to write another file.',
    });
  const mappingsDir = path.resolve(path.dirname(file), args.mappings);
  const haveMappings = await stat(mappingsDir).then(
    () => true,
    () => false,
  );
  if (!haveMappings) {
    await mkdir(mappingsDir, { recursive: true });
    await cp(RETAIL_EXAMPLE_DIR, mappingsDir, { recursive: true, filter: (src) => !src.endsWith('.sql') && !src.endsWith('.md') });
  }
  const rel = path.relative(path.dirname(file), mappingsDir) || '.';
  await writeFile(
    file,
    `# branchline configuration. Reference: docs/configuration.md
# Secrets: write \${ENV_VAR} and set the variable where the service runs.
hq:
  url: \${BRANCHLINE_HQ_URL}
stores:
  - code: S001
    name: Store 001
    url: \${BRANCHLINE_S001_URL}
    # connector: pg-logical        # default; pg-trigger (no slot: triggers), mssql-trigger (SQL Server)
    # slot: branchline_s001        # default: branchline_<code>
    # publication: branchline      # default
mappings: ${rel}
batch:
  max_rows: 20000      # commit an HQ transaction after this many rows
  max_delay_ms: 500    # ... or this long after its first row
  idle_ms: 0           # ... or as soon as the store has nothing more buffered
  chunk_rows: 5000     # rows per statement round (bounds memory)
log:
  level: info
# queries:             # \`branchline stock|prices <product>\` and GET /stock|prices/:product (docs/queries.md)
#   stock: {table: store_stock, product: product_id, store: store_code, columns: [quantity]}
#   prices: {table: store_price, product: product_id, store: store_code, columns: [price]}
`,
  );
  out(`wrote ${args.config}${haveMappings ? '' : ` and example mappings in ${rel}/`}\n`);
  out('next: set BRANCHLINE_HQ_URL and BRANCHLINE_S001_URL, then run `branchline validate` and `branchline install`.\n');
  return EXIT.ok;
}

export async function installCommand(args: CentralStoreArgs): Promise<number> {
  const { config, version } = await commandConfig('install', args);
  const logger = createLogger({ level: args['log-level'] ?? config.log.level });
  const { install } = await import('../../agent/install.js');
  const reports = await install(config, selectStores(config, args.store), logger);
  if (version !== null) out(`installed for store ${config.stores[0]!.code} from configuration version ${version} published at HQ\n`);
  for (const r of reports) {
    out(`${r.database}:\n`);
    for (const a of r.actions) out(`  - ${a}\n`);
  }
  return EXIT.ok;
}

export async function uninstallCommand(args: UninstallArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const logger = createLogger({ level: args['log-level'] ?? config.log.level });
  const { uninstall } = await import('../../agent/install.js');
  const reports = await uninstall(config, selectStores(config, args.store), logger, { hq: args.hq, force: args.force });
  for (const r of reports) {
    out(`${r.database}:\n`);
    for (const a of r.actions) out(`  - ${a}\n`);
  }
  return EXIT.ok;
}

/**
 * `validate`: every mapping file against HQ's schema and each reachable
 * store's, every problem at once. A store that does not answer is named and
 * its side is not checked (exit 3 if nothing could be checked at all).
 */
export async function validateCommand(args: StoreArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const files = await loadMappings(config);
  const { sources, targets } = tablesOf(files);
  let hq: Catalog;
  try {
    hq = await readCatalog(config.hq.url, 'HQ', targets);
  } catch (e) {
    // Without HQ, the files can still be checked on their own.
    requireReadable(files);
    throw e;
  }
  const problems = new Map<string, Problem>();
  const add = (ps: readonly Problem[]) => {
    for (const p of ps) problems.set(`${p.location?.file}:${p.location?.line}:${p.location?.column}:${p.code}:${p.message}`, p);
  };
  add(mappingProblems(files, hq, null));
  const checked: string[] = [];
  const unreachable: string[] = [];
  for (const store of selectStores(config, args.store)) {
    try {
      add(mappingProblems(files, hq, await readCatalog(store.url, storeRole(store), sources, 5_000)));
      checked.push(store.code);
    } catch (e) {
      if (isUnreachableError(e)) unreachable.push(`${store.code} (${e.message})`);
      else throw e;
    }
  }
  for (const u of unreachable) process.stderr.write(`warning: store ${u}; its side of the mappings was not checked.\n`);
  if (problems.size) {
    const sorted = [...problems.values()].sort(
      (a, b) =>
        (a.location?.file ?? '').localeCompare(b.location?.file ?? '') ||
        (a.location?.line ?? 0) - (b.location?.line ?? 0) ||
        (a.location?.column ?? 0) - (b.location?.column ?? 0),
    );
    throw new ProblemsError(`The mapping files in ${config.mappingsDir} have problems.`, sorted);
  }
  const n = files.files.length;
  out(`${n} mapping file${n === 1 ? ' is' : 's are'} valid against HQ${checked.length ? ` and store${checked.length > 1 ? 's' : ''} ${checked.join(', ')}` : ''}.\n`);
  return checked.length === 0 && unreachable.length > 0 ? EXIT.environment : EXIT.ok;
}

/** An AbortSignal that SIGINT/SIGTERM abort (logged). */
function stopSignal(logger: Logger): AbortSignal {
  const controller = new AbortController();
  const stop = (signal: string) => {
    if (controller.signal.aborted) return;
    logger.info('stopping', { signal });
    controller.abort();
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  return controller.signal;
}

/**
 * `run`: the service. Stops cleanly on SIGINT/SIGTERM (the open batch rolls
 * back and is re-read next time). With --store-url/--hq-url: one store,
 * from the configuration HQ published (docs/central-config.md).
 */
export async function runCommand(args: CentralStoreArgs): Promise<number> {
  const central = centralArgs('run', args);
  if (central) {
    const logger = createLogger({ level: args['log-level'] ?? 'info' });
    const signal = stopSignal(logger);
    logger.info('agent started from the central configuration', { store: central.storeCode, hq: describeUrl(central.hqUrl), cacheDir: central.cacheDir });
    const { runCentralStoreAgent } = await import('../../agent/central-store.js');
    await runCentralStoreAgent({ ...central, logger, signal });
    logger.info('agent stopped');
    return EXIT.ok;
  }
  const config = await loadConfig(args.config);
  const logger = createLogger({ level: args['log-level'] ?? config.log.level });
  const stores = selectStores(config, args.store);
  const signal = stopSignal(logger);
  const agent = new Agent({ config, logger, stores });
  await agent.prepare(signal);
  logger.info('agent started', { stores: stores.map((s) => s.code), config: config.file });
  await agent.run(signal);
  logger.info('agent stopped');
  return EXIT.ok;
}

export async function statusCommand(args: StatusArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const rows = await readStatus(config, selectStores(config, args.store));
  if (args.json) {
    out(JSON.stringify(rows, null, 2) + '\n');
    return EXIT.ok;
  }
  // HOLDER only where agents share the stores by lease (docs/deployment.md).
  const leased = rows.some((r) => r.lease !== null);
  out(
    table(
      ['STORE', 'STATE', 'POSITION', 'LAG', 'BEHIND', 'WAL KEPT', 'TXNS', 'ROWS', 'PARKED', 'SCHEDULED', 'LAST APPLY', 'LAST ERROR', ...(leased ? ['HOLDER'] : [])],
      rows.map((r) => [
        r.store,
        r.storeReachable ? r.state : `${r.state} (store unreachable)`,
        r.position ?? '-',
        r.lagSeconds === null ? '-' : `${r.lagSeconds.toFixed(1)}s`,
        formatBytes(r.lagBytes),
        formatBytes(r.walRetainedBytes),
        String(r.txnsApplied),
        String(r.rowsApplied),
        String(r.parked),
        r.scheduled === null ? '-' : String(r.scheduled),
        formatAgo(r.lastApplyAt),
        r.lastError ? `${r.lastError.code} ${formatAgo(r.lastError.at)}` : '-',
        ...(leased ? [holderText(r.lease)] : []),
      ]),
    ),
  );
  for (const r of rows) if (r.lastError) out(`${r.store}: ${r.lastError.message}\n`);
  for (const r of rows) {
    const text = pausedText(r.paused);
    if (text) out(`${r.store}: ${text}; \`branchline resume --store ${r.store}\` starts ${r.paused.up && r.paused.down ? 'them' : 'it'} again.\n`);
  }
  const parked = rows.filter((r) => r.parked > 0);
  if (parked.length)
    out(`${parked.map((r) => `${r.store}: ${r.parked} parked`).join(', ')}; \`branchline parked\` lists ${parked.length === 1 && parked[0]!.parked === 1 ? 'it' : 'them'} and why.\n`);
  const scheduled = rows.filter((r) => (r.scheduled ?? 0) > 0);
  if (scheduled.length)
    out(`${scheduled.map((r) => `${r.store}: ${r.scheduled} down change${r.scheduled === 1 ? '' : 's'} scheduled, next due ${r.nextScheduledAt ?? '-'}`).join('; ')}; \`branchline scheduled\` lists them.\n`);
  return EXIT.ok;
}

/** "up and down paused since 2026-12-04T09:00:00Z by ana@hq: inventory count" (null: nothing paused). */
function pausedText({ up, down }: StoreStatus['paused']): string | null {
  const say = (what: string, p: PauseReport) => `${what} paused since ${formatTime(new Date(p.at))} by ${p.by}${p.reason ? `: ${p.reason}` : ''}`;
  // One pause of both directions (`pause --store S`) is said once.
  if (up && down && up.at === down.at && up.by === down.by && up.reason === down.reason) return say('up and down', up);
  const parts = [...(up ? [say('up', up)] : []), ...(down ? [say('down', down)] : [])];
  return parts.length ? parts.join('; ') : null;
}

/** `S-HQ-1 (12s left)`, `S-HQ-1 (expired 3s ago)`, or `-` for a free lease. */
function holderText(lease: StoreStatus['lease']): string {
  if (!lease?.holder || lease.expiresInS === null) return '-';
  const s = Math.round(Math.abs(lease.expiresInS));
  return lease.expiresInS >= 0 ? `${lease.holder} (${s}s left)` : `${lease.holder} (expired ${s}s ago)`;
}
